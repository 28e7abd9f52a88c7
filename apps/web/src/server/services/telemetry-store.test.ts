/**
 * The telemetry rollup and retention job and the chart range query against a real
 * database (PGlite, and PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set), with a
 * fake clock and a known series.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { chooseResolution, MAX_CHART_POINTS, thin } from "@orchard/client";
import { TelemetryStore } from "./telemetry-store.ts";

const log = createLogger("error");
const GiB = 2 ** 30;
/** 12:00:00 UTC; the clock starts here and tests move it. */
const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);
const MIN = 60_000;

interface Row {
  ts: number;
  cpu?: number | null;
  temp?: number | null;
  memUsed?: number;
  tps?: number | null;
  load1?: number;
  diskFree?: number | null;
  throttle?: number | null;
  rss?: number | null;
  prefill?: number | null;
  gen?: number | null;
  active?: number | null;
  freq?: number | null;
  power?: number | null;
}

describe.each(DB_KINDS)("telemetry store on %s", (kind) => {
  let db: Database;
  let now: number;
  let store: TelemetryStore;

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    store = new TelemetryStore(db.prisma, { rawHours: 24, rollupDays: 30, deleteBatch: 7 }, log, () => now);
    for (const id of ["pi-a", "pi-b"]) {
      await db.prisma.device.create({ data: { id, name: id, mqttPasswordHash: "x" } });
    }
  });
  afterEach(async () => {
    await db.close();
  });

  async function insert(deviceId: string, all: Row[]) {
    // In batches as the fleet's flush writes them (a larger createMany is split into concurrent queries).
    for (let i = 0; i < all.length; i += 1000) await insertBatch(deviceId, all.slice(i, i + 1000));
  }
  async function insertBatch(deviceId: string, rows: Row[]) {
    await db.prisma.telemetrySample.createMany({
      data: rows.map((r) => ({
        deviceId,
        ts: new Date(r.ts),
        cpuPercent: r.cpu === undefined ? 10 : r.cpu,
        load1: r.load1 ?? 1,
        load5: 0.5,
        load15: 0.25,
        memTotalBytes: BigInt(8 * GiB),
        memAvailableBytes: BigInt(8 * GiB - (r.memUsed ?? 2 * GiB)),
        swapTotalBytes: BigInt(GiB),
        swapUsedBytes: 0n,
        diskTotalBytes: BigInt(64 * GiB),
        diskFreeBytes: r.diskFree === undefined ? BigInt(20 * GiB) : r.diskFree === null ? null : BigInt(r.diskFree),
        socTempC: r.temp === undefined ? 50 : r.temp,
        throttleRaw: r.throttle === undefined ? 0 : r.throttle,
        runnerRssBytes: r.rss === undefined ? null : r.rss === null ? null : BigInt(r.rss),
        tokensPerSecond: r.tps === undefined ? null : r.tps,
        prefillTokensPerSecond: r.prefill ?? null,
        generatedTokens: r.gen ?? null,
        activeGenerations: r.active ?? null,
        cpuFreqHz: r.freq === undefined || r.freq === null ? null : BigInt(r.freq),
        boardPowerW: r.power ?? null,
      })),
    });
  }

  const minute = (deviceId: string, ms: number) =>
    db.prisma.telemetryMinute.findUniqueOrThrow({ where: { deviceId_minute: { deviceId, minute: new Date(ms) } } });

  it("rolls a known series up into exact per-minute values", async () => {
    // 11:58: four samples with known values; 11:59: two, one of them with nulls.
    const m1 = T0 - 2 * MIN;
    const m2 = T0 - MIN;
    await insert("pi-a", [
      {
        ...{ ts: m1 + 0, cpu: 10, temp: 40, memUsed: 1 * GiB, tps: 2, load1: 1, diskFree: 30 * GiB, throttle: 0, rss: 100 },
        ...{ prefill: 20, gen: 2, active: 1, freq: 2_400_000_000, power: 6 },
      },
      {
        ...{ ts: m1 + 15_000, cpu: 20, temp: 50, memUsed: 2 * GiB, tps: null, load1: 2, diskFree: 29 * GiB, throttle: 0x4, rss: 200 },
        ...{ prefill: null, gen: 0, active: 0, freq: 1_500_000_000, power: 4 },
      },
      {
        ...{ ts: m1 + 30_000, cpu: 30, temp: 60, memUsed: 3 * GiB, tps: 4, load1: 3, diskFree: 28 * GiB, throttle: 0x5, rss: 300 },
        ...{ prefill: 40, gen: 4, active: 2, freq: 2_400_000_000, power: 8 },
      },
      { ts: m1 + 59_999, cpu: 40, temp: 70, memUsed: 4 * GiB, tps: 9, load1: 4, diskFree: null, throttle: 0x50000, rss: 400, gen: 9 },
      { ts: m2 + 1000, cpu: null, temp: null, memUsed: GiB, throttle: null },
      { ts: m2 + 2000, cpu: 50, temp: 45, memUsed: 3 * GiB, throttle: 0x1 },
    ]);
    await insert("pi-b", [
      { ts: m1 + 5000, cpu: 99 },
      { ts: m2 + 5000, throttle: null }, // no vcgencmd
    ]);

    expect(await store.rollup()).toBe(4);
    const a1 = await minute("pi-a", m1);
    expect(a1).toMatchObject({
      samples: 4,
      cpuMin: 10,
      cpuAvg: 25,
      cpuMax: 40,
      socTempMin: 40,
      socTempAvg: 55,
      socTempMax: 70,
      memTotalBytes: BigInt(8 * GiB),
      memUsedMin: BigInt(GiB),
      memUsedAvg: BigInt(2.5 * GiB),
      memUsedMax: BigInt(4 * GiB),
      runnerRssMin: 100n,
      runnerRssAvg: 250n,
      runnerRssMax: 400n,
      tokensPerSecondAvg: 5,
      tokensPerSecondMax: 9,
      load1Avg: 2.5,
      load1Max: 4,
      diskFreeLast: BigInt(28 * GiB), // the last sample had no disk reading
      diskFreeMin: BigInt(28 * GiB),
      throttledSamples: 2,
      underVoltageSamples: 1,
      prefillTokensPerSecondAvg: 30,
      generatedTokens: 15n,
      activeGenerationsMax: 2,
      cpuFreqMin: 1_500_000_000n,
      cpuFreqAvg: 2_100_000_000n,
      boardPowerAvg: 6,
      boardPowerMax: 8,
    });
    expect(await minute("pi-a", m2)).toMatchObject({
      generatedTokens: null,
      cpuFreqAvg: null,
      boardPowerAvg: null,
      samples: 2,
      cpuMin: 50,
      cpuAvg: 50,
      cpuMax: 50,
      socTempAvg: 45,
      memUsedAvg: BigInt(2 * GiB),
      tokensPerSecondAvg: null,
      runnerRssAvg: null,
      throttledSamples: 0,
      underVoltageSamples: 1,
    });
    expect(await minute("pi-b", m1)).toMatchObject({ samples: 1, cpuAvg: 99, throttledSamples: 0 });
    expect(await minute("pi-b", m2)).toMatchObject({ samples: 1, throttledSamples: null, underVoltageSamples: null });

    // A re-run without new samples writes nothing and changes nothing.
    expect(await store.rollup()).toBe(0);
    expect(await minute("pi-a", m1)).toEqual(a1);
    // Forcing a recompute of everything (as after a lost state row) gives the same values.
    await db.prisma.telemetryRollupState.deleteMany();
    expect(await store.rollup()).toBe(4);
    expect(await minute("pi-a", m1)).toEqual(a1);
  });

  it("recomputes a minute from raw when a sample for it arrives late", async () => {
    const m1 = T0 - 10 * MIN;
    await insert("pi-a", [
      { ts: m1 + 1000, cpu: 10 },
      { ts: m1 + 2000, cpu: 20 },
    ]);
    await store.rollup();
    expect(await minute("pi-a", m1)).toMatchObject({ samples: 2, cpuAvg: 15, cpuMax: 20 });

    // Time passes, other minutes are rolled up, then the device reconnects and sends what it buffered.
    now += 5 * MIN;
    await insert("pi-a", [{ ts: T0 + MIN, cpu: 5 }]);
    expect(await store.rollup()).toBe(1);
    await insert("pi-a", [
      { ts: m1 + 3000, cpu: 90 },
      { ts: T0 + MIN + 500, cpu: 7 },
    ]);
    expect(await store.rollup()).toBe(2);
    expect(await minute("pi-a", m1)).toMatchObject({ samples: 3, cpuMin: 10, cpuAvg: 40, cpuMax: 90 });
    expect(await minute("pi-a", T0 + MIN)).toMatchObject({ samples: 2, cpuAvg: 6 });
  });

  it("does not recompute a minute whose raw samples are past the raw window", async () => {
    const old = T0 - 25 * 3600_000;
    await db.prisma.telemetryMinute.create({
      data: {
        deviceId: "pi-a",
        minute: new Date(old),
        samples: 60,
        cpuAvg: 33,
        memTotalBytes: 1n,
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
        throttledSamples: 0,
        underVoltageSamples: 0,
      },
    });
    await insert("pi-a", [{ ts: old + 1000, cpu: 1 }]);
    expect(await store.rollup()).toBe(0);
    expect(await minute("pi-a", old)).toMatchObject({ samples: 60, cpuAvg: 33 });
    // Retention deletes the straggler.
    expect((await store.retention()).raw).toBe(1);
  });

  it("deletes exactly what is older than the windows, in batches", async () => {
    const rawCutoff = T0 - 24 * 3600_000;
    // 20 raw samples on each side of the raw window's edge (batch size 7 → several statements).
    const rows: Row[] = [];
    for (let i = 1; i <= 20; i++) rows.push({ ts: rawCutoff - i * 1000 }, { ts: rawCutoff + (i - 1) * 1000 });
    await insert("pi-a", rows);
    const rollupCutoff = T0 - 30 * 86_400_000;
    const minutes = [rollupCutoff - 2 * MIN, rollupCutoff - MIN, rollupCutoff, rollupCutoff + MIN];
    for (const deviceId of ["pi-a", "pi-b"]) {
      for (const m of minutes) {
        await db.prisma.telemetryMinute.create({
          data: {
            deviceId,
            minute: new Date(m),
            samples: 1,
            memTotalBytes: 1n,
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
            throttledSamples: 0,
            underVoltageSamples: 0,
          },
        });
      }
    }
    const result = await store.run();
    expect(result).toMatchObject({ rawDeleted: 20, rollupsDeleted: 4 });
    const left = await db.prisma.telemetrySample.findMany({ orderBy: { ts: "asc" } });
    expect(left).toHaveLength(20);
    expect(left[0]!.ts.getTime()).toBe(rawCutoff);
    const kept = await db.prisma.telemetryMinute.findMany({ where: { minute: { lt: new Date(rollupCutoff + MIN + 1) } } });
    expect(kept.map((r) => r.minute.getTime()).sort()).toEqual([rollupCutoff, rollupCutoff, rollupCutoff + MIN, rollupCutoff + MIN]);
    // The surviving raw samples were rolled up before the old ones were deleted.
    expect((await minute("pi-a", rawCutoff)).samples).toBe(20);
    // Nothing more to delete.
    expect(await store.retention()).toEqual({ raw: 0, rollups: 0 });
  });

  it("reads raw samples for short ranges and bucketed rollups for long ones, capped in points", async () => {
    // One sample every 2 s for the last 2.5 hours (4500 samples), and rollups every minute for 30 days.
    const rows: Row[] = [];
    for (let t = T0 - 2.5 * 3600_000; t < T0; t += 2000) rows.push({ ts: t, cpu: (t / 1000) % 100, tps: 3, gen: 6, power: 5, freq: 2e9 });
    await insert("pi-a", rows);
    await insert("pi-b", [{ ts: T0 - 1000, cpu: 1 }]);
    // Seeded in SQL: 43,000 rows through createMany take half a minute on PGlite.
    const seedFrom = new Date(T0 - 30 * 86_400_000).toISOString();
    const seedTo = new Date(T0 - 3 * 3600_000 - MIN).toISOString();
    await db.prisma.$executeRaw`
      INSERT INTO "TelemetryMinute" ("deviceId", minute, samples, "cpuMin", "cpuAvg", "cpuMax", "memTotalBytes",
        "memUsedMin", "memUsedAvg", "memUsedMax", "swapTotalBytes", "swapUsedMin", "swapUsedAvg", "swapUsedMax",
        "tokensPerSecondAvg", "tokensPerSecondMax", "load1Avg", "load5Avg", "load15Avg", "load1Max",
        "throttledSamples", "underVoltageSamples")
      SELECT 'pi-a', g, 2, 10, CASE WHEN (extract(epoch FROM g) / 60)::bigint % 2 = 0 THEN 20 ELSE 40 END, 50, 100,
        10, 20, 30, 0, 0, 0, 0, 4, 6, 1, 1, 1, 2, 1, 0
      FROM generate_series(${seedFrom}::timestamp, ${seedTo}::timestamp, interval '1 minute') AS g`;
    await store.rollup();

    const short = await store.series("pi-a", 15 * MIN);
    expect(short).toMatchObject({ source: "raw", bucketMs: 0, toMs: T0 });
    expect(short.points).toHaveLength(450);
    expect(short.points[0]).toMatchObject({ samples: 1, tokensPerSecond: 3, memUsedBytes: 2 * GiB, throttled: 0 });

    const twoHours = await store.series("pi-a", 2 * 3600_000);
    expect(twoHours.source).toBe("raw");
    expect(twoHours.points.length).toBeLessThanOrEqual(MAX_CHART_POINTS);
    expect(twoHours.points.at(-1)!.ts).toBe(T0 - 2000); // thinning keeps the newest sample

    const sixHours = await store.series("pi-a", 6 * 3600_000);
    expect(sixHours).toMatchObject({ source: "rollup", bucketMs: MIN });
    expect(sixHours.points).toHaveLength(330); // 3 h of seeded rollups + 2.5 h rolled up from raw
    const fromRaw = sixHours.points.at(-1)!;
    expect(fromRaw).toMatchObject({ ts: T0 - MIN, samples: 30, tokensPerSecond: 3, tokensPerSecondMax: 3 });
    // Generated tokens add up over the bucket; power and clock average.
    expect(fromRaw).toMatchObject({ generatedTokens: 180, boardPowerW: 5, boardPowerMax: 5, cpuFreqHz: 2e9, cpuFreqMin: 2e9 });
    expect(sixHours.points[0]).toMatchObject({ generatedTokens: null, boardPowerW: null, cpuFreqHz: null });

    const month = await store.series("pi-a", 30 * 86_400_000);
    expect(month).toMatchObject({ source: "rollup", bucketMs: 30 * MIN });
    expect(month.points.length).toBeLessThanOrEqual(MAX_CHART_POINTS);
    expect(month.points.length).toBeGreaterThan(1400);
    const full = month.points[10]!;
    // 30 minutes, alternating averages of 20 and 40, equal weights.
    expect(full).toMatchObject({ samples: 60, cpuPercent: 30, cpuMin: 10, cpuMax: 50, memUsedBytes: 20, memUsedMax: 30, throttled: 0.5 });
    expect(full.ts % (30 * MIN)).toBe(0);

    const week = await store.series("pi-a", 7 * 86_400_000);
    expect(week.bucketMs).toBe(10 * MIN);
    expect(week.points.length).toBeLessThanOrEqual(MAX_CHART_POINTS);

    // Other devices' rows are not mixed in.
    expect((await store.series("pi-b", 15 * MIN)).points).toHaveLength(1);
    expect((await store.series("pi-b", 7 * 86_400_000)).points).toMatchObject([{ samples: 1, cpuPercent: 1, throttled: 0 }]);
  });
});

describe("chart resolution", () => {
  it("uses raw samples only inside the raw window and never exceeds the point cap", () => {
    expect(chooseResolution(3600_000, 24 * 3600_000)).toEqual({ source: "raw", bucketMs: 0 });
    expect(chooseResolution(3 * 3600_000, 24 * 3600_000).source).toBe("raw");
    expect(chooseResolution(3600_000, 1800_000).source).toBe("rollup");
    for (const range of [6, 24, 7 * 24, 30 * 24, 365 * 24].map((h) => h * 3600_000)) {
      const { bucketMs } = chooseResolution(range, 24 * 3600_000);
      expect(range / bucketMs).toBeLessThanOrEqual(MAX_CHART_POINTS);
    }
    expect(thin([...Array(4000).keys()]).length).toBeLessThanOrEqual(MAX_CHART_POINTS);
    expect(thin([...Array(4000).keys()]).length).toBeGreaterThan(MAX_CHART_POINTS / 2);
    expect(thin([...Array(4000).keys()]).at(-1)).toBe(3999);
    expect(thin([...Array(10_001).keys()]).length).toBeLessThanOrEqual(MAX_CHART_POINTS);
  });
});
