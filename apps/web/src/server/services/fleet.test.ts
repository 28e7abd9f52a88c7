/**
 * Enrollment, ingestion and the fleet's batched persistence against a real
 * database (PGlite, and PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeThrottle, MAX_DEVICE_PAYLOAD_BYTES, topics, type TelemetrySample } from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
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
