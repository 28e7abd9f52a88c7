/**
 * orchard-runner's ExecuTorch backend against ExecuTorch's own Python runtime, on the
 * same .pte in one run. The models are the tiny random-weight exports of tools/export
 * (scripts/tiny-pte.ts; both layouts), or the folder BENCH_PTE_DIR names
 * (any folder tools/export wrote, e.g. the real Gemma 4 E2B).
 *
 * Method, per model:
 * - orchard-runner: started once and asked for BENCH_RUNS (5) greedy generations of the reference chat
 *   (the manifest's prompt, rendered with the folder's chat_template.jinja as the agent
 *   renders it), each as long as the context allows. Figures are the runner's own: decode
 *   tok/s (tokens after the first / time from the first to the last token), and, of that
 *   decode time, the part inside Module::execute (`decode_execute_ms`); what remains,
 *   divided by the decode steps, is the runner's own cost per token (inputs, logits copy,
 *   sampling, detokenizing, writing the token line). Load time is `ready.load_ms` (program,
 *   method and tokenizer) and the wall time from spawn to the ready line; peak RSS is the
 *   last answer's peak_rss_bytes.
 * - Python: test/bench/fixtures/pte_python_decode.py in .venv, the same prompt ids and the
 *   same number of greedy tokens with `Method.execute`, timed the same way (first to last
 *   token; the part inside execute). Its load time is load_program + load_method; its peak
 *   RSS includes PyTorch, which the Python runtime needs.
 * Medians over the runs are printed; the token ids of both are compared.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { loadChatTemplate } from "../../apps/agent/src/runner/chat-template.ts";
import { ExportedModelManifest } from "@orchard/contracts";
import { ROOT, RunnerProcess, generate } from "../runner/runner-process.ts";
import { EXPORT_LAYOUTS, VENV_PYTHON, executorchUnavailable, tinyModel } from "../../scripts/tiny-pte.ts";
import { summarize } from "./stats.ts";

const PythonResult = z.object({
  load_ms: z.number(),
  peak_rss_bytes: z.number(),
  runs: z.array(z.object({ ids: z.array(z.number()), decode_ms: z.number(), decode_execute_ms: z.number() })),
});

const Manifest = ExportedModelManifest.extend({ promptTokenIds: z.array(z.number().int()).min(1) });

function median(values: number[]): number {
  return summarize([...values].sort((a, b) => a - b)).p50;
}

const MiB = 2 ** 20;
const f = (n: number, digits = 1) => n.toFixed(digits);

async function benchFolder(dir: string, runs: number): Promise<string[]> {
  const manifest = Manifest.parse(JSON.parse(readFileSync(path.join(dir, "orchard-model.json"), "utf8")));
  const template = loadChatTemplate(dir);
  if (!template) throw new Error(`${dir} has no chat template`);
  const rendered = template.render([{ role: "user", content: manifest.reference.prompt }]);
  const maxNew = manifest.maxContext - manifest.promptTokenIds.length + 1;

  const spawned = Date.now();
  const { runner, first } = await RunnerProcess.start([
    "--backend",
    "executorch",
    "--model",
    path.join(dir, "model.pte"),
    "--tokenizer",
    dir,
    "--profile",
    manifest.profile,
  ]);
  if (first.type !== "ready") throw new Error(`orchard-runner did not load ${dir}: ${JSON.stringify(first)}`);
  const readyWallMs = Date.now() - spawned;
  const answers = [];
  for (let i = 0; i < runs; i++) answers.push((await generate(runner, { id: `b${i}`, rendered, max_new_tokens: maxNew })).done);
  await runner.close();
  if (answers.some((a) => a.prompt_tokens !== manifest.promptTokenIds.length)) {
    throw new Error(`the runner's prompt is not the manifest's ${manifest.promptTokenIds.length} ids`);
  }

  const py = spawnSync(VENV_PYTHON, [path.join(ROOT, "test/bench/fixtures/pte_python_decode.py"), dir, String(maxNew), String(runs)], {
    encoding: "utf8",
    env: { ...process.env, PYTHONPATH: path.join(ROOT, "tools/export") },
    maxBuffer: 64 * MiB,
  });
  if (py.status !== 0) throw new Error(`pte_python_decode.py failed (exit ${py.status}):\n${py.stderr.slice(-2000)}`);
  const python = PythonResult.parse(JSON.parse(py.stdout.trim().split("\n").at(-1)!));

  const steps = (n: number) => Math.max(1, n - 1);
  const runnerTokS = median(answers.map((a) => a.decode_tok_s));
  const runnerOutsideUs = median(answers.map((a) => ((a.decode_ms - (a.decode_execute_ms ?? 0)) / steps(a.generated_tokens)) * 1000));
  const runnerExecUs = median(answers.map((a) => ((a.decode_execute_ms ?? 0) / steps(a.generated_tokens)) * 1000));
  const pyTokS = median(python.runs.map((r) => (steps(r.ids.length) / r.decode_ms) * 1000));
  const pyOutsideUs = median(python.runs.map((r) => ((r.decode_ms - r.decode_execute_ms) / steps(r.ids.length)) * 1000));
  const pyExecUs = median(python.runs.map((r) => (r.decode_execute_ms / steps(r.ids.length)) * 1000));

  // The runner stops on a stop id; compare the ids both produced.
  const ids = answers[0]!.token_ids;
  const same = python.runs.every((r) => r.ids.slice(0, ids.length).join() === ids.join());
  return [
    `${manifest.name} ${manifest.version} (${manifest.profile}, weights ${manifest.weights}, context ${manifest.maxContext}): ` +
      `${manifest.promptTokenIds.length} prompt ids, up to ${maxNew} greedy tokens, ${runs} runs, medians`,
    `  decode tok/s          runner ${f(runnerTokS)}   python ${f(pyTokS)}   ratio ${f(runnerTokS / pyTokS, 2)}`,
    `  per token, execute    runner ${f(runnerExecUs, 0)} µs   python ${f(pyExecUs, 0)} µs`,
    `  per token, outside    runner ${f(runnerOutsideUs, 0)} µs   python ${f(pyOutsideUs, 0)} µs   (decode time not inside Module::execute / Method.execute)`,
    `  load                  runner ${f(first.load_ms)} ms (ready line; ${readyWallMs} ms spawn to ready)   python ${f(python.load_ms)} ms (load_program + load_method)`,
    `  peak RSS              runner ${f(answers.at(-1)!.peak_rss_bytes / MiB)} MiB   python ${f(python.peak_rss_bytes / MiB)} MiB (with PyTorch)`,
    `  token ids             ${same ? `identical (${ids.length} tokens)` : "DIFFERENT"}`,
  ];
}

export async function benchRunnerExecuTorch(opts: { dir: string | undefined; runs: number }): Promise<string[]> {
  const unavailable = executorchUnavailable();
  if (unavailable) throw new Error(`runner-executorch needs the ExecuTorch build: ${unavailable}`);
  const dirs = opts.dir ? [opts.dir] : EXPORT_LAYOUTS.map((layout) => tinyModel(layout).dir);
  const lines = [
    "orchard-runner --backend executorch vs ExecuTorch's Python runtime (executorch.runtime), same .pte, same prompt ids, greedy;",
    "decode = first to last token; 'execute' = inside Module::execute / Method.execute; both single process on this machine",
    "",
  ];
  for (const dir of dirs) lines.push(...(await benchFolder(dir, opts.runs)), "");
  return lines;
}
