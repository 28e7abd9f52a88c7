import { describe, expect, it } from "vitest";
import { MODEL_RAM_HEADROOM_BYTES, type ArtifactManifest } from "@orchard/contracts";
import { binaryBytes, deviceFit, type FitDevice } from "./rollout-preflight.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const ID = "a".repeat(64);
const executorch: Pick<ArtifactManifest, "runtime" | "files"> = {
  runtime: "executorch",
  files: [
    { name: "model.pte", role: "model", size: 2 * GiB, sha256: "c".repeat(64) },
    { name: "tokenizer.json", role: "tokenizer", size: 4 * MiB, sha256: "d".repeat(64) },
  ],
};
const pi = (over: Partial<FitDevice> = {}): FitDevice => ({
  id: "dev-pi",
  name: "pi-3",
  online: true,
  runtimes: ["executorch", "sim"],
  activeModel: null,
  previousModel: null,
  telemetry: { memTotalBytes: 8 * GiB, diskFreeBytes: 20 * GiB },
  ...over,
});

describe("deviceFit", () => {
  it("passes a device that loads the runtime and has the RAM and disk", () => {
    expect(deviceFit(pi(), ID, executorch)).toEqual({
      deviceId: "dev-pi",
      name: "pi-3",
      online: true,
      ok: true,
      reasons: [],
      notes: [],
      runsIt: false,
    });
  });

  it("refuses a device whose runners do not load the runtime, naming what they load", () => {
    const fit = deviceFit(pi({ runtimes: ["sim", "llama.cpp"] }), ID, executorch);
    expect(fit.ok).toBe(false);
    expect(fit.reasons).toEqual(["pi-3 cannot load executorch models: its runners load sim, llama.cpp."]);
  });

  it("refuses a device with less RAM than the model plus the agent's headroom", () => {
    const need = 2 * GiB + MODEL_RAM_HEADROOM_BYTES;
    const fit = deviceFit(pi({ telemetry: { memTotalBytes: 2 * GiB, diskFreeBytes: 20 * GiB } }), ID, executorch);
    expect(fit.ok).toBe(false);
    expect(fit.reasons).toEqual(["pi-3 has 2.0 GiB of RAM; the model needs 2.5 GiB (2.0 GiB mapped + 512 MiB)."]);
    expect(deviceFit(pi({ telemetry: { memTotalBytes: need - 1, diskFreeBytes: 20 * GiB } }), ID, executorch).ok).toBe(false);
    // Exactly enough is enough (the agent's rule: MemTotal < need refuses).
    expect(deviceFit(pi({ telemetry: { memTotalBytes: need, diskFreeBytes: 20 * GiB } }), ID, executorch).ok).toBe(true);
    // sim models map nothing: no RAM rule.
    expect(deviceFit(pi({ telemetry: { memTotalBytes: 1, diskFreeBytes: 20 * GiB } }), ID, { ...executorch, runtime: "sim" }).ok).toBe(
      true,
    );
  });

  it("notes, without refusing, a disk that looks too small, an offline device and a device that has not said what it loads", () => {
    const fit = deviceFit(pi({ online: false, runtimes: null, telemetry: { memTotalBytes: 8 * GiB, diskFreeBytes: GiB } }), ID, executorch);
    expect(fit.ok).toBe(true);
    expect(fit.reasons).toEqual([]);
    expect(fit.notes).toEqual([
      "pi-3 has not said which runtimes it loads (an older agent): its own preflight decides.",
      "pi-3 reported 1.0 GiB free on its disk and the model takes 2.0 GiB: it fails unless deleting models other than its active and previous one makes room.",
      "pi-3 is offline: it gets the rollout when it connects (within the device timeout).",
    ]);
  });

  it("does not check RAM or disk of a device that runs the model already, and says it runs it", () => {
    const active = { name: "m", sha256: "c".repeat(64), artifactId: ID, version: "1", runtime: "executorch" as const };
    const fit = deviceFit(pi({ activeModel: active, telemetry: { memTotalBytes: 1, diskFreeBytes: 0 } }), ID, executorch);
    expect(fit).toMatchObject({ ok: true, reasons: [], notes: [], runsIt: true });
  });

  it("refuses a device that is in another rollout", () => {
    const fit = deviceFit(pi(), ID, executorch, "spring, running");
    expect(fit.ok).toBe(false);
    expect(fit.reasons).toEqual(["pi-3 is already in a rollout (spring, running); wait for it to finish or abort it first."]);
  });

  it("writes sizes in binary units", () => {
    expect([binaryBytes(512), binaryBytes(1536), binaryBytes(512 * MiB), binaryBytes(2.5 * GiB), binaryBytes(200 * GiB)]).toEqual([
      "512 B",
      "1.5 KiB",
      "512 MiB",
      "2.5 GiB",
      "200 GiB",
    ]);
  });
});
