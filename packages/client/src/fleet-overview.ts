/**
 * What the fleet overview shows besides the live totals: fleet tokens/s over a
 * time range (from the per-minute rollups) and a "generating now" sparkline per
 * device. Shared by the server (services/fleet-throughput.ts) and the fleet page;
 * no React, no Prisma.
 */
import { z } from "zod";
import { FleetTotals } from "@orchard/contracts";
import { TELEMETRY_RANGES, type TelemetryRange } from "./telemetry-series.ts";

/** Minutes of history in each device's sparkline (the newest is the minute in progress). */
export const SPARKLINE_MINUTES = 30;

export const TelemetryRangeName = z.enum(Object.keys(TELEMETRY_RANGES) as [TelemetryRange, ...TelemetryRange[]], {
  error: `range must be one of ${Object.keys(TELEMETRY_RANGES).join(", ")}`,
});

/** One bucket of the fleet throughput chart. */
export const FleetThroughputPoint = z.object({
  /** Start of the bucket (ms). */
  ts: z.number(),
  /** Tokens generated in the bucket by every device, divided by the bucket's seconds (the bucket in progress: its seconds so far). */
  tokensPerSecond: z.number().nonnegative(),
  /** Tokens generated in the bucket by every device. */
  tokens: z.number().nonnegative(),
  /** Devices that sent at least one sample in the bucket. */
  devicesReporting: z.number().int().nonnegative(),
});
export type FleetThroughputPoint = z.infer<typeof FleetThroughputPoint>;

export const FleetSparklines = z.object({
  /** Start of the first minute; value i is the minute starting at fromMs + i minutes. */
  fromMs: z.number(),
  /**
   * Per device id: SPARKLINE_MINUTES values, each the device's "generating now" over that
   * minute: its generatedTokens ÷ the minute's seconds (the minute in progress: its seconds
   * so far); null where no sample of the minute reported a count. Devices that generated
   * nothing in the whole window are absent.
   */
  devices: z.record(z.string(), z.array(z.number().nullable())),
});
export type FleetSparklines = z.infer<typeof FleetSparklines>;

export const FleetOverviewData = z.object({
  range: TelemetryRangeName,
  /** Bucket size of `points` (at least a minute: the chart reads rollups). */
  bucketMs: z.number().int().positive(),
  fromMs: z.number(),
  toMs: z.number(),
  /** Oldest first; buckets without any sample are absent (a gap in the chart). */
  points: z.array(FleetThroughputPoint),
  sparklines: FleetSparklines,
  /** The live figures when the overview was read (fleet:totals keeps them current). */
  totals: FleetTotals,
});
export type FleetOverviewData = z.infer<typeof FleetOverviewData>;
