/**
 * Enrollment, ingestion and the fleet's batched persistence against a real
 * database (PGlite, and PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeThrottle, MAX_DEVICE_PAYLOAD_BYTES, topics, type DeviceEvent, type TelemetrySample } from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database, Prisma } from "../db/client.ts";
import { createLogger, type Logger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { createIngestor } from "../mqtt/ingest.ts";
import { AppError } from "../errors.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";
import { TelemetryStore } from "./telemetry-store.ts";

const log = createLogger("error");
const sample = (ts: number, over: Partial<TelemetrySample> = {}): TelemetrySample => ({
  ts,
  cpuPercent: 20,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  memTotalBytes: 8 * 2 ** 30,
  memAvailableBytes: 5 * 2 ** 30,
  swapTotalBytes: 2 ** 30,
  swapUsedBytes: 0,
  diskTotalBytes: 64 * 2 ** 30,
  diskFreeBytes: 20 * 2 ** 30,
  socTempC: 61.5,
  throttle: decodeThrottle(0x50005),
  runnerRssBytes: 50_000_000,
  tokensPerSecond: 0.8,
  prefillTokensPerSecond: 12.5,
  generatedTokens: 1,
  activeGenerations: 1,
  cpuFreqHz: 2_400_000_000,
  boardPowerW: 6.2,
  ...over,
});
const online = {
  state: "online",
  ts: Date.now(),
  agentVersion: "0.1.0",
  hostname: "pi-a",
  arch: "arm64",
  activeModel: null,
  runner: {
    state: "ready",
    backend: "sim",
    model: "sim (no model)",
    pid: 42,
    rssBytes: 1000,
    maxContext: 2048,
    loadMs: 200,
    restarts: 0,
    lastError: null,
  },
};

describe.each(DB_KINDS)("fleet on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let enrollment: EnrollmentService;
  let metrics: Metrics;
  let ingest: ReturnType<typeof createIngestor>;

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    fleet = new FleetService(db.prisma, { staleMs: 60_000 }, log);
    await fleet.load();
    enrollment = new EnrollmentService(db.prisma, fleet);
    metrics = new Metrics(fleet);
    ingest = createIngestor({ fleet, chat: { handle: () => undefined }, metrics, log });
  });
  afterEach(async () => {
    await db.close();
  });

  async function enrollOne(hostname = "pi-a") {
    const { token } = await enrollment.createToken({ ttlMinutes: 10, createdById: null });
    return enrollment.enroll({ token, hostname, arch: "arm64", agentVersion: "0.1.0" }, "mqtt://127.0.0.1:1883");
  }

  it("enrolls a device with its own credentials, once per token", async () => {
    const { token } = await enrollment.createToken({ deviceName: "kitchen", ttlMinutes: 10, createdById: null });
    const res = await enrollment.enroll({ token, hostname: "pi-a", arch: "arm64", agentVersion: "0.1.0" }, "mqtt://h:1883");
    expect(res).toMatchObject({ name: "kitchen", mqttUrl: "mqtt://h:1883", mqttUsername: res.deviceId });
    expect(fleet.verifyDeviceCredentials(res.deviceId, res.mqttPassword)).toBe(true);
    expect(fleet.verifyDeviceCredentials(res.deviceId, `${res.mqttPassword}x`)).toBe(false);
    const again = enrollment.enroll({ token, hostname: "pi-b", arch: "arm64", agentVersion: "0.1.0" }, "mqtt://h:1883");
    await expect(again).rejects.toThrow(/already used .* Tokens work once/);
    await expect(again).rejects.toBeInstanceOf(AppError);
    await expect(
      enrollment.enroll({ token: "oet_made_up_token", hostname: "x", arch: "", agentVersion: "" }, "mqtt://h:1"),
    ).rejects.toThrow(/not valid/);
    // The password is stored only as a hash.
    const row = await db.prisma.device.findUniqueOrThrow({ where: { id: res.deviceId } });
    expect(row.mqttPasswordHash).not.toContain(res.mqttPassword);
  });

  it("refuses an expired token with a message that says so", async () => {
    const past = new EnrollmentService(db.prisma, fleet, () => Date.now() - 3600_000);
    const { token } = await past.createToken({ ttlMinutes: 5, createdById: null });
    await expect(enrollment.enroll({ token, hostname: "x", arch: "arm64", agentVersion: "0.1.0" }, "mqtt://h:1")).rejects.toThrow(
      /expired at/,
    );
    expect(await enrollment.listPending()).toEqual([]);
  });

  it("lets exactly one of two racing enrollments use a token", async () => {
    const { token } = await enrollment.createToken({ ttlMinutes: 10, createdById: null });
    const results = await Promise.allSettled(
      ["a", "b"].map((h) => enrollment.enroll({ token, hostname: h, arch: "arm64", agentVersion: "0.1.0" }, "mqtt://h:1")),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(await db.prisma.device.count()).toBe(1);
  });

  it("applies status and telemetry and writes them in batches", async () => {
    const { deviceId } = await enrollOne();
    expect(ingest(topics.status(deviceId), Buffer.from(JSON.stringify(online)))).toEqual({ ok: true });
    const t0 = Date.now();
    const msg = { samples: [sample(t0 - 2000), sample(t0 - 1000), sample(t0)] };
    expect(ingest(topics.telemetry(deviceId), Buffer.from(JSON.stringify(msg)))).toEqual({ ok: true });
    const summary = fleet.get(deviceId)!;
    expect(summary.online).toBe(true);
    expect(summary.runner?.state).toBe("ready");
    expect(summary.telemetry?.ts).toBe(t0);
    expect(await db.prisma.telemetrySample.count()).toBe(0); // nothing written per message
    await fleet.flush();
    expect(await db.prisma.telemetrySample.count({ where: { deviceId } })).toBe(3);
    // Every field reads back as it was sent (the flush writes with one bulk statement, not per row).
    const store = new TelemetryStore(db.prisma, { rawHours: 24, rollupDays: 30 }, log);
    expect(await store.rawSamples(deviceId, t0 - 5000, t0)).toEqual(msg.samples);
    const row = await db.prisma.device.findUniqueOrThrow({ where: { id: deviceId } });
    expect(row.online).toBe(true);
    expect(row.agentVersion).toBe("0.1.0");
    expect(row.lastTelemetry).toEqual(msg.samples[2]);
    expect(row.runner).toEqual(summary.runner);
    expect(row.lastSeenAt?.getTime()).toBe(summary.lastSeenAt);
    expect(metrics.render()).toMatch(/orchard_devices_online 1\n/);
    expect(metrics.render()).toContain(`orchard_decode_tokens_per_second{device="${deviceId}"} 0.8`);
    expect(metrics.render()).toContain(`orchard_prefill_tokens_per_second{device="${deviceId}"} 12.5`);
    expect(metrics.render()).toContain(`orchard_cpu_frequency_hertz{device="${deviceId}"} 2400000000`);
    expect(metrics.render()).toContain(`orchard_board_power_watts{device="${deviceId}"} 6.2`);
    expect(metrics.render()).toContain(`orchard_disk_free_bytes{device="${deviceId}"} ${20 * 2 ** 30}`);

    // The last will turns it offline, in memory and in the database.
    expect(ingest(topics.status(deviceId), Buffer.from(JSON.stringify({ state: "offline", reason: "lost" })))).toEqual({ ok: true });
    await fleet.flush();
    expect((await db.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).online).toBe(false);
  });

  it("drops and counts bad messages without touching good state", async () => {
    const { deviceId } = await enrollOne();
    ingest(topics.status(deviceId), Buffer.from(JSON.stringify(online)));
    ingest(topics.telemetry(deviceId), Buffer.from(JSON.stringify({ samples: [sample(Date.now())] })));
    const before = fleet.get(deviceId);

    const bad: [string, Buffer, string][] = [
      [topics.telemetry(deviceId), Buffer.from("{not json"), "malformed"],
      [topics.telemetry(deviceId), Buffer.from(JSON.stringify({ samples: [sample(Date.now(), { socTempC: 10_000 })] })), "invalid"],
      [topics.status(deviceId), Buffer.from(JSON.stringify({ state: "online" })), "invalid"],
      [topics.events(deviceId), Buffer.from(JSON.stringify({ kind: "nope", ts: 1 })), "invalid"],
      [topics.telemetry(deviceId), Buffer.alloc(MAX_DEVICE_PAYLOAD_BYTES + 1, 0x20), "oversized"],
      [topics.status("pi-unknown1"), Buffer.from(JSON.stringify(online)), "unknown_device"],
      ["orchard/v1/devices/x/y/z", Buffer.from("{}"), "unknown_topic"],
    ];
    for (const [topic, payload, reason] of bad) {
      expect(ingest(topic, payload)).toMatchObject({ ok: false, reason });
    }
    expect(fleet.get(deviceId)).toEqual(before);
    expect(metrics.mqttRejected.get({ reason: "invalid" })).toBe(3);
    expect(metrics.mqttRejected.get({ reason: "oversized" })).toBe(1);
    await fleet.flush();
    expect(await db.prisma.telemetrySample.count()).toBe(1);
  });

  // ---------------------------------------------------------------- a batch is never held hostage by one row
  //
  // These call FleetService directly with rows the contract refuses since (ts 9e15, NUL in a string): the
  // writer must cope on its own with any row the database (or a Date) refuses.

  const exitEvent = (ts: number, stderrTail = "bye"): DeviceEvent => ({
    kind: "runner.exit",
    ts,
    code: 1,
    signal: null,
    stderrTail,
    restartInMs: 1000,
  });
  const resultEvent = (ts: number, commandId = "c1"): DeviceEvent => ({ kind: "command.result", ts, commandId, ok: true, message: "ok" });

  /** A logger that keeps its error lines (and prints nothing). */
  function recordingLog(): Logger & { errors: { msg: string; fields?: Record<string, unknown> }[] } {
    const errors: { msg: string; fields?: Record<string, unknown> }[] = [];
    const quiet = createLogger("error");
    return { ...quiet, errors, error: (msg, fields) => void errors.push({ msg, fields }), child: () => recordingLog() };
  }

  /**
   * The real database behind a switch: from statement number `downAfter + 1` on (or while `down`), every
   * statement fails the way an unreachable server does, liveness probes included.
   */
  function withOutage(prisma: Prisma) {
    const state = { down: false, statements: 0, downAfter: Number.POSITIVE_INFINITY };
    const client = prisma.$extends({
      query: {
        async $allOperations({ args, query }) {
          state.statements++;
          if (state.down || state.statements > state.downAfter)
            throw new Error("connect ECONNREFUSED 127.0.0.1:5432 (outage in this test)");
          return query(args);
        },
      },
    }) as unknown as Prisma;
    return { client, state };
  }

  it("stores every good row beside poisoned ones and counts the poisoned ones as rejected", async () => {
    const recorded = recordingLog();
    const writer = new FleetService(db.prisma, { staleMs: 60_000 }, recorded);
    await writer.load();
    const writerEnrollment = new EnrollmentService(db.prisma, writer);
    const enroll = async (hostname: string) =>
      (
        await writerEnrollment.enroll(
          {
            token: (await writerEnrollment.createToken({ ttlMinutes: 5, createdById: null })).token,
            hostname,
            arch: "arm64",
            agentVersion: "1",
          },
          "mqtt://h:1",
        )
      ).deviceId;
    const bad = await enroll("pi-bad");
    const good = await enroll("pi-good");
    const t0 = Date.now();

    writer.applyEvent(bad, resultEvent(9e15, "poison-ts")); // no Date can hold it
    writer.applyEvent(bad, exitEvent(t0, "fatal\u0000garbage")); // jsonb refuses \u0000
    writer.applyEvent(bad, resultEvent(t0, "fine"));
    writer.applyTelemetry(bad, [sample(9e15)]);
    writer.applyStatus(bad, { ...online, hostname: "pi\u0000" } as never); // a text column refuses NUL
    writer.applyStatus(good, online as never);
    writer.applyTelemetry(good, [sample(t0 - 2000), sample(t0 - 1000), sample(t0)]);
    writer.applyEvent(good, exitEvent(t0));
    writer.applyEvent(good, resultEvent(t0));
    await writer.flush();

    expect(await db.prisma.deviceEvent.count({ where: { deviceId: good } })).toBe(2);
    expect((await db.prisma.deviceEvent.findMany({ where: { deviceId: bad } })).map((e) => e.payload)).toEqual([resultEvent(t0, "fine")]);
    expect(await db.prisma.telemetrySample.count({ where: { deviceId: good } })).toBe(3);
    expect(await db.prisma.telemetrySample.count({ where: { deviceId: bad } })).toBe(0);
    expect((await db.prisma.device.findUniqueOrThrow({ where: { id: good } })).online).toBe(true);
    expect(await db.prisma.device.findUniqueOrThrow({ where: { id: bad } })).toMatchObject({ online: false, hostname: "pi-bad" });
    expect(writer.rejectedRows).toEqual({ sample: 1, event: 2, device: 1 });
    expect(new Metrics(writer).render()).toContain('orchard_db_rows_rejected_total{kind="event"} 2\n');
    // Each refusal is logged naming the device, and never as the database being down.
    expect(recorded.errors.filter((e) => e.fields?.device === bad).length).toBeGreaterThan(0);
    expect(recorded.errors.filter((e) => e.fields?.device === good)).toEqual([]);

    // Nothing is written twice, and the fleet keeps writing.
    writer.applyEvent(good, resultEvent(t0 + 1, "c2"));
    await writer.flush();
    await writer.flush();
    expect(await db.prisma.deviceEvent.count({ where: { deviceId: good } })).toBe(3);
    expect(await db.prisma.telemetrySample.count()).toBe(3);
    expect(writer.rejectedRows).toEqual({ sample: 1, event: 2, device: 1 });
  });

  it("never writes a telemetry sample twice when a later statement of the flush fails", async () => {
    const { deviceId } = await enrollOne();
    const t0 = Date.now();
    fleet.applyTelemetry(deviceId, [sample(t0 - 1000), sample(t0)]);
    fleet.applyEvent(deviceId, resultEvent(9e15));
    for (let i = 0; i < 3; i++) await fleet.flush();
    expect(await db.prisma.telemetrySample.count({ where: { deviceId } })).toBe(2);
  });

  it("keeps rows pending while the database is down and writes each once when it is back", async () => {
    const { client, state } = withOutage(db.prisma);
    const recorded = recordingLog();
    const writer = new FleetService(client, { staleMs: 60_000 }, recorded);
    await writer.load();
    const { deviceId } = await new EnrollmentService(db.prisma, writer).enroll(
      { token: (await enrollment.createToken({ ttlMinutes: 5, createdById: null })).token, hostname: "h", arch: "x", agentVersion: "1" },
      "mqtt://h:1",
    );
    const t0 = Date.now();

    // Down before the first statement: nothing is written, nothing is dropped.
    state.down = true;
    writer.applyStatus(deviceId, online as never);
    writer.applyTelemetry(deviceId, [sample(t0 - 3000)]);
    writer.applyEvent(deviceId, resultEvent(t0 - 3000, "c0"));
    await writer.flush();
    await writer.flush();
    expect(await db.prisma.telemetrySample.count()).toBe(0);
    expect(recorded.errors.length).toBeGreaterThan(0);

    // Back up, and down again right after the first statement (the samples) of the next flush.
    state.down = false;
    state.downAfter = state.statements + 1;
    writer.applyTelemetry(deviceId, [sample(t0 - 2000), sample(t0 - 1000)]);
    writer.applyEvent(deviceId, resultEvent(t0 - 1000, "c1"));
    await writer.flush();
    expect(await db.prisma.telemetrySample.count()).toBe(3);
    expect(await db.prisma.deviceEvent.count()).toBe(0);
    await writer.flush(); // still down

    // Up for good: everything arrives, once.
    state.downAfter = Number.POSITIVE_INFINITY;
    writer.applyTelemetry(deviceId, [sample(t0)]);
    await writer.flush();
    await writer.flush();
    expect(await db.prisma.telemetrySample.count()).toBe(4);
    expect(
      (await db.prisma.deviceEvent.findMany({ orderBy: { ts: "asc" } })).map((e) => (e.payload as { commandId: string }).commandId),
    ).toEqual(["c0", "c1"]);
    expect((await db.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })).online).toBe(true);
    // An outage drops nothing: only rows the database refuses while it answers are rejected.
    expect(writer.rejectedRows).toEqual({ sample: 0, event: 0, device: 0 });
  });

  it("restores devices after a restart, offline until they speak again", async () => {
    const { deviceId, mqttPassword } = await enrollOne();
    ingest(topics.status(deviceId), Buffer.from(JSON.stringify(online)));
    await fleet.flush();
    const restarted = new FleetService(db.prisma, { staleMs: 60_000 }, log);
    await restarted.load();
    expect(restarted.get(deviceId)).toMatchObject({ online: false, agentVersion: "0.1.0", runner: { state: "ready" } });
    expect(restarted.verifyDeviceCredentials(deviceId, mqttPassword)).toBe(true);
  });

  it("marks a silent device offline", async () => {
    let now = Date.now();
    const clocked = new FleetService(db.prisma, { staleMs: 30_000 }, log, () => now);
    await clocked.load();
    const { deviceId } = await new EnrollmentService(db.prisma, clocked).enroll(
      { token: (await enrollment.createToken({ ttlMinutes: 5, createdById: null })).token, hostname: "h", arch: "x", agentVersion: "1" },
      "mqtt://h:1",
    );
    clocked.applyStatus(deviceId, online as never);
    now += 29_000;
    clocked.expireStale();
    expect(clocked.get(deviceId)?.online).toBe(true);
    now += 2_000;
    clocked.expireStale();
    expect(clocked.get(deviceId)?.online).toBe(false);
  });
});
