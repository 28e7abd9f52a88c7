/**
 * What device charts plot: points on one time axis, from raw samples (short
 * ranges) or from per-minute rollups grouped into buckets (long ranges). Shared by
 * the server (services/telemetry-store.ts) and the device page; no React, no Prisma.
 */
import { z } from "zod";
import type { TelemetrySample } from "@orchard/contracts";

/** Most points one chart gets; longer ranges are thinned (raw) or bucketed (rollups). */
export const MAX_CHART_POINTS = 2000;
/** Ranges up to this long are read from raw samples; longer ones from rollups. */
export const RAW_MAX_RANGE_MS = 3 * 3600_000;

export const TELEMETRY_RANGES = {
  "15m": 15 * 60_000,
  "1h": 3600_000,
  "6h": 6 * 3600_000,
  "24h": 24 * 3600_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
} as const;
export type TelemetryRange = keyof typeof TELEMETRY_RANGES;

/** Bucket sizes for rollup reads, in minutes: the smallest that keeps a range under MAX_CHART_POINTS wins. */
const BUCKET_MINUTES = [1, 2, 5, 10, 15, 30, 60, 120, 360, 720, 1440];

const n = z.number().nullable();

/**
 * One point. From a raw sample: that sample's values (min = avg = max). From
 * rollups: the bucket's sample-weighted averages in the plain fields, with the
 * minimum and maximum beside them where a chart can show a band or a peak.
 */
export const TelemetryPoint = z.object({
  /** The sample's time, or the start of the bucket (ms). */
  ts: z.number(),
  /** Raw samples behind this point. */
  samples: z.number().int(),
  cpuPercent: n,
  cpuMin: n,
  cpuMax: n,
  socTempC: n,
  socTempMin: n,
  socTempMax: n,
  memTotalBytes: n,
  memUsedBytes: n,
  memUsedMax: n,
  swapTotalBytes: n,
  swapUsedBytes: n,
  runnerRssBytes: n,
  runnerRssMax: n,
  /** Decode tokens/s (null: nothing generated). */
  tokensPerSecond: n,
  tokensPerSecondMax: n,
  /** Prompt-feed tokens/s (null: nothing prefilled). */
  prefillTokensPerSecond: n,
  /** Tokens generated in the sample's interval or the bucket. */
  generatedTokens: n,
  /** ARM clock, Hz (average over the bucket), and its minimum: a capped clock shows as a dip. */
  cpuFreqHz: n,
  cpuFreqMin: n,
  /** Board power, W (average) and its peak. */
  boardPowerW: n,
  boardPowerMax: n,
  load1: n,
  load5: n,
  load15: n,
  diskTotalBytes: n,
  /** The newest free-disk reading in the bucket. */
  diskFreeBytes: n,
  /** Share of the samples (0–1) taken while throttled (bit 2 of get_throttled). */
  throttled: n,
  /** Share of the samples (0–1) taken while under-voltage (bit 0). */
  underVoltage: n,
});
export type TelemetryPoint = z.infer<typeof TelemetryPoint>;

export const TelemetrySeries = z.object({
  /** raw: samples, evenly thinned to MAX_CHART_POINTS; rollup: per-minute rollups grouped into bucketMs. */
  source: z.enum(["raw", "rollup"]),
  /** 0 for raw samples. */
  bucketMs: z.number().int().nonnegative(),
  fromMs: z.number(),
  toMs: z.number(),
  points: z.array(TelemetryPoint),
});
export type TelemetrySeries = z.infer<typeof TelemetrySeries>;

/** Where a range is read from: raw samples while they exist and the range is short, rollups otherwise. */
export function chooseResolution(rangeMs: number, rawWindowMs: number): { source: "raw" | "rollup"; bucketMs: number } {
  if (rangeMs <= RAW_MAX_RANGE_MS && rangeMs <= rawWindowMs) return { source: "raw", bucketMs: 0 };
  const minutes = BUCKET_MINUTES.find((m) => rangeMs / (m * 60_000) <= MAX_CHART_POINTS) ?? BUCKET_MINUTES.at(-1)!;
  return { source: "rollup", bucketMs: minutes * 60_000 };
}

export function pointFromSample(s: TelemetrySample): TelemetryPoint {
  const memUsed = s.memTotalBytes - s.memAvailableBytes;
  const flag = (on: boolean | undefined) => (s.throttle ? (on ? 1 : 0) : null);
  return {
    ts: s.ts,
    samples: 1,
    cpuPercent: s.cpuPercent,
    cpuMin: s.cpuPercent,
    cpuMax: s.cpuPercent,
    socTempC: s.socTempC,
    socTempMin: s.socTempC,
    socTempMax: s.socTempC,
    memTotalBytes: s.memTotalBytes,
    memUsedBytes: memUsed,
    memUsedMax: memUsed,
    swapTotalBytes: s.swapTotalBytes,
    swapUsedBytes: s.swapUsedBytes,
    runnerRssBytes: s.runnerRssBytes,
    runnerRssMax: s.runnerRssBytes,
    tokensPerSecond: s.tokensPerSecond,
    tokensPerSecondMax: s.tokensPerSecond,
    prefillTokensPerSecond: s.prefillTokensPerSecond,
    generatedTokens: s.generatedTokens,
    cpuFreqHz: s.cpuFreqHz,
    cpuFreqMin: s.cpuFreqHz,
    boardPowerW: s.boardPowerW,
    boardPowerMax: s.boardPowerW,
    load1: s.load1,
    load5: s.load5,
    load15: s.load15,
    diskTotalBytes: s.diskTotalBytes,
    diskFreeBytes: s.diskFreeBytes,
    throttled: flag(s.throttle?.throttled),
    underVoltage: flag(s.throttle?.underVoltage),
  };
}

/** Every step-th item plus the last, so at most `max` items remain. */
export function thin<T>(items: readonly T[], max = MAX_CHART_POINTS): T[] {
  if (items.length <= max) return [...items];
  const step = Math.ceil(items.length / (max - 1));
  return items.filter((_, i) => i % step === 0 || i === items.length - 1);
}
