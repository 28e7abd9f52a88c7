/**
 * orchard-runner on the real ExecuTorch runtime: the runner built against the
 * ExecuTorch wheel in .venv runs tiny random-weight .pte files exported by
 * tools/export (test/support/executorch-models.ts), and its greedy tokens are
 * compared with ExecuTorch's own Python runtime running the same program.
 * Skipped with the reason when .venv or the ExecuTorch-linked runner is missing;
 * in CI (which builds both) that is an error.
 */
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunnerMessage, RunnerToken } from "@orchard/contracts";
import { VENV_PYTHON, executorchUnavailable, tinyModel } from "../support/executorch-models.ts";
import { ROOT, RUNNER_BIN, RunnerProcess } from "./runner-process.ts";

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
    expect(caps.runtimes.executorch?.profiles).toEqual(["gemma4-e2b-extcache", "llm-standard"]);
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

      const wrong = await startExecutorch(tinyModel("llm-standard").model, dir, "gemma4-e2b-extcache");
      expect(wrong.first).toMatchObject({ type: "error", code: "load_failed" });
      // Its tokens int64[1,1] pass for input_ids; its input_pos is where they part.
      if (wrong.first.type === "error")
        expect(wrong.first.message).toMatch(/input 1 \(attention_mask\): expected int64\[1,511\], the model has int64\[1\]/);
      await wrong.runner.exited;
    },
    EXPORT_TIMEOUT_MS,
  );
});
