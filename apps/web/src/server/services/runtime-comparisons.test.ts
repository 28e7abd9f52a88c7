/**
 * Runtime comparisons against a real database (PGlite, and PostgreSQL when
 * ORCHARD_TEST_POSTGRES_URL is set) with the real rollout and benchmark services, a
 * fake clock and a recorder in place of the MQTT link. What the agent would report
 * (rollout states, benchmark results, its status with the new model) is delivered
 * through the fleet the way ingestion delivers it. The real agent, runners and broker
 * are exercised in test/integration/compare-runtimes.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type ActiveModel,
  type ArtifactManifest,
  type ArtifactRuntime,
  type BenchDeviceResult,
  type DeviceCommand,
  type RolloutDeviceState,
  type RolloutError,
  type RunnerStatus,
  type RuntimeComparisonDto,
  type SignedManifest,
} from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { BenchmarkService } from "./benchmarks.ts";
import { FleetService } from "./fleet.ts";
import { RolloutService } from "./rollouts.ts";
import { RuntimeComparisonService } from "./runtime-comparisons.ts";

const log = createLogger("error");
const T0 = Date.UTC(2026, 10, 28, 6, 40, 12);
const MiB = 2 ** 20;
const PROMPTS = [
  { id: "capital-of-france", text: "The capital of France is" },
  { id: "short-answer", text: "Hi?" },
];

interface Model {
  id: string;
  name: string;
  runtime: ArtifactRuntime;
  backend: RunnerStatus["backend"];
}
const SIM: Model = { id: "a".repeat(64), name: "sim-model", runtime: "sim", backend: "sim" };
const GGUF: Model = { id: "e".repeat(64), name: "tiny-gguf", runtime: "llama.cpp", backend: "llamacpp" };
const OTHER: Model = { id: "f".repeat(64), name: "other-gguf", runtime: "llama.cpp", backend: "llamacpp" };
const MODELS = [SIM, GGUF, OTHER];

function manifestOf(m: Model): ArtifactManifest {
  return {
    schema: 1,
    name: m.name,
    version: "1",
    runtime: m.runtime,
    runtimeVersion: "1",
    profile: null,
    maxContext: 2048,
    files: [{ name: "model.bin", role: "model", size: 8 * MiB, sha256: m.id }],
    reference: { prompt: "The capital of France is", expectedTokenIds: null },
    createdAt: T0,
  };
}
const activeModel = (m: Model): ActiveModel => ({ name: m.name, sha256: m.id, artifactId: m.id, version: "1", runtime: m.runtime });
const runner = (m: Model, state: RunnerStatus["state"] = "ready"): RunnerStatus => ({
  state,
  backend: m.backend,
  model: m.name,
  pid: 1,
  rssBytes: 1,
  maxContext: 2048,
  loadMs: 40,
  restarts: 0,
  lastError: null,
  version: "0.1.0",
});
const board = { socTempC: 50, throttleRaw: 0, cpuFreqHz: null, boardPowerW: null };
function resultFor(m: Model, decode: number): BenchDeviceResult {
  return {
    backend: m.backend,
    runnerVersion: "0.1.0",
    model: m.name,
    modelSha256: m.id,
    loadMs: 40,
    before: board,
    after: { ...board, socTempC: 55 },
    prompts: PROMPTS.map((p, i) => ({
      promptId: p.id,
      promptTokens: 6,
      generatedTokens: 8,
      ttftMs: 1000 / decode,
      prefillTokS: decode * 4,
      decodeTokS: decode + i,
      totalMs: 600,
      peakRssBytes: 64 * MiB,
      energyJPerToken: null,
      finishReason: "length",
      textPreview: "gibberish",
    })),
  };
}

describe.each(DB_KINDS)("runtime comparisons on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let rollouts: RolloutService;
  let benchmarks: BenchmarkService;
  let comparisons: RuntimeComparisonService;
  let now: number;
  let eventTs: number;
  let sent: { deviceId: string; command: DeviceCommand }[];
  let changes: RuntimeComparisonDto[];
  let dev: string;

  function services() {
    const publish = async (deviceId: string, command: DeviceCommand) => {
      sent.push({ deviceId, command });
    };
    benchmarks = new BenchmarkService(db.prisma, fleet, publish, { stallTimeoutMs: 600_000, emitCoalesceMs: 60_000 }, log, () => now);
    rollouts = new RolloutService(
      db.prisma,
      fleet,
      publish,
      {
        getSigned: async (id) => {
          const m = MODELS.find((x) => x.id === id);
          if (!m) throw new AppError("not_found", `No model ${id}.`);
          return { manifest: manifestOf(m), keyId: "k", signature: `${"A".repeat(86)}==` } satisfies SignedManifest;
        },
      },
      { tickMs: 3600_000, progressWriteMs: 2000, emitCoalesceMs: 60_000, resendMs: 30_000, recoveryGraceMs: 0, downloadUrl: "/b" },
      log,
      () => now,
    );
    comparisons = new RuntimeComparisonService(
      db.prisma,
      fleet,
      rollouts,
      benchmarks,
      { emitCoalesceMs: 60_000, rolloutTimeoutMs: 3600_000, healthTimeoutMs: 600_000 },
      log,
      () => now,
    );
    comparisons.on("changed", (c) => changes.push(c));
  }
  async function closeServices() {
    await comparisons.close();
    await rollouts.close();
    await benchmarks.close();
  }

  /** Lets every service finish what the last event set off (each announces to the next). */
  async function settle() {
    for (let i = 0; i < 6; i++) {
      await rollouts.idle();
      await benchmarks.idle();
      await comparisons.idle();
    }
  }
  function status(m: Model, state: RunnerStatus["state"] = "ready", previous: Model | null = null) {
    fleet.applyStatus(dev, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: "pi",
      arch: "arm64",
      runner: runner(m, state),
      activeModel: activeModel(m),
      previousModel: previous ? activeModel(previous) : null,
    });
  }
  const commands = (type: DeviceCommand["type"]) => sent.filter((s) => s.command.type === type).map((s) => s.command);
  function lastApply(): { rolloutId: string; artifactId: string } {
    const c = commands("rollout.apply").at(-1);
    if (c?.type !== "rollout.apply") throw new Error("no rollout.apply sent");
    return c;
  }
  function lastBench(): string {
    const c = commands("bench.run").at(-1);
    if (c?.type !== "bench.run") throw new Error("no bench.run sent");
    return c.runId;
  }
  function report(rolloutId: string, artifactId: string, state: RolloutDeviceState, error: RolloutError | null = null) {
    fleet.applyEvent(dev, { kind: "rollout.state", ts: ++eventTs, rolloutId, artifactId, state, attempt: 1, error });
  }
  /** The agent's side of a successful rollout: its states, then its status on the new model (loading, then ready). */
  async function rollOut(to: Model, from: Model) {
    const { rolloutId, artifactId } = lastApply();
    expect(artifactId).toBe(to.id);
    for (const s of ["preflight", "downloading", "verifying", "staged", "activating", "health_check", "active"] as const)
      report(rolloutId, artifactId, s);
    await settle();
    status(to, "starting", from);
    await settle();
    status(to, "ready", from);
    await settle();
  }
  async function benchDone(m: Model, decode: number) {
    const runId = lastBench();
    fleet.applyEvent(dev, { kind: "bench.progress", ts: ++eventTs, runId, completed: 1, total: PROMPTS.length });
    await settle();
    fleet.applyEvent(dev, { kind: "bench.result", ts: ++eventTs, runId, ok: true, error: null, result: resultFor(m, decode) });
    await settle();
  }
  const start = (artifactIds: string[]) => comparisons.create({ deviceId: dev, artifactIds, prompts: PROMPTS, maxNewTokens: 8 }, null);
  async function get(id: string) {
    await settle();
    return comparisons.get(id);
  }

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    eventTs = T0;
    sent = [];
    changes = [];
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    for (const m of MODELS) {
      await db.prisma.artifact.create({
        data: {
          id: m.id,
          name: m.name,
          version: "1",
          runtime: m.runtime,
          manifest: manifestOf(m),
          keyId: "k",
          signature: "s",
          totalBytes: BigInt(8 * MiB),
          source: "upload",
        },
      });
    }
    dev = "dev-pi";
    const row = await db.prisma.device.create({ data: { id: dev, name: "pi", mqttPasswordHash: "x", enrolledAt: new Date(now) } });
    fleet.added(row);
    status(SIM);
    services();
  });
  afterEach(async () => {
    await closeServices();
    await db.close();
  });

  it("benchmarks the model the device runs, rolls out and benchmarks the next, then restores the original", async () => {
    const created = await start([SIM.id, GGUF.id]);
    expect(created).toMatchObject({ state: "running", phase: "benchmarking", stepIndex: 0, originalArtifactId: SIM.id });
    // The device already runs the sim model: no rollout, the benchmark starts at once.
    expect(commands("rollout.apply")).toHaveLength(0);
    expect(commands("bench.run")).toHaveLength(1);
    expect(created.stepText).toBe("Benchmarking sim-model 1 (sim): 0/2 prompts");

    fleet.applyEvent(dev, { kind: "bench.progress", ts: ++eventTs, runId: lastBench(), completed: 1, total: 2 });
    expect((await get(created.id)).stepText).toBe("Benchmarking sim-model 1 (sim): 1/2 prompts");
    await benchDone(SIM, 10);

    // Step 2: a single-device rollout of the GGUF, no canary, health gate on.
    let c = await get(created.id);
    expect(c).toMatchObject({ phase: "rolling_out", stepIndex: 1 });
    expect(c.stepText).toMatch(/^Rolling out tiny-gguf 1 \(llama\.cpp\)…/);
    const apply = lastApply();
    expect(apply.artifactId).toBe(GGUF.id);
    const rollout = await rollouts.get(apply.rolloutId);
    expect(rollout.strategy).toMatchObject({ canary: 0, health: { referenceCheck: true } });
    expect(rollout.devices.map((d) => d.deviceId)).toEqual([dev]);

    await rollOut(GGUF, SIM);
    c = await get(created.id);
    expect(c).toMatchObject({ phase: "benchmarking", stepIndex: 1 });
    expect(commands("bench.run")).toHaveLength(2);
    await benchDone(GGUF, 40);

    // Restore: a rollout of the sim model the device started with.
    c = await get(created.id);
    expect(c.phase).toBe("restoring");
    expect(c.stepText).toMatch(/^Restoring the original model…/);
    expect(c.restoreRolloutId).toBe(lastApply().rolloutId);
    await rollOut(SIM, GGUF);

    c = await get(created.id);
    expect(c).toMatchObject({ state: "completed", phase: "done", error: null });
    expect(c.steps.map((s) => [s.runtime, s.state, s.rolloutId !== null, s.runId !== null])).toEqual([
      ["sim", "done", false, true],
      ["llama.cpp", "done", true, true],
    ]);
    // Browsers were told about each step.
    await comparisons.idle();
    expect(changes.map((x) => x.phase)).toEqual(expect.arrayContaining(["benchmarking", "rolling_out", "restoring", "done"]));

    const detail = await comparisons.detail(created.id);
    expect(detail.runs.map((r) => r?.devices[0]?.result?.backend)).toEqual(["sim", "llamacpp"]);
    const agg = detail.sideBySide.rows.at(-1)!;
    expect(agg).toMatchObject({ prompt: "all prompts", aggregate: true });
    expect(agg.values.decodeTokS).toEqual([10.5, 40.5]);
    expect(agg.speedup.decodeTokS[1]).toBeCloseTo(40.5 / 10.5);
    // TTFT: lower is better, so the factor is A ÷ B (4× faster here).
    expect(detail.sideBySide.rows[0]!.speedup.ttftMs[1]).toBeCloseTo(4);
  });

  it("a failed rollout fails the comparison with the device's reason and still restores the original model", async () => {
    const created = await start([GGUF.id, OTHER.id]);
    await rollOut(GGUF, SIM);
    await benchDone(GGUF, 40);
    // The second model fails its health gate: the agent rolls back to the GGUF.
    const { rolloutId } = lastApply();
    expect(lastApply().artifactId).toBe(OTHER.id);
    for (const s of ["preflight", "downloading", "verifying", "staged", "activating", "health_check"] as const)
      report(rolloutId, OTHER.id, s);
    report(rolloutId, OTHER.id, "rolled_back", { code: "load_failed", message: "the model did not load: bad magic" });
    await settle();

    let c = await get(created.id);
    expect(c.phase).toBe("restoring");
    expect(c.error).toBe("other-gguf 1 (llama.cpp) could not be rolled out to pi: the model did not load: bad magic");
    expect(c.steps.map((s) => s.state)).toEqual(["done", "failed"]);
    expect(lastApply().artifactId).toBe(SIM.id);
    await rollOut(SIM, GGUF);

    c = await get(created.id);
    expect(c).toMatchObject({ state: "failed", phase: "done" });
    expect(c.error).toContain("bad magic");
    expect(fleet.get(dev)!.activeModel!.artifactId).toBe(SIM.id);
    // The first model's results are kept.
    const detail = await comparisons.detail(created.id);
    expect(detail.runs[0]!.devices[0]!.state).toBe("done");
    expect(detail.runs[1]).toBeNull();
  });

  it("a failure before the device switched models finishes without a restore rollout", async () => {
    const created = await start([GGUF.id, SIM.id]);
    const { rolloutId } = lastApply();
    report(rolloutId, GGUF.id, "preflight");
    report(rolloutId, GGUF.id, "failed", { code: "unsupported_runtime", message: "this device's runners do not load llama.cpp" });
    await settle();
    const c = await get(created.id);
    expect(c).toMatchObject({ state: "failed", phase: "done", restoreRolloutId: null });
    expect(c.error).toContain("do not load llama.cpp");
    expect(c.steps.map((s) => s.state)).toEqual(["failed", "skipped"]);
    expect(commands("rollout.apply")).toHaveLength(1);
  });

  it("cancel during a rollout aborts it and ends cancelled with the original model in place", async () => {
    const created = await start([GGUF.id, SIM.id]);
    const { rolloutId } = lastApply();
    report(rolloutId, GGUF.id, "preflight");
    report(rolloutId, GGUF.id, "downloading");
    await settle();
    const cancelling = await comparisons.cancel(created.id);
    expect(cancelling.cancelRequested).toBe(true);
    await settle();
    expect(commands("rollout.abort")).toHaveLength(1);
    expect((await rollouts.get(rolloutId)).state).toBe("aborted");
    // Until the device confirms, the comparison waits.
    expect((await get(created.id)).state).toBe("running");
    report(rolloutId, GGUF.id, "aborted", { code: "aborted", message: "aborted by the server" });
    await settle();
    const c = await get(created.id);
    expect(c).toMatchObject({ state: "cancelled", phase: "done", error: null });
    expect(c.steps.map((s) => s.state)).toEqual(["skipped", "skipped"]);
    await expect(comparisons.cancel(created.id)).rejects.toThrow(/cancelled already/);
  });

  it("cancel during a benchmark on a switched device restores the original model", async () => {
    const created = await start([GGUF.id, SIM.id]);
    await rollOut(GGUF, SIM);
    expect((await get(created.id)).phase).toBe("benchmarking");
    await comparisons.cancel(created.id);
    await settle();
    expect(lastApply().artifactId).toBe(SIM.id);
    await rollOut(SIM, GGUF);
    expect(await get(created.id)).toMatchObject({ state: "cancelled", phase: "done" });
  });

  it("a server restart resumes the comparison from its row", async () => {
    const created = await start([SIM.id, GGUF.id]);
    const runId = lastBench();
    await closeServices();
    // A new server process: the services are built again and recover what was open.
    services();
    expect(await benchmarks.recover()).toBe(1);
    await rollouts.recover();
    expect(await comparisons.recover()).toBe(1);
    await settle();
    fleet.applyEvent(dev, { kind: "bench.result", ts: ++eventTs, runId, ok: true, error: null, result: resultFor(SIM, 10) });
    await settle();
    expect(await get(created.id)).toMatchObject({ phase: "rolling_out", stepIndex: 1 });
    await rollOut(GGUF, SIM);
    await benchDone(GGUF, 40);
    await rollOut(SIM, GGUF);
    expect(await get(created.id)).toMatchObject({ state: "completed" });
  });

  it("refuses clearly: fewer than two models, offline device, a device in a rollout, a model not from a rollout, a second comparison", async () => {
    await expect(start([SIM.id])).rejects.toThrow("Choose at least two models to compare.");
    await expect(start([SIM.id, SIM.id])).rejects.toThrow("Choose each model only once.");
    await expect(start([SIM.id, "9".repeat(64)])).rejects.toThrow(/No model 9{64}/);

    const first = await start([GGUF.id, SIM.id]); // now in a rollout
    await expect(start([SIM.id, GGUF.id])).rejects.toThrow(/already in a runtime comparison/);
    await comparisons.cancel(first.id);
    await settle();
    expect((await get(first.id)).state).toBe("cancelled");
    // A rollout someone else started.
    const other = await rollouts.create({ artifactId: OTHER.id, deviceIds: [dev] }, null);
    await expect(start([SIM.id, GGUF.id])).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/already in a rollout/),
    });
    await rollouts.abort(other.id);
    // A benchmark run in progress.
    await benchmarks.create({ deviceIds: [dev], prompts: PROMPTS });
    await expect(start([SIM.id, GGUF.id])).rejects.toThrow("pi is running a benchmark; wait for it to finish.");

    fleet.applyStatus(dev, { state: "offline", reason: "lost" });
    await expect(start([SIM.id, GGUF.id])).rejects.toMatchObject({
      code: "unavailable",
      message: "pi is offline; a comparison needs it online.",
    });

    fleet.applyStatus(dev, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: "pi",
      arch: "arm64",
      runner: runner(SIM),
      activeModel: { name: "sim (no model)", sha256: null },
    });
    await expect(start([SIM.id, GGUF.id])).rejects.toThrow(/did not come from a rollout/);

    // A device whose runners cannot load one of the models is refused before anything starts.
    const comparisonsBefore = await db.prisma.runtimeComparison.count();
    fleet.applyStatus(dev, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: "pi",
      arch: "arm64",
      runner: runner(SIM),
      activeModel: activeModel(SIM),
      runtimes: ["executorch", "sim"],
    });
    await expect(start([SIM.id, GGUF.id])).rejects.toMatchObject({
      code: "bad_request",
      message: expect.stringMatching(/^pi cannot load llama\.cpp models: its runners load executorch, sim\. \(/),
    });
    expect(await db.prisma.runtimeComparison.count()).toBe(comparisonsBefore);
  });
});
