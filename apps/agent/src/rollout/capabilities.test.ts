import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { CapabilitiesError, CapabilityCache, type RunnerCapabilities, probeCapabilities, unsupportedReason } from "./capabilities.js";

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

  it("a runner that predates rollouts, or prints something else, is refused with a sentence", async () => {
    const old = await script('echo "orchard-runner: unknown argument \\"--capabilities\\"" >&2; exit 2');
    const garbage = await script("echo 'hello'");
    try {
      await expect(probeCapabilities(old.file)).rejects.toThrow(CapabilitiesError);
      await expect(probeCapabilities(old.file)).rejects.toThrow(
        /--capabilities failed .*: orchard-runner: unknown argument .*predates rollouts/,
      );
      await expect(probeCapabilities(garbage.file)).rejects.toThrow(/printed no valid capabilities line/);
    } finally {
      await old.done();
      await garbage.done();
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
