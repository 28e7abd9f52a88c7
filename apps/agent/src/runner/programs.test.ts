import { describe, expect, it } from "vitest";
import { LLAMA_RUNNER_SCRIPT, backendForRuntime, defaultLlamaRunner, runnerCommandLine } from "./programs.js";
import type { RunnerLaunch } from "./supervisor.js";

const PROGRAMS = {
  orchardRunner: "/opt/orchard/orchard-runner",
  llamaRunner: { command: "/usr/bin/node", args: ["/opt/orchard/orchard-llama-runner.mjs"], threads: 3 },
};

function launch(overrides: Partial<RunnerLaunch>): RunnerLaunch {
  return { backend: "sim", model: null, tokenizer: null, profile: null, extraArgs: [], ...overrides };
}

describe("runner command line per backend", () => {
  it("sim and executorch run orchard-runner with --backend and the model's flags", () => {
    expect(runnerCommandLine(launch({ extraArgs: ["--sim-decode-tok-s=50"] }), PROGRAMS)).toEqual({
      command: "/opt/orchard/orchard-runner",
      args: ["--backend", "sim", "--sim-decode-tok-s=50"],
    });
    expect(
      runnerCommandLine(
        launch({ backend: "executorch", model: "/m/gemma.pte", tokenizer: "/m", profile: "gemma4-e2b-extcache" }),
        PROGRAMS,
      ),
    ).toEqual({
      command: "/opt/orchard/orchard-runner",
      args: ["--backend", "executorch", "--model", "/m/gemma.pte", "--tokenizer", "/m", "--profile", "gemma4-e2b-extcache"],
    });
  });

  it("llamacpp runs node on the llama runner script with the .gguf and an explicit thread count", () => {
    expect(runnerCommandLine(launch({ backend: "llamacpp", model: "/m/tiny.gguf", extraArgs: ["--context", "512"] }), PROGRAMS)).toEqual({
      command: "/usr/bin/node",
      args: ["/opt/orchard/orchard-llama-runner.mjs", "--model", "/m/tiny.gguf", "--threads", "3", "--context", "512"],
    });
    // No --backend flag (the llama runner has one backend), no tokenizer or profile even if set.
    const args = runnerCommandLine(launch({ backend: "llamacpp", model: "/m/a.gguf", tokenizer: "/m", profile: "x" }), PROGRAMS).args;
    expect(args).not.toContain("--backend");
    expect(args).not.toContain("--tokenizer");
    expect(args).not.toContain("--profile");
  });

  it("the default llama runner is this Node on the checkout's bin script", () => {
    expect(defaultLlamaRunner(2)).toEqual({ command: process.execPath, args: [LLAMA_RUNNER_SCRIPT], threads: 2 });
    expect(LLAMA_RUNNER_SCRIPT).toMatch(/apps\/agent\/bin\/orchard-llama-runner\.mjs$/);
  });

  it("each artifact runtime maps to the backend that loads it", () => {
    expect(backendForRuntime("sim")).toBe("sim");
    expect(backendForRuntime("executorch")).toBe("executorch");
    expect(backendForRuntime("llama.cpp")).toBe("llamacpp");
  });
});
