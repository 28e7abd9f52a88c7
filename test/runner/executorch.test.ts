/**
 * orchard-runner on the real ExecuTorch runtime: the runner built against the
 * ExecuTorch wheel in .venv runs tiny random-weight .pte files exported by
 * tools/export (scripts/tiny-pte.ts), and its greedy tokens are
 * compared with ExecuTorch's own Python runtime running the same program.
 * Skipped with the reason when .venv or the ExecuTorch-linked runner is missing;
 * in CI (which builds both) that is an error.
 */
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { encodeRunnerRequest, type RunnerMessage, type RunnerToken } from "@orchard/contracts";
import { loadChatTemplate } from "../../apps/agent/src/runner/chat-template.ts";
import { EXPORT_LAYOUTS, VENV_PYTHON, executorchUnavailable, tinyModel } from "../../scripts/tiny-pte.ts";
import { ROOT, RUNNER_BIN, RunnerProcess, generate } from "./runner-process.ts";

const unavailable = executorchUnavailable();
if (unavailable && process.env.CI) throw new Error(`the ExecuTorch runner tests cannot run in CI: ${unavailable}`);

const started: RunnerProcess[] = [];
afterEach(async () => {
  for (const runner of started.splice(0)) {
    const exit = await runner.close();
    expect(exit, `runner exit; stderr:\n${runner.stderr.slice(-2000)}`).toEqual({ code: 0, signal: null });
    expect(runner.streamProblems).toEqual([]);
  }
});

/** orchard-runner with the executorch backend on `model`, tokenizer files from `dir`. */
function startExecutorch(model: string, dir: string, profile: string): ReturnType<typeof RunnerProcess.start> {
  return RunnerProcess.start(["--backend", "executorch", "--model", model, "--tokenizer", dir, "--profile", profile]);
}

/** A ready runner on the tiny export of `layout`, with the profile its manifest names. */
async function startTiny(layout: (typeof EXPORT_LAYOUTS)[number]) {
  const tiny = tinyModel(layout);
  const { runner, first } = await startExecutorch(tiny.model, tiny.dir, tiny.manifest.profile);
  started.push(runner);
  expect(first, runner.stderr.slice(-2000)).toMatchObject({ type: "ready", backend: "executorch", max_context: tiny.manifest.maxContext });
  /** A conversation as the agent sends it: rendered with the model folder's own chat_template.jinja. */
  const render = (messages: { role: "system" | "user" | "assistant"; content: string }[]) => loadChatTemplate(tiny.dir)!.render(messages);
  return { ...tiny, runner, render };
}

/** The first use of a tiny model exports it (≈ 45 s for llm-standard, ≈ 3 min for Gemma 4 on 2 cores). */
const EXPORT_TIMEOUT_MS = 600_000;

/** Greedy ids of the .pte from ExecuTorch's Python runtime (test/runner/fixtures/pte_greedy.py). */
function pythonGreedy(model: string, tokenizerJson: string, text: string, n: number): { prompt: number[]; ids: number[] } {
  const r = spawnSync(VENV_PYTHON, [path.join(ROOT, "test/runner/fixtures/pte_greedy.py"), model, tokenizerJson, text, String(n)], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`pte_greedy.py failed (exit ${r.status}):\n${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { prompt: number[]; ids: number[] };
}

describe.skipIf(unavailable !== null)(`orchard-runner --backend executorch${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let wheelVersion = "";
  beforeAll(() => {
    wheelVersion = execFileSync(VENV_PYTHON, ["-c", "import executorch.version as v; print(v.__version__)"], { encoding: "utf8" }).trim();
  });

  it("reports the ExecuTorch version of the package it was built against", () => {
    const caps = JSON.parse(execFileSync(RUNNER_BIN, ["--capabilities"], { encoding: "utf8" })) as {
      runtimes: Record<string, { versions: string[]; profiles: string[] }>;
    };
    // The wheel says e.g. "1.5.1+cpu"; the local label names its flavour, not a release.
    expect(caps.runtimes.executorch?.versions).toEqual([wheelVersion.replace(/\+.*$/, "")]);
    expect(caps.runtimes.executorch?.profiles).toEqual(["gemma4-e2b-extcache", "gemma4-extcache", "llm-standard"]);
  });

  it(
    "llm-standard: greedy tokens are identical to ExecuTorch's Python runtime on the same .pte",
    async () => {
      const { dir, model, manifest } = tinyModel("llm-standard");
      expect(manifest.weights).toBe("random");
      const prompt = "The capital of France is";
      const n = 12;
      const expected = pythonGreedy(model, path.join(dir, "tokenizer.json"), prompt, n);

      const { runner, first } = await startExecutorch(model, dir, "llm-standard");
      started.push(runner);
      expect(first).toMatchObject({ type: "ready", backend: "executorch", max_context: manifest.maxContext });
      runner.send({ type: "generate", id: "g", prompt, max_new_tokens: n, temperature: 0 });
      const consumed = await runner.until((m: RunnerMessage) => (m.type === "done" || m.type === "error") && "id" in m && m.id === "g");
      const done = consumed.at(-1)!;
      expect(done.type, JSON.stringify(done)).toBe("done");
      if (done.type !== "done") return;
      expect(done.prompt_tokens).toBe(expected.prompt.length);
      // Stop ids end the runner's generation early; compare up to where it stopped.
      expect(done.token_ids).toEqual(expected.ids.slice(0, done.token_ids.length));
      expect(done.token_ids.length).toBeGreaterThan(0);
      const tokens = consumed.filter((m): m is RunnerToken => m.type === "token");
      expect(tokens.map((t) => t.token_id)).toEqual(done.token_ids);
    },
    EXPORT_TIMEOUT_MS,
  );

  it.each(EXPORT_LAYOUTS)(
    "%s: greedy tokens of the reference chat are the eager PyTorch model's and the .pte's own",
    async (layout) => {
      const { runner, manifest, render } = await startTiny(layout);
      const expected = manifest.reference.expectedTokenIds;
      const n = expected.length;
      // The model's own template (Gemma 4 turns, or Llama 2's [INST]) rendered by the agent's
      // Jinja engine gives the prompt transformers gave the eager model at export.
      const chat = await generate(runner, {
        id: "ref",
        rendered: render([{ role: "user", content: manifest.reference.prompt }]),
        max_new_tokens: n,
      });
      expect(chat.done.prompt_tokens).toBe(manifest.promptTokenIds.length);
      expect(chat.done.token_ids).toEqual(expected);
      expect(chat.done.token_ids).toEqual(manifest.eagerQuantizedTokenIds);
      expect(chat.tokens.map((t) => t.token_id)).toEqual(expected);
      // The time inside Module::execute is part of the decode time it is reported with.
      expect(chat.done.decode_execute_ms).toBeGreaterThan(0);
      expect(chat.done.decode_execute_ms).toBeLessThanOrEqual(chat.done.decode_ms);
    },
    EXPORT_TIMEOUT_MS,
  );

  it(
    "gemma4-extcache: the runner's built-in template finds Gemma 4's turn markers by name",
    async () => {
      const { runner, manifest } = await startTiny("gemma4-e2b-extcache");
      const builtIn = await generate(runner, {
        id: "b",
        messages: [{ role: "user", content: manifest.reference.prompt }],
        max_new_tokens: manifest.reference.expectedTokenIds.length,
      });
      expect(builtIn.done.prompt_tokens).toBe(manifest.promptTokenIds.length);
      expect(builtIn.done.token_ids).toEqual(manifest.reference.expectedTokenIds);
    },
    EXPORT_TIMEOUT_MS,
  );

  it(
    "gemma4-extcache: a second turn reuses the KV cache and gives the tokens of a fresh prefill",
    async () => {
      const { runner, manifest, render } = await startTiny("gemma4-e2b-extcache");
      const question = { role: "user" as const, content: manifest.reference.prompt };
      const first = await generate(runner, { id: "t1", session: "s", rendered: render([question]), max_new_tokens: 8 });
      const history = [question, { role: "assistant" as const, content: first.text }, { role: "user" as const, content: "And Italy?" }];
      const second = await generate(runner, { id: "t2", session: "s", rendered: render(history), max_new_tokens: 8 });
      expect(second.done.reused_tokens).toBeGreaterThan(manifest.promptTokenIds.length - 1);

      runner.send({ type: "reset" });
      await runner.until((m) => m.type === "reset_done");
      const fresh = await generate(runner, { id: "t3", rendered: render(history), max_new_tokens: 8 });
      expect(fresh.done.reused_tokens).toBe(0);
      expect(fresh.done.prompt_tokens).toBe(second.done.prompt_tokens);
      expect(second.done.token_ids).toEqual(fresh.done.token_ids);
    },
    EXPORT_TIMEOUT_MS,
  );

  it(
    "gemma4-extcache: a cancel ends the generation between tokens, and the next one is unaffected",
    async () => {
      const { runner, manifest, render } = await startTiny("gemma4-e2b-extcache");
      const rendered = render([{ role: "user", content: manifest.reference.prompt }]);
      const room = manifest.maxContext - manifest.promptTokenIds.length + 1;
      const full = await generate(runner, { id: "full", rendered, max_new_tokens: room });
      // Decoding takes well under a millisecond a token here, so the cancel is sent with the
      // request: the runner reads it while the generation runs and stops at the next check.
      runner.sendRaw(
        encodeRunnerRequest({ type: "generate", id: "c", rendered, max_new_tokens: room }) +
          encodeRunnerRequest({ type: "cancel", id: "c" }),
      );
      const consumed = await runner.until((m) => (m.type === "done" || m.type === "error") && "id" in m && m.id === "c");
      const cancelled = consumed.at(-1)!;
      expect(cancelled).toMatchObject({ type: "done", finish_reason: "cancelled" });
      if (cancelled.type !== "done") return;
      expect(cancelled.generated_tokens).toBeLessThan(full.done.generated_tokens);
      expect(full.done.token_ids.slice(0, cancelled.token_ids.length)).toEqual(cancelled.token_ids);
      const again = await generate(runner, { id: "again", rendered, max_new_tokens: room });
      expect(again.done.token_ids).toEqual(full.done.token_ids);
    },
    EXPORT_TIMEOUT_MS,
  );

  it(
    "gemma4-extcache: a request that would pass the window is refused as context_full before anything is fed",
    async () => {
      const { runner, manifest, render } = await startTiny("gemma4-e2b-extcache");
      const rendered = render([{ role: "user", content: manifest.reference.prompt }]);
      const prompt = manifest.promptTokenIds.length;
      // The last sampled token is never fed: prompt + max_new - 1 positions must fit.
      const fits = manifest.maxContext - prompt + 1;
      runner.send({ type: "generate", id: "over", rendered, max_new_tokens: fits + 1 });
      const refused = (await runner.until((m) => m.type === "error")).at(-1)!;
      expect(refused).toMatchObject({ type: "error", id: "over", code: "context_full" });
      if (refused.type === "error") expect(refused.message).toContain(String(manifest.maxContext));
      const exact = await generate(runner, { id: "exact", rendered, max_new_tokens: fits });
      expect(exact.done.prompt_tokens + exact.done.generated_tokens - 1).toBeLessThanOrEqual(manifest.maxContext);
      expect(exact.done.token_ids.slice(0, manifest.reference.expectedTokenIds.length)).toEqual(manifest.reference.expectedTokenIds);
    },
    EXPORT_TIMEOUT_MS,
  );

  it(
    "refuses a .pte whose inputs do not match the profile, naming the first differing input",
    async () => {
      const { dir, model } = tinyModel("gemma4-e2b-extcache");
      // The tiny Gemma 4 export has the reference layout with a 64-slot cache; the profile wants 512.
      const { runner, first } = await startExecutorch(model, dir, "gemma4-e2b-extcache");
      expect(first).toMatchObject({ type: "error", code: "load_failed" });
      if (first.type !== "error") return;
      expect(first.message).toMatch(/input 1 \(attention_mask\): expected int64\[1,511\], the model has int64\[1,\d+\]/);
      expect(await runner.exited).toEqual({ code: 1, signal: null });

      // An llm-standard program under the profile that reads its sizes from the program:
      // its tokens int64[1,1] pass for input_ids; its input_pos is where they part.
      const wrong = await startExecutorch(tinyModel("llm-standard").model, dir, "gemma4-extcache");
      expect(wrong.first).toMatchObject({ type: "error", code: "load_failed" });
      if (wrong.first.type === "error")
        expect(wrong.first.message).toBe(
          "the model does not match profile gemma4-extcache: input 1 (attention_mask): expected int64[1,*], the model has int64[1]",
        );
      expect(await wrong.runner.exited).toEqual({ code: 1, signal: null });
    },
    EXPORT_TIMEOUT_MS,
  );
});
