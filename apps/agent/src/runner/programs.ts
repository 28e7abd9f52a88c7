/**
 * Which program runs which backend. `sim` and `executorch` are the native
 * `orchard-runner` (`--backend NAME --model … --tokenizer … --profile …`); `llamacpp`
 * is the TypeScript llama.cpp runner on node-llama-cpp, started as
 * `node apps/agent/bin/orchard-llama-runner.mjs --model FILE.gguf --threads N`.
 * Both speak the same NDJSON protocol (contracts/runner.ts), so the supervisor only
 * needs the command line.
 */
import path from "node:path";
import type { ArtifactRuntime, RunnerBackend } from "@orchard/contracts";
import { AGENT_PACKAGE_DIR } from "../lib/package-dir.js";
import type { RunnerLaunch } from "./supervisor.js";

/** The llama.cpp runner this checkout ships: apps/agent/bin/orchard-llama-runner.mjs. */
export const LLAMA_RUNNER_SCRIPT = path.join(AGENT_PACKAGE_DIR, "bin/orchard-llama-runner.mjs");

export interface LlamaRunnerProgram {
  /** The program (node) and the arguments before the runner's own flags (the script). */
  command: string;
  args: readonly string[];
  /** `--threads`: llama.cpp's default oversubscribes small boards, so it is always set. */
  threads: number;
}

export interface RunnerPrograms {
  /** orchard-runner (the sim and executorch backends). */
  orchardRunner: string;
  llamaRunner: LlamaRunnerProgram;
}

/** The default llama runner: this Node running the checkout's script. */
export function defaultLlamaRunner(threads: number): LlamaRunnerProgram {
  return { command: process.execPath, args: [LLAMA_RUNNER_SCRIPT], threads };
}

/** The runner backend that loads an artifact of this runtime. */
export function backendForRuntime(runtime: ArtifactRuntime): RunnerBackend {
  switch (runtime) {
    case "sim":
      return "sim";
    case "executorch":
      return "executorch";
    case "llama.cpp":
      return "llamacpp";
  }
}

/** The command line that starts `launch`. */
export function runnerCommandLine(launch: RunnerLaunch, programs: RunnerPrograms): { command: string; args: string[] } {
  if (launch.backend === "llamacpp") {
    const { llamaRunner } = programs;
    const args = [...llamaRunner.args];
    if (launch.model) args.push("--model", launch.model);
    args.push("--threads", String(llamaRunner.threads), ...launch.extraArgs);
    return { command: llamaRunner.command, args };
  }
  const args = ["--backend", launch.backend];
  if (launch.model) args.push("--model", launch.model);
  if (launch.tokenizer) args.push("--tokenizer", launch.tokenizer);
  if (launch.profile) args.push("--profile", launch.profile);
  args.push(...launch.extraArgs);
  return { command: programs.orchardRunner, args };
}
