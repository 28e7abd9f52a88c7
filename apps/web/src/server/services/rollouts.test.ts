/**
 * The rollout service against a real database (PGlite, and PostgreSQL when
 * ORCHARD_TEST_POSTGRES_URL is set), with a fake clock and a recorder in place of the
 * MQTT link; device events go through the fleet as ingestion delivers them. The
 * planner's decisions are tested as tables in rollout-planner.test.ts; the real link,
 * agents and runner in test/integration/rollout.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type ActiveModel,
  type ArtifactManifest,
  type DeviceCommand,
  type RolloutDeviceState,
  type RolloutDto,
  type RolloutError,
  type RolloutStrategy,
  type RunnerStatus,
  type SignedManifest,
} from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { DeviceService } from "./devices.ts";
import { FleetService } from "./fleet.ts";
import { RolloutService, blobDownloadUrl, type RolloutOptions } from "./rollouts.ts";
import { TelemetryStore } from "./telemetry-store.ts";

const log = createLogger("error");
const T0 = Date.UTC(2026, 10, 28, 6, 40, 12);
const MiB = 2 ** 20;
const OPTS: RolloutOptions = {
  tickMs: 3600_000, // the tests call tick() themselves
  progressWriteMs: 2000,
  emitCoalesceMs: 60_000,
  resendMs: 30_000,
  recoveryGraceMs: 0,
  downloadUrl: "/api/artifacts/blobs",
};
const ready: RunnerStatus = {
  state: "ready",
  backend: "sim",
  model: "sim (no model)",
  pid: 1,
  rssBytes: 1,
  maxContext: 2048,
  loadMs: 40,
  restarts: 0,
  lastError: null,
  version: "0.1.0",
};

const ARTIFACT = "a".repeat(64);
const OLD_ARTIFACT = "b".repeat(64);
const manifest: ArtifactManifest = {
  schema: 1,
  name: "sim-model",
  version: "2",
  runtime: "sim",
  runtimeVersion: "1",
  profile: null,
  maxContext: 2048,
  files: [{ name: "model.sim", role: "model", size: 64 * MiB, sha256: "c".repeat(64) }],
  reference: { prompt: "The capital of France is", expectedTokenIds: [1, 2, 3] },
  createdAt: T0,
};
const signed: SignedManifest = { manifest, keyId: "test-key", signature: `${"A".repeat(86)}==` };
const oldModel: ActiveModel = { name: "sim-model", sha256: "d".repeat(64), artifactId: OLD_ARTIFACT, version: "1", runtime: "sim" };
const newModel: ActiveModel = { name: "sim-model", sha256: "c".repeat(64), artifactId: ARTIFACT, version: "2", runtime: "sim" };

describe.each(DB_KINDS)("rollouts on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let devices: DeviceService;
  let rollouts: RolloutService;
  let now: number;
  let eventTs: number;
  let sent: { deviceId: string; command: DeviceCommand }[];
  let changes: RolloutDto[];

  const newService = (over: Partial<RolloutOptions> = {}) => {
    const s = new RolloutService(
      db.prisma,
      fleet,
      async (deviceId, command) => {
        sent.push({ deviceId, command });
      },
      {
        getSigned: async (id) => {
          if (id !== ARTIFACT) throw new AppError("not_found", `No model ${id}.`);
          return signed;
        },
      },
      { ...OPTS, ...over },
      log,
      () => now,
    );
    s.on("changed", (r) => changes.push(r));
    return s;
  };

  function online(
    id: string,
    activeModel: ActiveModel | null = oldModel,
    previousModel: ActiveModel | null = null,
    runtimes: string[] | null = null,
  ) {
    fleet.applyStatus(id, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: id,
      arch: "arm64",
      runner: ready,
      activeModel,
      previousModel,
      runtimes,
    });
  }
  const offline = (id: string) => fleet.applyStatus(id, { state: "offline", reason: "lost" });

  async function addDevice(name: string, opts: { online?: boolean; model?: ActiveModel | null; tags?: string[] } = {}): Promise<string> {
    const id = `dev-${name}`;
    const row = await db.prisma.device.create({ data: { id, name, mqttPasswordHash: "x", enrolledAt: new Date(now) } });
    fleet.added(row);
    if (opts.tags) await devices.setTags(id, opts.tags);
    if (opts.online !== false) online(id, opts.model === undefined ? oldModel : opts.model);
    return id;
  }

  /** What the agent reports, delivered the way ingestion delivers it. */
  const report = (deviceId: string, rolloutId: string, state: RolloutDeviceState, error: RolloutError | null = null) =>
    fleet.applyEvent(deviceId, { kind: "rollout.state", ts: ++eventTs, rolloutId, artifactId: ARTIFACT, state, attempt: 1, error });
  const progress = (deviceId: string, rolloutId: string, bytesDone: number) =>
    fleet.applyEvent(deviceId, {
      kind: "rollout.progress",
      ts: ++eventTs,
      rolloutId,
      artifactId: ARTIFACT,
      state: "downloading",
      bytesDone,
      bytesTotal: 64 * MiB,
      rateBps: 8 * MiB,
      etaSeconds: (64 * MiB - bytesDone) / (8 * MiB),
    });
  /** Walks a device through the agent's states to `last`. */
  async function walk(deviceId: string, rolloutId: string, last: RolloutDeviceState = "active") {
    for (const s of ["preflight", "downloading", "verifying", "staged", "activating", "health_check"] as const) {
      report(deviceId, rolloutId, s);
      if (s === last) break;
    }
    if (last === "active") {
      report(deviceId, rolloutId, "active");
      online(deviceId, newModel, oldModel);
    }
    await rollouts.idle();
  }
  const applies = (type: DeviceCommand["type"] = "rollout.apply") => sent.filter((s) => s.command.type === type).map((s) => s.deviceId);
  const stateOf = (r: RolloutDto) => Object.fromEntries(r.devices.map((d) => [d.deviceName, d.state]));
  async function get(id: string) {
    await rollouts.idle();
    return rollouts.get(id);
  }
  async function step() {
    rollouts.tick();
    await rollouts.idle();
  }
  const create = (deviceIds: string[], strategy: Partial<RolloutStrategy> = {}, tags: string[] = []) =>
    rollouts.create({ artifactId: ARTIFACT, deviceIds, tags, strategy }, null);

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    eventTs = T0;
    sent = [];
    changes = [];
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    devices = new DeviceService(
      db.prisma,
      fleet,
      { onRemoved: () => undefined },
      new TelemetryStore(db.prisma, { rawHours: 24, rollupDays: 30 }, log),
    );
    await db.prisma.artifact.create({
      data: {
        id: ARTIFACT,
        name: manifest.name,
        version: manifest.version,
        runtime: "sim",
        manifest,
        keyId: signed.keyId,
        signature: signed.signature,
        totalBytes: BigInt(64 * MiB),
        source: "upload",
      },
    });
    rollouts = newService();
  });
  afterEach(async () => {
    await rollouts.close();
    await db.close();
  });

  it("creates the rollout with canaries first, online devices before offline ones, and sends the canary alone", async () => {
    const c = await addDevice("c");
    const a = await addDevice("a");
    const off = await addDevice("b-off", { online: false });
    const r = await create([c, off, a], { canary: 1, batchSize: 2 });

    expect(r.name).toBe("sim-model 2 · 2026-11-28 06:40 UTC");
    expect(r).toMatchObject({ state: "running", artifactName: "sim-model", artifactVersion: "2", artifactRuntime: "sim" });
    expect(r.devices.map((d) => [d.deviceName, d.position, d.canary])).toEqual([
      ["a", 0, true],
      ["c", 1, false],
      ["b-off", 2, false],
    ]);
    // What a rollback returns to: the model each device ran (the offline one never reported one).
    expect(r.devices.map((d) => [d.previousArtifactId, d.bytesTotal])).toEqual([
      [OLD_ARTIFACT, 64 * MiB],
      [OLD_ARTIFACT, 64 * MiB],
      [null, 64 * MiB],
    ]);
    expect(r.strategy).toMatchObject({ canary: 1, batchSize: 2, maxConcurrentDownloads: 3, failureThreshold: 1, retries: 1 });
    expect(r.counts).toEqual({ total: 3, waiting: 2, inFlight: 1, active: 0, failed: 0, rolledBack: 0, aborted: 0 });

    expect(sent).toHaveLength(1);
    expect(sent[0]).toEqual({
      deviceId: a,
      command: {
        type: "rollout.apply",
        id: expect.any(String),
        ts: T0,
        rolloutId: r.id,
        artifactId: ARTIFACT,
        signed,
        downloadUrl: "/api/artifacts/blobs",
        health: { referenceCheck: true, minDecodeTokS: null, timeoutMs: 600_000 },
        attempt: 1,
      },
    });
    // Recorded as sent before it was sent.
    const row = await db.prisma.rolloutDevice.findUniqueOrThrow({ where: { rolloutId_deviceId: { rolloutId: r.id, deviceId: a } } });
    expect(row).toMatchObject({ state: "pending", attempt: 1, canary: true });
    expect(row.sentAt?.getTime()).toBe(T0);
  });

  it("refuses bad input with a clear error", async () => {
    const a = await addDevice("a", { tags: ["kitchen"] });
    const refuse = (p: Promise<unknown>, code: string, message: RegExp) =>
      expect(p).rejects.toSatisfy((e: AppError) => e.code === code && message.test(e.message));
    await refuse(rollouts.create({ artifactId: "f".repeat(64), deviceIds: [a] }, null), "not_found", /No model f{64}/);
    await refuse(rollouts.create({ artifactId: "nope", deviceIds: [a] }, null), "bad_request", /artifactId/);
    await refuse(create(["dev-ghost"]), "not_found", /No device dev-ghost/);
    await refuse(create([]), "bad_request", /at least one device or tag/);
    await refuse(create([], {}, ["garage"]), "bad_request", /No device has the tag garage/);
    await refuse(create([], {}, ["Kitchen"]), "bad_request", /lower-case/);
    await refuse(create([a], { batchSize: 0 }), "bad_request", /strategy\.batchSize/);
    await refuse(create([a], { retries: 11 }), "bad_request", /strategy\.retries/);
    // A device whose runners said what they load is refused a model of another runtime before anything starts.
    online(a, oldModel, null, ["executorch", "llama.cpp"]);
    await refuse(create([a]), "bad_request", /^a cannot load sim models: its runners load executorch, llama\.cpp\.$/);
    expect(await db.prisma.rollout.count()).toBe(0);
    online(a, oldModel, null, ["sim"]);
    await create([a]);
    expect(await db.prisma.rollout.count()).toBe(1);
  });

  it("preflight answers per device what create decides: the runtime, another rollout, and the whole fleet by default", async () => {
    const a = await addDevice("a", { tags: ["kitchen"] });
    const b = await addDevice("b", { tags: ["kitchen"] });
    const c = await addDevice("c");
    online(b, oldModel, null, ["executorch"]);
    const fits = await rollouts.preflight({ artifactId: ARTIFACT, tags: ["kitchen"] });
    expect(fits.ok).toBe(1);
    expect(fits.devices.map((d) => [d.name, d.ok, d.reasons])).toEqual([
      ["a", true, []],
      ["b", false, ["b cannot load sim models: its runners load executorch."]],
    ]);
    // The same reason refuses the rollout.
    await expect(create([], {}, ["kitchen"])).rejects.toThrow(/^b cannot load sim models: its runners load executorch\.$/);
    const r = await create([a], { canary: 0 });
    // a now works on r: preflight says so, as create refuses it (409).
    const whole = await rollouts.preflight({ artifactId: ARTIFACT });
    expect(whole.devices.map((d) => d.deviceId)).toEqual([a, b, c]);
    expect(whole.devices[0]!.reasons).toEqual([`a is already in a rollout (${r.name}, running); wait for it to finish or abort it first.`]);
    expect(whole.devices[2]).toMatchObject({ ok: true, reasons: [] });
    await expect(create([a])).rejects.toSatisfy((e: AppError) => e.code === "conflict");
    await expect(rollouts.preflight({ artifactId: "f".repeat(64) })).rejects.toThrow(/No model/);
  });

  it("targets devices by tag (any of the tags), together with devices named directly", async () => {
    const a = await addDevice("a", { tags: ["kitchen", "pi5-8gb"] });
    await addDevice("b", { tags: ["garage"] });
    const c = await addDevice("c", { tags: ["pi5-8gb"] });
    const d = await addDevice("d");
    const r = await create([d], { canary: 0 }, ["kitchen", "pi5-8gb"]);
    expect(r.devices.map((x) => x.deviceId).sort()).toEqual([a, c, d].sort());
  });

  it("validates and normalises device tags", async () => {
    const a = await addDevice("a");
    expect(await devices.setTags(a, ["pi5-8gb", "kitchen", "kitchen"])).toEqual(["kitchen", "pi5-8gb"]);
    expect(fleet.get(a)!.tags).toEqual(["kitchen", "pi5-8gb"]);
    expect((await db.prisma.device.findUniqueOrThrow({ where: { id: a } })).tags).toEqual(["kitchen", "pi5-8gb"]);
    await expect(devices.setTags(a, ["Kitchen"])).rejects.toThrow(/lower-case letters.*\("Kitchen"\)/);
    await expect(devices.setTags(a, ["a b"])).rejects.toThrow(/lower-case/);
    await expect(devices.setTags(a, ["-x"])).rejects.toThrow(/starts with a letter or digit/);
    await expect(devices.setTags(a, [""])).rejects.toThrow(/cannot be empty/);
    await expect(
      devices.setTags(
        a,
        Array.from({ length: 17 }, (_, i) => `t${i}`),
      ),
    ).rejects.toThrow(/at most 16 tags/);
    await expect(devices.setTags("dev-ghost", ["x"])).rejects.toThrow(/No device dev-ghost/);
    expect(await devices.setTags(a, [])).toEqual([]);
    // A fresh fleet reads them from the database.
    await devices.setTags(a, ["kitchen"]);
    const reloaded = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await reloaded.load();
    expect(reloaded.get(a)!.tags).toEqual(["kitchen"]);
  });

  it("happy path: the canary, then batches within the download cap, to completed", async () => {
    const ids = [];
    for (const n of ["a", "b", "c", "d"]) ids.push(await addDevice(n));
    const [a, b, c, d] = ids as [string, string, string, string];
    const r = await create(ids, { canary: 1, batchSize: 2, maxConcurrentDownloads: 2 });
    expect(applies()).toEqual([a]);

    // While the canary works, nobody else goes.
    await walk(a, r.id, "health_check");
    await step();
    expect(applies()).toEqual([a]);
    expect(stateOf(await get(r.id))).toEqual({ a: "health_check", b: "pending", c: "pending", d: "pending" });

    await walk(a, r.id);
    expect(applies()).toEqual([a, b, c]);
    // Two in flight: d waits for a slot.
    await walk(b, r.id);
    expect(applies()).toEqual([a, b, c, d]);
    await walk(c, r.id);
    await walk(d, r.id);

    const done = await get(r.id);
    expect(done.state).toBe("completed");
    expect(done.finishedAt).toBe(T0);
    expect(done.counts).toMatchObject({ total: 4, active: 4 });
    expect(done.devices.every((x) => x.bytesDone === x.bytesTotal && x.finishedAt === T0 && x.error === null)).toBe(true);
    const stored = await db.prisma.rollout.findUniqueOrThrow({ where: { id: r.id }, include: { devices: true } });
    expect(stored.state).toBe("completed");
    expect(stored.devices.map((x) => x.state)).toEqual(["active", "active", "active", "active"]);
    // Browsers were told (coalesced): the last announcement is the completed rollout.
    expect(changes.at(-1)).toMatchObject({ id: r.id, state: "completed" });
    // Finished: the next rollout of these devices is allowed.
    await expect(create([a])).resolves.toMatchObject({ state: "completed" });
  });

  it("a device that already runs the model is active from the start, and a rollout with nothing to do is completed", async () => {
    const a = await addDevice("a", { model: newModel });
    const b = await addDevice("b");
    const r = await create([a, b], { canary: 1 });
    expect(r.devices.map((d) => [d.deviceName, d.state, d.canary, d.sent])).toEqual([
      ["b", "pending", true, true],
      ["a", "active", false, false],
    ]);
    expect(applies()).toEqual([b]);
    await walk(b, r.id);
    expect((await get(r.id)).state).toBe("completed");
    const again = await create([a]);
    expect(again.state).toBe("completed");
    expect(again.devices[0]!.state).toBe("active");
  });

  it("keeps download progress in memory and writes it at most every 2 s per device", async () => {
    const a = await addDevice("a");
    const r = await create([a], { canary: 0 });
    report(a, r.id, "downloading");
    await rollouts.idle();
    const dbBytes = async () =>
      Number(
        (await db.prisma.rolloutDevice.findUniqueOrThrow({ where: { rolloutId_deviceId: { rolloutId: r.id, deviceId: a } } })).bytesDone,
      );

    now += 2500;
    progress(a, r.id, 8 * MiB); // due: written
    await rollouts.idle();
    expect(await dbBytes()).toBe(8 * MiB);
    now += 500;
    progress(a, r.id, 16 * MiB); // not due: memory only
    await rollouts.idle();
    expect(await dbBytes()).toBe(8 * MiB);
    expect((await rollouts.get(r.id)).devices[0]).toMatchObject({
      state: "downloading",
      bytesDone: 16 * MiB,
      rateBps: 8 * MiB,
      etaSeconds: 6,
    });
    expect(changes.at(-1)!.devices[0]!.bytesDone).toBe(16 * MiB);

    now += 2000;
    await step(); // the loop writes what is due
    expect(await dbBytes()).toBe(16 * MiB);

    // Progress after the device moved on (or from a device not in flight) is not news.
    report(a, r.id, "verifying");
    progress(a, r.id, 1);
    await rollouts.idle();
    expect((await rollouts.get(r.id)).devices[0]).toMatchObject({ state: "verifying", bytesDone: 64 * MiB, rateBps: null });
  });

  it("retries a device whose failure a new try can fix, ignores news from the failed try, and counts it failed when retries are used up", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const r = await create([a, b], { canary: 0, batchSize: 1, retries: 1, failureThreshold: 2 });
    expect(applies()).toEqual([a]);
    report(a, r.id, "downloading");
    report(a, r.id, "failed", { code: "hash_mismatch", message: "model.sim: sha256 differs" });
    await rollouts.idle();

    // Retried at once, before b: attempt 2, same rollout.
    expect(applies()).toEqual([a, a]);
    expect(sent.at(-1)!.command).toMatchObject({ type: "rollout.apply", rolloutId: r.id, attempt: 2 });
    let now2 = await get(r.id);
    expect(now2.devices[0]).toMatchObject({ deviceName: "a", state: "pending", attempt: 2, sent: true, willRetry: false });
    // A re-delivered event of the first try changes nothing.
    fleet.applyEvent(a, {
      kind: "rollout.state",
      ts: eventTs - 1,
      rolloutId: r.id,
      artifactId: ARTIFACT,
      state: "failed",
      attempt: 1,
      error: null,
    });
    now2 = await get(r.id);
    expect(now2.devices[0]!.state).toBe("pending");

    report(a, r.id, "failed", { code: "hash_mismatch", message: "model.sim: sha256 differs again" });
    await rollouts.idle();
    const after = await get(r.id);
    expect(after.devices[0]).toMatchObject({ state: "failed", attempt: 2, willRetry: false, error: { code: "hash_mismatch" } });
    // 1 failure < threshold 2: b goes.
    expect(after.state).toBe("running");
    expect(applies()).toEqual([a, a, b]);
  });

  it("a late report of an earlier try (its serverAttempt lower than the device's) is ignored and counted, whatever its timestamp", async () => {
    const stale: { state: string; serverAttempt: number; current: number }[] = [];
    await rollouts.close();
    rollouts = newService({ onStaleReport: (info) => stale.push(info) });
    const a = await addDevice("a");
    const r = await create([a], { canary: 0, retries: 1 });
    const tried = (serverAttempt: number, state: RolloutDeviceState, error: RolloutError | null = null) =>
      fleet.applyEvent(a, {
        kind: "rollout.state",
        ts: ++eventTs,
        rolloutId: r.id,
        artifactId: ARTIFACT,
        state,
        attempt: 1,
        error,
        serverAttempt,
      });
    // The first try fails while the server is away (the download gave up), and the server retries.
    tried(1, "downloading");
    tried(1, "failed", { code: "download_failed", message: "model.sim: ECONNREFUSED" });
    await rollouts.idle();
    expect(sent.at(-1)!.command).toMatchObject({ type: "rollout.apply", attempt: 2 });

    // The agent says the first try's state again, with a new timestamp (its answer to the
    // re-sent first try, or its state re-published on reconnecting) after the retry was sent.
    tried(1, "failed", { code: "download_failed", message: "model.sim: ECONNREFUSED" });
    fleet.applyEvent(a, {
      kind: "rollout.progress",
      ts: ++eventTs,
      rolloutId: r.id,
      artifactId: ARTIFACT,
      state: "downloading",
      bytesDone: 5 * MiB,
      bytesTotal: 64 * MiB,
      rateBps: null,
      etaSeconds: null,
      serverAttempt: 1,
    });
    let now2 = await get(r.id);
    expect(now2.devices[0]).toMatchObject({ state: "pending", attempt: 2, bytesDone: 0 });
    expect(now2.state).toBe("running");
    expect(stale).toEqual([
      { state: "failed", serverAttempt: 1, current: 2 },
      { state: "downloading", serverAttempt: 1, current: 2 },
    ]);

    // The second try is followed and completes.
    for (const s of ["preflight", "downloading", "verifying", "staged", "activating", "health_check", "active"] as const) tried(2, s);
    online(a, newModel, oldModel);
    now2 = await get(r.id);
    expect(now2.state).toBe("completed");
    expect(now2.devices[0]).toMatchObject({ state: "active", attempt: 2, error: null });
  });

  it("does not retry a failure that would repeat (full disk), and pauses at the failure threshold with the reason", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const c = await addDevice("c");
    const r = await create([a, b, c], { canary: 0, batchSize: 2, retries: 3, failureThreshold: 1 });
    report(a, r.id, "preflight");
    report(a, r.id, "failed", { code: "disk_full", message: "needs 64 MiB, 10 MiB free" });
    await rollouts.idle();
    const paused = await get(r.id);
    expect(paused.state).toBe("paused");
    expect(paused.pausedReason).toBe(
      "1 device failed (threshold 1): a: needs 64 MiB, 10 MiB free. Resume to go on (these failures are then acknowledged), or abort.",
    );
    expect(applies()).toEqual([a, b]);
    // Paused: nothing new goes, in-flight devices finish.
    await step();
    expect(applies()).toEqual([a, b]);
    await walk(b, r.id);
    expect((await get(r.id)).devices.find((d) => d.deviceId === b)!.state).toBe("active");
    expect(applies()).toEqual([a, b]);
    expect((await db.prisma.rollout.findUniqueOrThrow({ where: { id: r.id } })).pausedReason).toMatch(/threshold 1/);

    // Resume: the failure is acknowledged, c goes, and the rollout ends failed (a never got the model).
    const resumed = await rollouts.resume(r.id);
    expect(resumed.state).toBe("running");
    expect(resumed.pausedReason).toBeNull();
    expect(resumed.devices.find((d) => d.deviceId === a)).toMatchObject({ acknowledged: true, state: "failed" });
    expect(applies()).toEqual([a, b, c]);
    await walk(c, r.id);
    const end = await get(r.id);
    expect(end.state).toBe("failed");
    expect(end.counts).toMatchObject({ active: 2, failed: 1 });
  });

  it("pauses when a canary fails, whatever the threshold, and rolled-back devices count as failures", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const r = await create([a, b], { canary: 1, failureThreshold: 5, retries: 0 });
    await walk(a, r.id, "health_check");
    report(a, r.id, "rolled_back", { code: "reference_mismatch", message: "expected [1,2,3], got [1,2,4]" });
    await rollouts.idle();
    const p = await get(r.id);
    expect(p.state).toBe("paused");
    expect(p.pausedReason).toBe("Canary a: expected [1,2,3], got [1,2,4]. The other devices wait: resume to go on anyway, or abort.");
    expect(p.counts).toMatchObject({ rolledBack: 1, waiting: 1 });
    expect(applies()).toEqual([a]);
  });

  it("times out a device that does not finish, tells it to stop, and says whether it was offline", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const r = await create([a, b], { canary: 0, batchSize: 2, deviceTimeoutMs: 60_000, failureThreshold: 5, retries: 3 });
    report(a, r.id, "downloading");
    report(b, r.id, "downloading");
    await rollouts.idle();
    offline(b);
    now += 59_999;
    await step();
    expect(stateOf(await get(r.id))).toEqual({ a: "downloading", b: "downloading" });
    now += 1;
    await step();
    const t = await get(r.id);
    expect(t.devices.map((d) => [d.deviceName, d.state, d.error?.code, d.willRetry])).toEqual([
      ["a", "failed", "timeout", false],
      ["b", "failed", "device_offline", false],
    ]);
    expect(t.devices[0]!.error!.message).toBe("a did not finish within the device timeout (1 min); it was at downloading.");
    expect(t.devices[1]!.error!.message).toMatch(/^b went offline and did not come back within the device timeout/);
    expect(t.state).toBe("failed");
    // The online one is told to stop; the offline one cannot be.
    expect(sent.filter((s) => s.command.type === "rollout.abort").map((s) => s.deviceId)).toEqual([a]);
    // The device got there after all: its word counts.
    report(a, r.id, "active");
    await rollouts.idle();
    expect((await get(r.id)).devices[0]!.state).toBe("active");
  });

  it("an offline device is sent its try when it connects, and again when it reconnects without answering", async () => {
    const a = await addDevice("a", { online: false });
    const r = await create([a], { canary: 0 });
    expect(r.devices[0]).toMatchObject({ sent: true, state: "pending", online: false });
    expect(applies()).toEqual([]);
    online(a);
    await rollouts.idle();
    expect(applies()).toEqual([a]);
    // Not answered: sent again after resendMs.
    now += 29_000;
    await step();
    expect(applies()).toEqual([a]);
    now += 1000;
    await step();
    expect(applies()).toEqual([a, a]);
    // Answered: no more re-sends on the timer, but one on every reconnect (the agent answers with its state).
    report(a, r.id, "downloading");
    now += 60_000;
    await step();
    expect(applies()).toEqual([a, a]);
    offline(a);
    online(a);
    await rollouts.idle();
    expect(applies()).toEqual([a, a, a]);
    expect(new Set(sent.map((s) => s.command.id)).size).toBe(3); // each a new command id (agents drop repeated ids)
    expect(sent.every((s) => s.command.type === "rollout.apply" && s.command.attempt === 1)).toBe(true);
  });

  it("a refused rollout.apply fails the device with the agent's reason", async () => {
    const a = await addDevice("a");
    const r = await create([a], { canary: 0, retries: 0 });
    fleet.applyEvent(a, {
      kind: "command.result",
      ts: ++eventTs,
      commandId: sent[0]!.command.id,
      ok: false,
      message: 'unsupported command type "rollout.apply"',
    });
    const f = await get(r.id);
    expect(f.devices[0]).toMatchObject({
      state: "failed",
      error: { code: "internal", message: 'a refused the rollout: unsupported command type "rollout.apply"' },
    });
    expect(f.state).toBe("failed");
  });

  it("a device works on one rollout at a time", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const first = await create([a], { canary: 0 });
    await expect(create([a, b])).rejects.toThrow(
      `A device is already in a rollout: a (in ${first.name}, running). Wait for it to finish or abort it first.`,
    );
    await rollouts.abort(first.id);
    await expect(create([b])).resolves.toMatchObject({ state: "running" });
  });

  it("pause, resume and abort: abort stops devices that have not switched and aborts the ones not sent", async () => {
    const ids = [];
    for (const n of ["a", "b", "c", "d"]) ids.push(await addDevice(n));
    const [a, b, c, d] = ids as [string, string, string, string];
    const r = await create(ids, { canary: 0, batchSize: 3, maxConcurrentDownloads: 3 });
    await expect(rollouts.resume(r.id)).rejects.toThrow(/only a paused rollout can be resumed/);
    const p = await rollouts.pause(r.id);
    expect(p).toMatchObject({ state: "paused", pausedReason: "Paused by an operator." });
    await expect(rollouts.pause(r.id)).rejects.toThrow(/only a running rollout can be paused/);
    await walk(a, r.id, "health_check");
    report(b, r.id, "downloading");
    await rollouts.idle();
    // c was sent and has not started; d was never sent.
    const aborted = await rollouts.abort(r.id);
    expect(aborted.state).toBe("aborted");
    expect(stateOf(aborted)).toEqual({ a: "health_check", b: "downloading", c: "aborted", d: "aborted" });
    expect(aborted.devices.find((x) => x.deviceId === d)!.error).toEqual({
      code: "aborted",
      message: "The rollout was aborted before this device's turn.",
    });
    expect(applies("rollout.abort").sort()).toEqual([b, c].sort());
    await expect(rollouts.abort(r.id)).rejects.toThrow(/aborted already/);

    // The devices answer: b stops; a, past the switch, finishes its health gate.
    report(b, r.id, "aborted", { code: "aborted", message: "aborted by the server" });
    await walk(a, r.id);
    const end = await get(r.id);
    expect(stateOf(end)).toEqual({ a: "active", b: "aborted", c: "aborted", d: "aborted" });
    expect(end.state).toBe("aborted");
    expect(applies()).toEqual([a, b, c]);
  });

  it("rolls back one device, and the whole rollout (offline devices when they connect)", async () => {
    const ids = [];
    for (const n of ["a", "b", "c"]) ids.push(await addDevice(n));
    const [a, b, c] = ids as [string, string, string];
    const r = await create(ids, { canary: 0, batchSize: 3 });
    for (const id of ids) await walk(id, r.id);
    expect((await get(r.id)).state).toBe("completed");

    await rollouts.rollbackDevice(r.id, a);
    expect(applies("rollout.rollback")).toEqual([a]);
    expect(sent.at(-1)!.command).toMatchObject({ type: "rollout.rollback", rolloutId: r.id });
    report(a, r.id, "rolled_back", { code: "rolled_back", message: "rolled back by an operator" });
    online(a, oldModel, newModel);
    await rollouts.idle();
    expect((await get(r.id)).devices.find((d) => d.deviceId === a)).toMatchObject({ state: "rolled_back", error: { code: "rolled_back" } });
    await expect(rollouts.rollbackDevice(r.id, a)).rejects.toThrow(/a is rolled back in this rollout/);

    offline(c);
    const all = await rollouts.rollback(r.id);
    expect(all.state).toBe("completed"); // it finished; the devices say what happened since
    expect(applies("rollout.rollback")).toEqual([a, b]);
    await expect(rollouts.rollbackDevice(r.id, c)).rejects.toThrow(/c is offline/);
    online(c, newModel, oldModel);
    await rollouts.idle();
    expect(applies("rollout.rollback")).toEqual([a, b, c]);
    report(b, r.id, "rolled_back", { code: "rolled_back", message: "rolled back by an operator" });
    report(c, r.id, "rolled_back", { code: "rolled_back", message: "rolled back by an operator" });
    const end = await get(r.id);
    expect(end.counts).toMatchObject({ rolledBack: 3, active: 0 });
    // Once it is not the device's model any more, there is nothing to roll back.
    online(b, oldModel, null);
    await expect(rollouts.rolloutOfActiveModel(b)).resolves.toBeNull();
  });

  it("finds the rollout that installed a device's model, for the device page's Roll back", async () => {
    const a = await addDevice("a");
    const r = await create([a], { canary: 0 });
    await expect(rollouts.rolloutOfActiveModel(a)).resolves.toBeNull();
    await walk(a, r.id);
    await expect(rollouts.rolloutOfActiveModel(a)).resolves.toEqual({ rolloutId: r.id, name: r.name });
    expect(fleet.get(a)!.previousModel).toEqual(oldModel);
  });

  it("resumes after a restart: re-sends the current try to devices as they connect and completes", async () => {
    const ids = [];
    for (const n of ["a", "b", "c"]) ids.push(await addDevice(n));
    const [a, b, c] = ids as [string, string, string];
    const r = await create(ids, { canary: 1, batchSize: 2 });
    await walk(a, r.id);
    report(b, r.id, "downloading");
    progress(b, r.id, 32 * MiB);
    now += 5000;
    await step();
    expect(applies()).toEqual([a, b, c]);

    // The server stops for four hours (past the 3 h device timeout); its fleet starts with every device offline.
    await rollouts.close();
    now += 4 * 3600_000;
    sent = [];
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    rollouts = newService({ recoveryGraceMs: 60_000 });
    expect(await rollouts.recover()).toBe(1);
    await rollouts.idle();
    let back = await rollouts.get(r.id);
    expect(stateOf(back)).toEqual({ a: "active", b: "downloading", c: "pending" });
    expect(back.devices.find((d) => d.deviceId === b)!.bytesDone).toBe(32 * MiB);
    expect(sent).toEqual([]);

    // Devices come back (their retained status): the ones in flight get their try again, same attempt.
    for (const id of ids) online(id, id === a ? newModel : oldModel);
    await rollouts.idle();
    expect(applies().sort()).toEqual([b, c].sort());
    expect(sent.every((s) => s.command.type === "rollout.apply" && s.command.attempt === 1)).toBe(true);
    // Within the grace period after the start, devices get to report before timeouts count.
    now += 59_000;
    await step();
    expect(stateOf(await get(r.id))).toEqual({ a: "active", b: "downloading", c: "pending" });
    await walk(b, r.id);
    await walk(c, r.id);
    back = await get(r.id);
    expect(back.state).toBe("completed");
    expect(back.devices.every((d) => d.state === "active")).toBe(true);
  });

  it("a deleted device leaves the rollout", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const r = await create([a, b], { canary: 0, batchSize: 1 });
    await devices.remove(b);
    await walk(a, r.id);
    const end = await get(r.id);
    expect(end.devices.map((d) => d.deviceId)).toEqual([a]);
    expect(end.state).toBe("completed");
  });

  it("lists rollouts newest first with counts, and says when one does not exist", async () => {
    const a = await addDevice("a");
    const b = await addDevice("b");
    const first = await create([a], { canary: 0 });
    await walk(a, first.id);
    now += 60_000;
    const second = await rollouts.create({ artifactId: ARTIFACT, deviceIds: [b], name: "kitchen rollout" }, null);
    const list = await rollouts.list();
    expect(list.map((x) => [x.name, x.state, x.counts.total, x.counts.active])).toEqual([
      ["kitchen rollout", "running", 1, 0],
      [first.name, "completed", 1, 1],
    ]);
    expect(list[0]).not.toHaveProperty("devices");
    expect(second.id).not.toBe(first.id);
    await expect(rollouts.get("nope")).rejects.toThrow(/No rollout nope/);
    await expect(rollouts.pause("nope")).rejects.toThrow(/No rollout nope/);
  });

  it("points devices at ORCHARD_PUBLIC_URL when set", () => {
    expect(blobDownloadUrl(undefined)).toBe("/api/artifacts/blobs");
    expect(blobDownloadUrl("https://orchard.lan:8443/")).toBe("https://orchard.lan:8443/api/artifacts/blobs");
  });
});
