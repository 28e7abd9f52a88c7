/**
 * Fleet throughput: the live fleet totals (devices online, fleet tokens/s now,
 * generations held, active alerts) from the in-memory fleet, and the overview's
 * history (fleet tokens/s over a range, per-device sparklines) from the per-minute
 * rollups.
 *
 * Names and units are in @orchard/contracts (throughput.ts); docs/metrics.md, "Token rates".
 *
 * "Generating now" of a device (`DeviceSummary.generatingTokensPerSecond`, computed by
 * FleetService.applyTelemetry with advanceGeneratingRate below, shown in the fleet
 * table's row) is its generation rate in its newest sample:
 *  - `generatedTokens / interval`, where the interval is the time between that sample
 *    and the device's previous one (both stamped by the device's clock), when the
 *    sample reports generatedTokens and the previous sample is at most
 *    MAX_RATE_INTERVAL_MS older (a longer gap means samples were lost or the device
 *    was away, so the count would be spread over time it does not cover);
 *  - otherwise the sample's decode `tokensPerSecond` if the device is generating
 *    (`activeGenerations > 0`, or, from an agent that does not report it, a non-null
 *    tokensPerSecond): older agents, and the first sample after a (re)connect;
 *  - otherwise 0.
 * The first is what the device actually produces (idle time, queueing and prefill
 * included); the second is the decode speed while generating, an upper bound of it.
 * "Generating now (whole fleet)" (`FleetTotals.tokensPerSecond`, the overview card) is
 * exactly the sum of the online devices' own figures: one source, one window.
 *
 * Fleet tokens/s *over time* is, per bucket, the sum over devices of the rollups'
 * generatedTokens divided by the bucket's seconds (the bucket in progress: its seconds
 * so far). Only samples that report generatedTokens count. Buckets that can no longer
 * change much (ended SETTLE_MS ago) are cached per bucket size, so a long range reads
 * only its newest buckets from the database; the cache is rebuilt every
 * CACHE_REBUILD_MS to pick up samples a device sent late (after a reconnect).
 */
import type { FleetTotals, TelemetrySample } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { chooseResolution, TELEMETRY_RANGES, type TelemetryRange } from "@orchard/client";
import { SPARKLINE_MINUTES, type FleetOverviewData, type FleetSparklines, type FleetThroughputPoint } from "@orchard/client";
import type { FleetService } from "./fleet.ts";
import type { TelemetryStore } from "./telemetry-store.ts";

/** A sample further than this from the device's previous one gets its rate from tokensPerSecond instead. */
export const MAX_RATE_INTERVAL_MS = 60_000;
/** A bucket that ended this long ago is cached. */
const SETTLE_MS = 2 * 60_000;
/** Cached buckets are read again from the database this often. */
const CACHE_REBUILD_MS = 3600_000;
const MINUTE_MS = 60_000;

const sqlTime = (ms: number) => new Date(ms).toISOString();
const floorTo = (ms: number, step: number) => Math.floor(ms / step) * step;

/** One bucket's sums, as read from the rollups. */
interface BucketSums {
  tokens: number;
  devices: number;
}

interface BucketCache {
  /** Buckets starting before this are complete in `buckets` (empty ones are simply absent). */
  settledUntil: number;
  /** The oldest bucket start the cache covers. */
  coveredFrom: number;
  builtAt: number;
  buckets: Map<number, BucketSums>;
}

/** A device's generation rate from its newest sample and the time since its previous one (null: no previous sample). */
export function sampleRate(sample: TelemetrySample, intervalMs: number | null): number {
  if (sample.generatedTokens !== null && intervalMs !== null && intervalMs > 0 && intervalMs <= MAX_RATE_INTERVAL_MS) {
    return sample.generatedTokens / (intervalMs / 1000);
  }
  const generating = sample.activeGenerations !== null ? sample.activeGenerations > 0 : sample.tokensPerSecond !== null;
  return generating ? (sample.tokensPerSecond ?? 0) : 0;
}

/** A device's "generating now": the device clock of the newest sample it is computed from (null: none yet) and its value. */
export interface GeneratingRate {
  ts: number | null;
  tokensPerSecond: number | null;
}

/**
 * The rate after `samples` arrive (usually one; after a reconnect, the buffered ones, in any order): each one's
 * interval is to the one before it. A sample not newer than the newest one seen (a late duplicate) says nothing
 * about now and is skipped.
 */
export function advanceGeneratingRate(state: GeneratingRate, samples: readonly TelemetrySample[]): GeneratingRate {
  const sorted = samples.length === 1 ? samples : [...samples].sort((a, b) => a.ts - b.ts);
  let { ts, tokensPerSecond } = state;
  for (const s of sorted) {
    if (ts !== null && s.ts <= ts) continue;
    tokensPerSecond = sampleRate(s, ts === null ? null : s.ts - ts);
    ts = s.ts;
  }
  return { ts, tokensPerSecond };
}

export class FleetThroughput {
  private readonly caches = new Map<number, BucketCache>();

  constructor(
    private readonly fleet: FleetService,
    private readonly prisma: Prisma,
    private readonly store: TelemetryStore,
    /** Active alerts right now (services/alerts.ts); 0 until one is injected. */
    private readonly alertsActive: () => number = () => 0,
    private readonly now: () => number = Date.now,
  ) {}

  /** Nothing to stop: the figures are read from the fleet when asked for (kept for the callers). */
  close(): void {}

  /** The fleet right now: O(devices), from memory only; tokens/s is the sum of the online rows' "generating now". */
  totals(): FleetTotals {
    const { total, online } = this.fleet.counts();
    let tokensPerSecond = 0;
    let activeGenerations = 0;
    for (const d of this.fleet.list()) {
      if (!d.online) continue;
      tokensPerSecond += d.generatingTokensPerSecond ?? 0;
      activeGenerations += d.telemetry?.activeGenerations ?? 0;
    }
    return {
      ts: this.now(),
      devicesTotal: total,
      devicesOnline: online,
      tokensPerSecond,
      activeGenerations,
      alertsActive: Math.max(0, Math.trunc(this.alertsActive())),
    };
  }

  /** Fleet tokens/s over the range (from rollups) and every device's sparkline, with the totals now. */
  async overview(range: TelemetryRange): Promise<FleetOverviewData> {
    await this.fleet.flush(); // include samples still waiting in memory
    await this.store.rollupNow(); // and the minute in progress
    const toMs = this.now();
    const rangeMs = TELEMETRY_RANGES[range];
    const fromMs = toMs - rangeMs;
    // A fleet chart always reads rollups (minutes or coarser), whatever the range.
    const { bucketMs } = chooseResolution(rangeMs, 0);
    const [points, sparklines] = await Promise.all([this.throughputSeries(fromMs, toMs, bucketMs), this.sparklines(toMs)]);
    return { range, bucketMs, fromMs, toMs, points, sparklines, totals: this.totals() };
  }

  /** Per bucket of bucketMs (aligned to the epoch) overlapping [fromMs, toMs]: tokens, tokens/s and devices reporting. */
  async throughputSeries(fromMs: number, toMs: number, bucketMs: number): Promise<FleetThroughputPoint[]> {
    const first = floorTo(fromMs, bucketMs);
    const now = this.now();
    let cache = this.caches.get(bucketMs);
    if (!cache || now - cache.builtAt > CACHE_REBUILD_MS || cache.coveredFrom > first) {
      cache = { settledUntil: first, coveredFrom: first, builtAt: now, buckets: new Map() };
      this.caches.set(bucketMs, cache);
    }
    const queryFrom = Math.max(first, cache.settledUntil);
    const fresh = await this.readBuckets(queryFrom, toMs, bucketMs);
    // Buckets that ended SETTLE_MS ago are kept; newer ones are read again next time.
    const settledUntil = Math.max(cache.settledUntil, floorTo(now - SETTLE_MS, bucketMs));
    for (const [ts, sums] of fresh) if (ts + bucketMs <= settledUntil) cache.buckets.set(ts, sums);
    cache.settledUntil = Math.min(settledUntil, floorTo(toMs, bucketMs));
    // Nothing older than the longest range is ever asked for again.
    const oldest = floorTo(now - TELEMETRY_RANGES["30d"], bucketMs);
    for (const ts of cache.buckets.keys()) if (ts < oldest) cache.buckets.delete(ts);
    cache.coveredFrom = Math.max(cache.coveredFrom, oldest);

    const points: FleetThroughputPoint[] = [];
    const at = (ts: number) => (ts >= queryFrom ? fresh.get(ts) : cache.buckets.get(ts));
    for (let ts = first; ts <= toMs; ts += bucketMs) {
      const sums = at(ts);
      if (!sums) continue;
      const seconds = (Math.min(ts + bucketMs, toMs) - ts) / 1000;
      points.push({
        ts,
        tokens: sums.tokens,
        tokensPerSecond: seconds > 0 ? sums.tokens / seconds : 0,
        devicesReporting: sums.devices,
      });
    }
    return points;
  }

  /** One query over every device's rollups in [fromMs, toMs], grouped into buckets. */
  private async readBuckets(fromMs: number, toMs: number, bucketMs: number): Promise<Map<number, BucketSums>> {
    if (fromMs > toMs) return new Map();
    const rows = await this.prisma.$queryRaw<{ ts: number; tokens: number; devices: number }[]>`
      SELECT (floor(extract(epoch FROM minute) * 1000 / ${bucketMs}::float8) * ${bucketMs}::float8)::float8 AS ts,
        coalesce(sum("generatedTokens"), 0)::float8 AS tokens,
        count(DISTINCT "deviceId")::int AS devices
      FROM "TelemetryMinute"
      WHERE minute >= ${sqlTime(fromMs)}::timestamp AND minute <= ${sqlTime(toMs)}::timestamp
      GROUP BY 1
      ORDER BY 1`;
    return new Map(rows.map((r) => [Number(r.ts), { tokens: Number(r.tokens), devices: Number(r.devices) }]));
  }

  /**
   * Every device's "generating now" per minute over the last SPARKLINE_MINUTES minutes (the
   * current one included): the minute's generatedTokens ÷ its seconds (the minute in
   * progress: its seconds so far), the per-device version of the fleet chart. One query over
   * the rollups' minute index: one row per device that generated anything in the window,
   * its minutes and tokens as arrays; a minute whose samples reported no count is a gap.
   */
  async sparklines(toMs = this.now()): Promise<FleetSparklines> {
    const fromMs = floorTo(toMs, MINUTE_MS) - (SPARKLINE_MINUTES - 1) * MINUTE_MS;
    const rows = await this.prisma.$queryRaw<{ deviceId: string; minutes: number[]; tokens: number[] }[]>`
      SELECT "deviceId",
        array_agg((extract(epoch FROM minute) * 1000)::float8 ORDER BY minute) AS minutes,
        array_agg("generatedTokens"::float8 ORDER BY minute) AS tokens
      FROM "TelemetryMinute"
      WHERE minute >= ${sqlTime(fromMs)}::timestamp AND minute <= ${sqlTime(toMs)}::timestamp
        AND "generatedTokens" IS NOT NULL
      GROUP BY "deviceId"
      HAVING sum("generatedTokens") > 0`;
    const devices: Record<string, (number | null)[]> = {};
    for (const row of rows) {
      const values = new Array<number | null>(SPARKLINE_MINUTES).fill(null);
      row.minutes.forEach((minute, i) => {
        const start = Number(minute);
        const slot = Math.round((start - fromMs) / MINUTE_MS);
        const seconds = (Math.min(start + MINUTE_MS, toMs) - start) / 1000;
        if (slot >= 0 && slot < SPARKLINE_MINUTES && seconds > 0) values[slot] = Number(row.tokens[i]) / seconds;
      });
      devices[row.deviceId] = values;
    }
    return { fromMs, devices };
  }
}
