/**
 * Fleet throughput: the live totals from the in-memory fleet, and the overview's
 * queries (fleet tokens/s per bucket, per-device sparklines) on a known series
 * against a real database (PGlite, and PostgreSQL when ORCHARD_TEST_POSTGRES_URL is
 * set), with a fake clock.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeThrottle, type DeviceStatus, type TelemetrySample } from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { SPARKLINE_MINUTES } from "@orchard/client";
import { FleetService } from "./fleet.ts";
import { FleetThroughput, MAX_RATE_INTERVAL_MS, sampleRate } from "./fleet-throughput.ts";
import { TelemetryStore } from "./telemetry-store.ts";

const log = createLogger("error");
const GiB = 2 ** 30;
/** 12:00:30 UTC: half a minute into the current minute. */
const T0 = Date.UTC(2026, 0, 10, 12, 0, 30);
const MINUTE0 = Date.UTC(2026, 0, 10, 12, 0, 0);
const MIN = 60_000;

const sample = (ts: number, over: Partial<TelemetrySample> = {}): TelemetrySample => ({
  ts,
  cpuPercent: 20,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  memTotalBytes: 8 * GiB,
  memAvailableBytes: 5 * GiB,
  swapTotalBytes: GiB,
  swapUsedBytes: 0,
  diskTotalBytes: 64 * GiB,
  diskFreeBytes: 20 * GiB,
  socTempC: 55,
  throttle: decodeThrottle(0),
  runnerRssBytes: 500_000_000,
  tokensPerSecond: null,
  prefillTokensPerSecond: null,
  generatedTokens: 0,
  activeGenerations: 0,
  cpuFreqHz: 2_400_000_000,
  boardPowerW: 5,
  ...over,
});

const online: DeviceStatus = {
  state: "online",
  ts: T0,
  agentVersion: "0.1.0",
  hostname: "pi",
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
    version: null,
  },
};

describe("sampleRate", () => {
  it("prefers generated tokens over the interval, and falls back to decode tokens/s while generating", () => {
    expect(sampleRate(sample(0, { generatedTokens: 8, tokensPerSecond: 99, activeGenerations: 1 }), 2000)).toBe(4);
    // A finished generation still counts what it generated in the interval.
    expect(sampleRate(sample(0, { generatedTokens: 3, tokensPerSecond: 5, activeGenerations: 0 }), 1000)).toBe(3);
    // No previous sample, or one too far back: the decode rate of a generating device.
    expect(sampleRate(sample(0, { generatedTokens: 8, tokensPerSecond: 7, activeGenerations: 2 }), null)).toBe(7);
    expect(sampleRate(sample(0, { generatedTokens: 600, tokensPerSecond: 6, activeGenerations: 1 }), MAX_RATE_INTERVAL_MS + 1)).toBe(6);
    expect(sampleRate(sample(0, { generatedTokens: 8, tokensPerSecond: 7, activeGenerations: 0 }), null)).toBe(0);
    // An agent that reports neither count: generating means a decode rate was reported.
    expect(sampleRate(sample(0, { generatedTokens: null, activeGenerations: null, tokensPerSecond: 2.5 }), 1000)).toBe(2.5);
    expect(sampleRate(sample(0, { generatedTokens: null, activeGenerations: null, tokensPerSecond: null }), 1000)).toBe(0);
  });
});

describe.each(DB_KINDS)("fleet throughput on %s", (kind) => {
  let db: Database;
  let now: number;
  let fleet: FleetService;
  let store: TelemetryStore;
  let alerts: number;
  let throughput: FleetThroughput;

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    alerts = 0;
    for (const id of ["pi-a", "pi-b", "pi-c", "pi-d", "pi-e", "pi-f"]) {
      await db.prisma.device.create({ data: { id, name: id, mqttPasswordHash: "x" } });
    }
    fleet = new FleetService(db.prisma, { staleMs: 60_000 }, log, () => now);
    await fleet.load();
    store = new TelemetryStore(db.prisma, { rawHours: 24, rollupDays: 30 }, log, () => now);
    throughput = new FleetThroughput(
      fleet,
      db.prisma,
      store,
      () => alerts,
      () => now,
    );
  });
  afterEach(async () => {
    throughput.close();
    await db.close();
  });

  it("sums the fleet's tokens/s and generations from the newest samples of online devices", () => {
    for (const id of ["pi-a", "pi-b", "pi-c", "pi-d", "pi-e", "pi-f"]) fleet.applyStatus(id, online);
    // a: 8 tokens in the 2 s since its previous sample → 4 tok/s; it holds 1 generation.
    fleet.applyTelemetry("pi-a", [sample(T0 - 2000, { generatedTokens: 3, activeGenerations: 1, tokensPerSecond: 3 })]);
    fleet.applyTelemetry("pi-a", [sample(T0, { generatedTokens: 8, activeGenerations: 1, tokensPerSecond: 4.5 })]);
    // b: an older agent without counts, generating at 2.5 tok/s.
    fleet.applyTelemetry("pi-b", [sample(T0, { generatedTokens: null, activeGenerations: null, tokensPerSecond: 2.5 })]);
    // c: its first sample (no interval yet): its decode rate; 2 generations (one queued).
    fleet.applyTelemetry("pi-c", [sample(T0, { generatedTokens: 7, activeGenerations: 2, tokensPerSecond: 7 })]);
    // d: idle.
    fleet.applyTelemetry("pi-d", [sample(T0 - 1000), sample(T0)]);
    // e: buffered samples sent together, out of order: the interval of the newest is to the one before it (0.5 s).
    fleet.applyTelemetry("pi-e", [
      sample(T0, { generatedTokens: 1, activeGenerations: 1, tokensPerSecond: 2 }),
      sample(T0 - 500, { generatedTokens: 9, activeGenerations: 1, tokensPerSecond: 2 }),
    ]);
    // f: generating fast, but offline now.
    fleet.applyTelemetry("pi-f", [sample(T0 - 1000, { generatedTokens: 10 }), sample(T0, { generatedTokens: 10, activeGenerations: 1 })]);
    fleet.applyStatus("pi-f", { state: "offline", reason: "lost" });
    alerts = 3;

    // Each device's own "generating now" (its row), and the card is exactly their sum over the online ones.
    const rowRate = (id: string) => fleet.get(id)!.generatingTokensPerSecond;
    expect(["pi-a", "pi-b", "pi-c", "pi-d", "pi-e", "pi-f"].map(rowRate)).toEqual([4, 2.5, 7, 0, 2, 10]);
    expect(throughput.totals()).toEqual({
      ts: T0,
      devicesTotal: 6,
      devicesOnline: 5,
      tokensPerSecond: 4 + 2.5 + 7 + 0 + 2,
      activeGenerations: 1 + 2 + 1,
      alertsActive: 3,
    });

    // A late, older sample does not replace the newest one.
    fleet.applyTelemetry("pi-a", [sample(T0 - 1000, { generatedTokens: 100, activeGenerations: 5 })]);
    expect(throughput.totals()).toMatchObject({ tokensPerSecond: 15.5, activeGenerations: 4 });
    expect(rowRate("pi-a")).toBe(4);

    // The next sample of c has an interval: 3 tokens in 1.5 s.
    now = T0 + 1500;
    fleet.applyTelemetry("pi-c", [sample(T0 + 1500, { generatedTokens: 3, activeGenerations: 1, tokensPerSecond: 7 })]);
    expect(throughput.totals()).toMatchObject({ ts: T0 + 1500, tokensPerSecond: 4 + 2.5 + 2 + 0 + 2, activeGenerations: 3 });
    expect(rowRate("pi-c")).toBe(2);

    // A deleted device no longer counts.
    fleet.removed("pi-a");
    expect(throughput.totals()).toMatchObject({ devicesTotal: 5, devicesOnline: 4, tokensPerSecond: 6.5, activeGenerations: 2 });
  });

  it("reports an empty fleet as zeros", () => {
    expect(throughput.totals()).toEqual({
      ts: T0,
      devicesTotal: 6,
      devicesOnline: 0,
      tokensPerSecond: 0,
      activeGenerations: 0,
      alertsActive: 0,
    });
  });

  it("charts fleet tokens/s per minute from the rollups, including samples still in memory", async () => {
    const m2 = MINUTE0 - 2 * MIN;
    const m1 = MINUTE0 - MIN;
    for (const id of ["pi-a", "pi-b", "pi-c"]) fleet.applyStatus(id, online);
    // a: 60 tokens in m2, 120 in m1, 15 so far in the current minute.
    fleet.applyTelemetry("pi-a", [
      sample(m2 + 10_000, { generatedTokens: 30, tokensPerSecond: 3 }),
      sample(m2 + 40_000, { generatedTokens: 30, tokensPerSecond: 3 }),
      sample(m1 + 10_000, { generatedTokens: 120, tokensPerSecond: 4 }),
      sample(MINUTE0 + 10_000, { generatedTokens: 15, tokensPerSecond: 1 }),
    ]);
    // b: 60 tokens in m2; an older agent in m1 (reports, but no count).
    fleet.applyTelemetry("pi-b", [
      sample(m2 + 5000, { generatedTokens: 60, tokensPerSecond: 2 }),
      sample(m1 + 5000, { generatedTokens: null, tokensPerSecond: 9 }),
    ]);
    // c: reporting, generating nothing; and a sample older than the range.
    fleet.applyTelemetry("pi-c", [sample(MINUTE0 - 20 * MIN), sample(m1 + 30_000)]);

    const overview = await throughput.overview("15m");
    expect(overview).toMatchObject({ range: "15m", bucketMs: MIN, fromMs: T0 - 15 * MIN, toMs: T0 });
    expect(overview.points).toEqual([
      { ts: m2, tokens: 120, tokensPerSecond: 2, devicesReporting: 2 },
      { ts: m1, tokens: 120, tokensPerSecond: 2, devicesReporting: 3 },
      // The minute in progress: 15 tokens in its first 30 seconds.
      { ts: MINUTE0, tokens: 15, tokensPerSecond: 0.5, devicesReporting: 1 },
    ]);
    expect(overview.totals).toMatchObject({ devicesOnline: 3, devicesTotal: 6 });

    // A wider range with the same bucket size sees the older minute too.
    const hour = await throughput.overview("1h");
    expect(hour.points.map((p) => [p.ts, p.tokens, p.devicesReporting])).toEqual([
      [MINUTE0 - 20 * MIN, 0, 1],
      [m2, 120, 2],
      [m1, 120, 3],
      [MINUTE0, 15, 1],
    ]);
  });

  it("groups long ranges into larger buckets, caching settled ones", async () => {
    const TEN = 10 * MIN;
    // Rollups written long ago (older than the raw window): per device and minute.
    const base = MINUTE0 - 3 * 86_400_000; // 3 days ago, on a 10-minute boundary
    await insertMinutes([
      { deviceId: "pi-a", minute: base, generatedTokens: 600 },
      { deviceId: "pi-a", minute: base + 5 * MIN, generatedTokens: 300 },
      { deviceId: "pi-b", minute: base + 9 * MIN, generatedTokens: 300 },
      { deviceId: "pi-b", minute: base + TEN, generatedTokens: null },
      { deviceId: "pi-a", minute: base + 3 * TEN, generatedTokens: 6000 },
      { deviceId: "pi-c", minute: MINUTE0 - 8 * 86_400_000, generatedTokens: 999 }, // outside 7 days
    ]);
    const week = await throughput.overview("7d");
    expect(week.bucketMs).toBe(TEN);
    expect(week.points).toEqual([
      { ts: base, tokens: 1200, tokensPerSecond: 2, devicesReporting: 2 },
      { ts: base + TEN, tokens: 0, tokensPerSecond: 0, devicesReporting: 1 },
      { ts: base + 3 * TEN, tokens: 6000, tokensPerSecond: 10, devicesReporting: 1 },
    ]);

    // A sample that arrives late for a settled bucket is not read again until the cache is rebuilt…
    await insertMinutes([{ deviceId: "pi-c", minute: base + 2 * MIN, generatedTokens: 600 }]);
    // …while a new bucket is.
    await insertMinutes([{ deviceId: "pi-c", minute: MINUTE0, generatedTokens: 300 }]);
    now = T0 + MIN;
    const again = await throughput.overview("7d");
    expect(again.points[0]).toMatchObject({ ts: base, tokens: 1200 });
    expect(again.points.at(-1)).toEqual({ ts: MINUTE0, tokens: 300, tokensPerSecond: 300 / 90, devicesReporting: 1 });

    // A fresh reader (no cache) sees everything, and so does this one after its hourly rebuild.
    const fresh = new FleetThroughput(
      fleet,
      db.prisma,
      store,
      () => 0,
      () => now,
    );
    expect((await fresh.overview("7d")).points[0]).toMatchObject({ ts: base, tokens: 1800, tokensPerSecond: 3, devicesReporting: 3 });
    fresh.close();
    now = T0 + 2 * 3600_000;
    expect((await throughput.overview("7d")).points[0]).toMatchObject({ ts: base, tokens: 1800, devicesReporting: 3 });
  });

  it("reads every device's sparkline in one pass: generating now (tokens ÷ seconds) per minute over the last 30 minutes", async () => {
    await insertMinutes([
      // The minute in progress: 15 tokens in its first 30 s (T0 is 30 s into it).
      { deviceId: "pi-a", minute: MINUTE0, generatedTokens: 15, tokensPerSecondAvg: 20 },
      { deviceId: "pi-a", minute: MINUTE0 - 2 * MIN, generatedTokens: 180, tokensPerSecondAvg: 20 },
      { deviceId: "pi-a", minute: MINUTE0 - 3 * MIN, generatedTokens: 0 }, // reported, idle: a 0, not a gap
      { deviceId: "pi-a", minute: MINUTE0 - 29 * MIN, generatedTokens: 60 },
      { deviceId: "pi-a", minute: MINUTE0 - 30 * MIN, generatedTokens: 999 }, // too old
      { deviceId: "pi-b", minute: MINUTE0 - MIN, generatedTokens: 0 }, // reported, generated nothing in the window
      { deviceId: "pi-c", minute: MINUTE0 - 10 * MIN, generatedTokens: 48 },
      { deviceId: "pi-d", minute: MINUTE0 - 10 * MIN, generatedTokens: null, tokensPerSecondAvg: 5 }, // an agent without counts
    ]);
    const { fromMs, devices } = await throughput.sparklines();
    expect(fromMs).toBe(MINUTE0 - 29 * MIN);
    expect(Object.keys(devices).sort()).toEqual(["pi-a", "pi-c"]);
    const a = devices["pi-a"]!;
    expect(a).toHaveLength(SPARKLINE_MINUTES);
    expect(a[0]).toBe(1);
    expect(a[26]).toBe(0);
    expect(a[27]).toBe(3);
    expect(a[29]).toBe(0.5);
    expect(a.filter((v) => v !== null)).toHaveLength(4);
    expect(devices["pi-c"]![19]).toBe(0.8);
  });

  it("reads the sparklines of 1,000 devices with one query", async () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `pi-load-${i}`);
    await db.prisma.device.createMany({ data: ids.map((id) => ({ id, name: id, mqttPasswordHash: "x" })) });
    const from = new Date(MINUTE0 - 29 * MIN).toISOString();
    const to = new Date(MINUTE0).toISOString();
    await db.prisma.$executeRaw`
      INSERT INTO "TelemetryMinute" ("deviceId", minute, samples, "memTotalBytes", "memUsedMin", "memUsedAvg", "memUsedMax",
        "swapTotalBytes", "swapUsedMin", "swapUsedAvg", "swapUsedMax", "load1Avg", "load5Avg", "load15Avg", "load1Max",
        "generatedTokens")
      SELECT d.id, g, 60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ((extract(epoch FROM g) / 60)::bigint % 10) * 60 + 60
      FROM "Device" d CROSS JOIN generate_series(${from}::timestamp, ${to}::timestamp, interval '1 minute') AS g
      WHERE d.id LIKE 'pi-load-%'`;
    const queries: string[] = [];
    const counting = db.prisma.$extends({
      query: {
        $allOperations: ({ operation, args, query }) => {
          queries.push(operation);
          return query(args);
        },
      },
    });
    const reader = new FleetThroughput(
      fleet,
      counting as unknown as typeof db.prisma,
      store,
      () => 0,
      () => now,
    );
    const { devices } = await reader.sparklines();
    reader.close();
    expect(queries).toEqual(["$queryRaw"]);
    expect(Object.keys(devices)).toHaveLength(1000);
    // tokens ÷ 60 s per minute; the minute in progress (30 s so far) ÷ 30 s.
    const expected = Array.from({ length: SPARKLINE_MINUTES }, (_, i) => {
      const tokens = (((MINUTE0 - 29 * MIN + i * MIN) / MIN) % 10) * 60 + 60;
      return i === SPARKLINE_MINUTES - 1 ? tokens / 30 : tokens / 60;
    });
    expect(devices["pi-load-999"]).toEqual(expected);
  });

  async function insertMinutes(
    rows: { deviceId: string; minute: number; generatedTokens?: number | null; tokensPerSecondAvg?: number | null }[],
  ) {
    await db.prisma.telemetryMinute.createMany({
      data: rows.map((r) => ({
        deviceId: r.deviceId,
        minute: new Date(r.minute),
        samples: 60,
        memTotalBytes: BigInt(8 * GiB),
        memUsedMin: 0n,
        memUsedAvg: 0n,
        memUsedMax: 0n,
        swapTotalBytes: 0n,
        swapUsedMin: 0n,
        swapUsedAvg: 0n,
        swapUsedMax: 0n,
        load1Avg: 0,
        load5Avg: 0,
        load15Avg: 0,
        load1Max: 0,
        generatedTokens: r.generatedTokens === undefined || r.generatedTokens === null ? null : BigInt(r.generatedTokens),
        tokensPerSecondAvg: r.tokensPerSecondAvg ?? null,
      })),
    });
  }
});
