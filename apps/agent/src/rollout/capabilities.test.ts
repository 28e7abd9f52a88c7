import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { LLAMA_RUNNER_SCRIPT } from "../runner/programs.js";
import {
  askUntilComplete,
  CapabilitiesError,
  CapabilityCache,
  CombinedCapabilities,
  type RunnerCapabilities,
  mergeCapabilities,
  probeCapabilities,
  unsupportedReason,
} from "./capabilities.js";

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const CAPS: RunnerCapabilities = {
  version: "0.3.0",
  runtimes: {
    sim: { versions: ["1"], profiles: [] },
    executorch: { versions: ["1.2.0"], profiles: ["gemma4-e2b-extcache", "llm-standard"] },
  },
};

async function script(body: string): Promise<{ file: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-caps-"));
  const file = path.join(dir, "runner");
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return { file, done: () => rm(dir, { recursive: true, force: true }) };
}

describe("orchard-runner --capabilities", () => {
  it.runIf(existsSync(RUNNER))("the real runner lists the sim runtime, version 1", async () => {
    const caps = await probeCapabilities(RUNNER);
    expect(caps.runtimes.sim).toEqual({ versions: ["1"], profiles: [] });
    expect(caps.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.runIf(existsSync(LLAMA_RUNNER_SCRIPT))("the real llama runner lists the llama.cpp runtime, no profiles", async () => {
    const caps = await probeCapabilities(process.execPath, [LLAMA_RUNNER_SCRIPT], 60_000);
    expect(Object.keys(caps.runtimes)).toEqual(["llama.cpp"]);
    expect(caps.runtimes["llama.cpp"]!.versions).toHaveLength(1);
    expect(caps.runtimes["llama.cpp"]!.profiles).toEqual([]);
  });

  it("a runner that predates rollouts, or prints something else, is refused with a sentence", async () => {
    const old = await script('echo "orchard-runner: unknown argument \\"--capabilities\\"" >&2; exit 2');
    const garbage = await script("echo 'hello'");
    try {
      await expect(probeCapabilities(old.file)).rejects.toThrow(CapabilitiesError);
      await expect(probeCapabilities(old.file)).rejects.toThrow(
        /--capabilities failed .*: orchard-runner: unknown argument .*predates rollouts/,
      );
      await expect(probeCapabilities(old.file)).rejects.toMatchObject({ reason: "predates" });
      await expect(probeCapabilities(garbage.file)).rejects.toThrow(/printed no valid capabilities line/);
    } finally {
      await old.done();
      await garbage.done();
    }
  });

  it("a probe that times out under load is asked again and gives the real capabilities, never 'predates rollouts'", async () => {
    // The first run hangs (a runner starting on a loaded machine) until the probe's timeout kills it; the second answers.
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-caps-slow-"));
    const runs = path.join(dir, "runs");
    const slow = await script(
      `n=$(($(cat '${runs}' 2>/dev/null || echo 0) + 1)); echo $n > '${runs}'\n` +
        `[ "$1" = "--capabilities" ] || exit 2\n` +
        `[ $n -eq 1 ] && exec sleep 60\n` +
        `echo '${JSON.stringify(CAPS)}'`,
    );
    try {
      const caps = await probeCapabilities(slow.file, [], 1_000, { attempts: 3, retryDelayMs: 10 }).catch((error: Error) => error);
      expect(caps, "a timed-out probe must be retried, not reported as a runner that predates rollouts").toEqual(CAPS);
      expect(readFileSync(runs, "utf8").trim()).toBe("2");
    } finally {
      await slow.done();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a probe that never answers says capabilities unknown (timed out), not 'predates rollouts'", async () => {
    const hangs = await script("exec sleep 60");
    const crashes = await script("echo 'Error: cannot load node-llama-cpp' >&2; exit 1");
    try {
      const error = await probeCapabilities(hangs.file, [], 500, { attempts: 2, retryDelayMs: 10 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CapabilitiesError);
      expect((error as CapabilitiesError).reason).toBe("timeout");
      expect((error as Error).message).toMatch(/capabilities unknown \(probe timed out: 2 tries of 0\.5 s\)/);
      expect((error as Error).message).not.toMatch(/predates/);
      // A runner that answers with a failure is not a timeout, and not an old runner either.
      const crash = await probeCapabilities(crashes.file).catch((e: unknown) => e);
      expect((crash as CapabilitiesError).reason).toBe("failed");
      expect((crash as Error).message).toMatch(/exit code 1.*cannot load node-llama-cpp/);
      expect((crash as Error).message).not.toMatch(/predates/);
    } finally {
      await hangs.done();
      await crashes.done();
    }
  });

  it("is asked once when it answers, and again after a failure", async () => {
    let calls = 0;
    let fail = true;
    const cache = new CapabilityCache(async () => {
      calls += 1;
      if (fail) throw new Error("not yet");
      return CAPS;
    });
    await expect(cache.get()).rejects.toThrow("not yet");
    fail = false;
    expect(await cache.get()).toEqual(CAPS);
    expect(await cache.get()).toEqual(CAPS);
    expect(calls).toBe(2);
    expect(cache.cached()).toEqual(CAPS);
  });
});

describe("unsupportedReason", () => {
  it("accepts what is listed; a null profile means the runner's default", () => {
    expect(unsupportedReason({ runtime: "executorch", runtimeVersion: "1.2.0", profile: "llm-standard" }, CAPS)).toBeNull();
    expect(unsupportedReason({ runtime: "executorch", runtimeVersion: "1.2.0", profile: null }, CAPS)).toBeNull();
    expect(unsupportedReason({ runtime: "sim", runtimeVersion: "1", profile: null }, CAPS)).toBeNull();
  });

  it("names the runtime, version or profile that is missing and what there is", () => {
    const simOnly: RunnerCapabilities = { version: "0.3.0", runtimes: { sim: CAPS.runtimes.sim! } };
    expect(unsupportedReason({ runtime: "executorch", runtimeVersion: "1.2.0", profile: null }, simOnly)).toBe(
      "this device's orchard-runner 0.3.0 has no executorch runtime (it has: sim)",
    );
    expect(unsupportedReason({ runtime: "executorch", runtimeVersion: "1.3.0", profile: null }, CAPS)).toBe(
      "this device's orchard-runner 0.3.0 loads executorch 1.2.0, not 1.3.0",
    );
    expect(unsupportedReason({ runtime: "sim", runtimeVersion: "1", profile: "gemma4-e2b-extcache" }, CAPS)).toBe(
      "this device's orchard-runner 0.3.0 has no sim profile gemma4-e2b-extcache (it has: none)",
    );
  });
});

const LLAMA: RunnerCapabilities = { version: "0.3.0", runtimes: { "llama.cpp": { versions: ["b6000"], profiles: [] } } };

describe("the union of orchard-runner and orchard-llama-runner", () => {
  it("merges runtimes (uniting versions and profiles of a shared one) and names each program", () => {
    const merged = mergeCapabilities([
      { name: "orchard-runner", caps: CAPS },
      { name: "orchard-llama-runner", caps: LLAMA },
      { name: "other", caps: { version: "9", runtimes: { sim: { versions: ["1", "2"], profiles: ["p"] } } } },
    ]);
    expect(merged.runtimes).toEqual({
      sim: { versions: ["1", "2"], profiles: ["p"] },
      executorch: CAPS.runtimes.executorch,
      "llama.cpp": { versions: ["b6000"], profiles: [] },
    });
    expect(merged.version).toBe("orchard-runner 0.3.0, orchard-llama-runner 0.3.0, other 9");
    expect(mergeCapabilities([{ name: "orchard-runner", caps: CAPS }])).toEqual(CAPS);
    expect(() => mergeCapabilities([])).toThrow(CapabilitiesError);
  });

  it("a reason for a merged device names the runners and every runtime they have", () => {
    const merged = mergeCapabilities([
      { name: "orchard-runner", caps: { version: "0.3.0", runtimes: { sim: CAPS.runtimes.sim! } } },
      { name: "orchard-llama-runner", caps: LLAMA },
    ]);
    expect(unsupportedReason({ runtime: "llama.cpp", runtimeVersion: "b6000", profile: null }, merged)).toBeNull();
    expect(unsupportedReason({ runtime: "executorch", runtimeVersion: "1.2.0", profile: null }, merged)).toBe(
      "this device's runners (orchard-runner 0.3.0, orchard-llama-runner 0.3.0) have no executorch runtime (it has: sim, llama.cpp)",
    );
    expect(unsupportedReason({ runtime: "llama.cpp", runtimeVersion: "b1", profile: null }, merged)).toMatch(
      /\) load llama\.cpp b6000, not b1$/,
    );
  });

  it("answers with the runners that answer, retries the one that failed, and fails only when none answers", async () => {
    let llamaCalls = 0;
    let llamaFails = true;
    const failures: string[] = [];
    const combined = new CombinedCapabilities(
      [
        { name: "orchard-runner", probe: async () => CAPS },
        {
          name: "orchard-llama-runner",
          probe: async () => {
            llamaCalls += 1;
            if (llamaFails) throw new Error("cannot load node-llama-cpp");
            return LLAMA;
          },
        },
      ],
      (name, error) => failures.push(`${name}: ${error.message}`),
    );
    expect(await combined.get()).toEqual(CAPS);
    expect(failures).toEqual(["orchard-llama-runner: cannot load node-llama-cpp"]);
    llamaFails = false;
    const both = await combined.get();
    expect(Object.keys(both.runtimes).sort()).toEqual(["executorch", "llama.cpp", "sim"]);
    expect(combined.cached()).toEqual(both);
    await combined.get();
    expect(llamaCalls).toBe(2);

    const none = new CombinedCapabilities([
      { name: "a", probe: async () => Promise.reject(new Error("a is broken")) },
      { name: "b", probe: async () => Promise.reject(new Error("b is broken")) },
    ]);
    await expect(none.get()).rejects.toThrow("a is broken; b is broken");
  });

  it("asks again later until every runner has answered, and hands over each new union", async () => {
    let llamaCalls = 0;
    const combined = new CombinedCapabilities([
      { name: "orchard-runner", probe: async () => CAPS },
      {
        name: "orchard-llama-runner",
        probe: async () => {
          llamaCalls += 1;
          if (llamaCalls < 3) throw new CapabilitiesError("orchard-llama-runner: capabilities unknown (probe timed out)", "timeout");
          return LLAMA;
        },
      },
    ]);
    const unions: string[][] = [];
    const retries: number[] = [];
    await new Promise<void>((resolve) => {
      askUntilComplete(combined, {
        backoff: { initialMs: 5, maxMs: 20 },
        onUnion: (caps) => {
          unions.push(Object.keys(caps.runtimes).sort());
          if (caps.runtimes["llama.cpp"]) resolve();
        },
        onRetry: (missing, delayMs) => retries.push(delayMs) && expect(missing).toEqual(["orchard-llama-runner"]),
      });
    });
    expect(unions).toEqual([
      ["executorch", "sim"],
      ["executorch", "sim"],
      ["executorch", "llama.cpp", "sim"],
    ]);
    expect(retries).toEqual([5, 10]);
    expect(combined.missing()).toEqual([]);
    expect(llamaCalls).toBe(3);
  });
});
