/**
 * Telemetry storage over time: raw samples (TelemetrySample, written by the fleet's
 * flush loop) are kept for ORCHARD_TELEMETRY_RAW_HOURS and rolled up per device and
 * minute into TelemetryMinute, kept for ORCHARD_TELEMETRY_ROLLUP_DAYS. Charts read
 * raw samples for short ranges and rollups, grouped into larger buckets, for long ones.
 *
 * The rollup is one INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE per run. It
 * recomputes, from raw, every (device, minute) that got a sample since the previous
 * run (by sample id, so samples that arrive late after a reconnect recompute their
 * old minute), which makes it idempotent: a re-run writes the same values. Its
 * progress (the highest sample id rolled up) is stored with the rollups, in the same
 * statement. The SQL is plain PostgreSQL that PGlite runs the same way.
 */
import type { Prisma } from "../db/client.ts";
import type { Logger } from "../log.ts";
import { chooseResolution, pointFromSample, thin, type TelemetryPoint, type TelemetrySeries } from "@orchard/client";
import { decodeThrottle, type TelemetrySample } from "@orchard/contracts";

export interface TelemetryStoreOptions {
  /** Raw samples older than this are deleted. */
  rawHours: number;
  /** Rollups older than this are deleted. */
  rollupDays: number;
  /** Rows per DELETE statement. */
  deleteBatch?: number;
}

export interface RunResult {
  /** (device, minute) rows written. */
  minutes: number;
  rawDeleted: number;
  rollupsDeleted: number;
}

const MINUTE_MS = 60_000;
const DEFAULT_DELETE_BATCH = 5000;

/** A UTC timestamp in the form `::timestamp` reads the same on PGlite and PostgreSQL (Prisma's DateTime columns are timestamp(3)). */
const sqlTime = (ms: number) => new Date(ms).toISOString();
const floorMinute = (ms: number) => Math.floor(ms / MINUTE_MS) * MINUTE_MS;
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

export class TelemetryStore {
  private running: Promise<RunResult> | null = null;
  private rollingUp: Promise<number> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly prisma: Prisma,
    private readonly opts: TelemetryStoreOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get rawWindowMs(): number {
    return this.opts.rawHours * 3600_000;
  }

  /** Start of the oldest minute whose raw samples are kept. */
  rawCutoffMs(): number {
    return floorMinute(this.now() - this.rawWindowMs);
  }

  rollupCutoffMs(): number {
    return floorMinute(this.now() - this.opts.rollupDays * 86_400_000);
  }

  /** Runs the job every intervalMs (a minute by default); a run still going when the next is due is not doubled. */
  start(intervalMs = MINUTE_MS): void {
    this.timer ??= setInterval(() => {
      void this.run().catch((err: Error) => this.log.warn("telemetry rollup failed; retried next run", { error: err.message }));
    }, intervalMs);
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** Rollup, then retention. Concurrent calls share one run. */
  run(): Promise<RunResult> {
    this.running ??= (async () => {
      const minutes = await this.rollupNow();
      const { raw, rollups } = await this.retention();
      return { minutes, rawDeleted: raw, rollupsDeleted: rollups };
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Brings the rollups up to date; concurrent callers (the timer, chart reads) share one pass. */
  rollupNow(): Promise<number> {
    this.rollingUp ??= this.rollup().finally(() => {
      this.rollingUp = null;
    });
    return this.rollingUp;
  }

  /**
   * Recomputes every (device, minute) with a sample inserted since the last run,
   * from all of that minute's raw samples. Minutes older than the raw window are
   * skipped: their raw samples are (being) deleted, so a recompute would be partial.
   * The current minute is included (charts see it early); it is recomputed when
   * more of its samples arrive. Returns the number of rollup rows written.
   */
  async rollup(): Promise<number> {
    const [state] = await this.prisma.$queryRaw<{ last: bigint | null; max: bigint | null }[]>`
      SELECT (SELECT "lastSampleId" FROM "TelemetryRollupState" WHERE id = 1) AS last,
             (SELECT max(id) FROM "TelemetrySample") AS max`;
    const last = BigInt(state?.last ?? 0);
    const max = BigInt(state?.max ?? 0);
    if (max <= last) return 0;
    const cutoff = sqlTime(this.rawCutoffMs());
    // One statement, so the rollups and the progress row commit together (a data-modifying
    // WITH runs to completion even though the main statement does not read it).
    return this.prisma.$executeRaw`
        WITH affected AS (
          SELECT DISTINCT "deviceId", date_trunc('minute', ts) AS minute
          FROM "TelemetrySample"
          WHERE id > ${last}::bigint AND id <= ${max}::bigint AND ts >= ${cutoff}::timestamp
        ), progress AS (
          INSERT INTO "TelemetryRollupState" (id, "lastSampleId") VALUES (1, ${max}::bigint)
          ON CONFLICT (id) DO UPDATE SET "lastSampleId" = EXCLUDED."lastSampleId"
        )
        INSERT INTO "TelemetryMinute" (
          "deviceId", minute, samples,
          "cpuMin", "cpuAvg", "cpuMax",
          "socTempMin", "socTempAvg", "socTempMax",
          "memTotalBytes", "memUsedMin", "memUsedAvg", "memUsedMax",
          "swapTotalBytes", "swapUsedMin", "swapUsedAvg", "swapUsedMax",
          "runnerRssMin", "runnerRssAvg", "runnerRssMax",
          "tokensPerSecondAvg", "tokensPerSecondMax", "prefillTokensPerSecondAvg",
          "generatedTokens", "activeGenerationsMax",
          "cpuFreqMin", "cpuFreqAvg", "boardPowerAvg", "boardPowerMax",
          "load1Avg", "load5Avg", "load15Avg", "load1Max",
          "diskTotalBytes", "diskFreeLast", "diskFreeMin",
          "throttledSamples", "underVoltageSamples"
        )
        SELECT s."deviceId", a.minute, count(*)::int,
          min(s."cpuPercent"), avg(s."cpuPercent"), max(s."cpuPercent"),
          min(s."socTempC"), avg(s."socTempC"), max(s."socTempC"),
          max(s."memTotalBytes"),
          min(s."memTotalBytes" - s."memAvailableBytes"),
          round(avg(s."memTotalBytes" - s."memAvailableBytes"))::bigint,
          max(s."memTotalBytes" - s."memAvailableBytes"),
          max(s."swapTotalBytes"), min(s."swapUsedBytes"), round(avg(s."swapUsedBytes"))::bigint, max(s."swapUsedBytes"),
          min(s."runnerRssBytes"), round(avg(s."runnerRssBytes"))::bigint, max(s."runnerRssBytes"),
          avg(s."tokensPerSecond"), max(s."tokensPerSecond"), avg(s."prefillTokensPerSecond"),
          sum(s."generatedTokens")::bigint, max(s."activeGenerations"),
          min(s."cpuFreqHz"), round(avg(s."cpuFreqHz"))::bigint, avg(s."boardPowerW"), max(s."boardPowerW"),
          avg(s.load1), avg(s.load5), avg(s.load15), max(s.load1),
          max(s."diskTotalBytes"),
          (array_agg(s."diskFreeBytes" ORDER BY s.ts DESC, s.id DESC) FILTER (WHERE s."diskFreeBytes" IS NOT NULL))[1],
          min(s."diskFreeBytes"),
          CASE WHEN count(s."throttleRaw") > 0 THEN (count(*) FILTER (WHERE (s."throttleRaw" & 4) <> 0))::int END,
          CASE WHEN count(s."throttleRaw") > 0 THEN (count(*) FILTER (WHERE (s."throttleRaw" & 1) <> 0))::int END
        FROM affected a
        JOIN "TelemetrySample" s
          ON s."deviceId" = a."deviceId" AND s.ts >= a.minute AND s.ts < a.minute + interval '1 minute'
        GROUP BY s."deviceId", a.minute
        ON CONFLICT ("deviceId", minute) DO UPDATE SET
          samples = EXCLUDED.samples,
          "cpuMin" = EXCLUDED."cpuMin", "cpuAvg" = EXCLUDED."cpuAvg", "cpuMax" = EXCLUDED."cpuMax",
          "socTempMin" = EXCLUDED."socTempMin", "socTempAvg" = EXCLUDED."socTempAvg", "socTempMax" = EXCLUDED."socTempMax",
          "memTotalBytes" = EXCLUDED."memTotalBytes", "memUsedMin" = EXCLUDED."memUsedMin",
          "memUsedAvg" = EXCLUDED."memUsedAvg", "memUsedMax" = EXCLUDED."memUsedMax",
          "swapTotalBytes" = EXCLUDED."swapTotalBytes", "swapUsedMin" = EXCLUDED."swapUsedMin",
          "swapUsedAvg" = EXCLUDED."swapUsedAvg", "swapUsedMax" = EXCLUDED."swapUsedMax",
          "runnerRssMin" = EXCLUDED."runnerRssMin", "runnerRssAvg" = EXCLUDED."runnerRssAvg", "runnerRssMax" = EXCLUDED."runnerRssMax",
          "tokensPerSecondAvg" = EXCLUDED."tokensPerSecondAvg", "tokensPerSecondMax" = EXCLUDED."tokensPerSecondMax",
          "prefillTokensPerSecondAvg" = EXCLUDED."prefillTokensPerSecondAvg",
          "generatedTokens" = EXCLUDED."generatedTokens", "activeGenerationsMax" = EXCLUDED."activeGenerationsMax",
          "cpuFreqMin" = EXCLUDED."cpuFreqMin", "cpuFreqAvg" = EXCLUDED."cpuFreqAvg",
          "boardPowerAvg" = EXCLUDED."boardPowerAvg", "boardPowerMax" = EXCLUDED."boardPowerMax",
          "load1Avg" = EXCLUDED."load1Avg", "load5Avg" = EXCLUDED."load5Avg", "load15Avg" = EXCLUDED."load15Avg",
          "load1Max" = EXCLUDED."load1Max",
          "diskTotalBytes" = EXCLUDED."diskTotalBytes", "diskFreeLast" = EXCLUDED."diskFreeLast", "diskFreeMin" = EXCLUDED."diskFreeMin",
          "throttledSamples" = EXCLUDED."throttledSamples", "underVoltageSamples" = EXCLUDED."underVoltageSamples"`;
  }

  /** Deletes raw samples and rollups older than their windows, a batch per statement so writers get in between. */
  async retention(): Promise<{ raw: number; rollups: number }> {
    const batch = this.opts.deleteBatch ?? DEFAULT_DELETE_BATCH;
    const rawCutoff = sqlTime(this.rawCutoffMs());
    const rollupCutoff = sqlTime(this.rollupCutoffMs());
    const raw = await this.inBatches(
      batch,
      () => this.prisma.$executeRaw`
        DELETE FROM "TelemetrySample" WHERE id IN (
          SELECT id FROM "TelemetrySample" WHERE ts < ${rawCutoff}::timestamp LIMIT ${batch}::int)`,
    );
    const rollups = await this.inBatches(
      batch,
      () => this.prisma.$executeRaw`
        DELETE FROM "TelemetryMinute" WHERE ("deviceId", minute) IN (
          SELECT "deviceId", minute FROM "TelemetryMinute" WHERE minute < ${rollupCutoff}::timestamp LIMIT ${batch}::int)`,
    );
    if (raw + rollups > 0) this.log.debug("telemetry retention", { raw, rollups });
    return { raw, rollups };
  }

  private async inBatches(batch: number, statement: () => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await statement();
      total += n;
      if (n < batch) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** A device's raw samples in [fromMs, toMs], oldest first, evenly thinned to MAX_CHART_POINTS (the newest always kept). */
  async rawSamples(deviceId: string, fromMs: number, toMs = this.now()): Promise<TelemetrySample[]> {
    const rows = await this.prisma.telemetrySample.findMany({
      where: { deviceId, ts: { gte: new Date(fromMs), lte: new Date(toMs) } },
      orderBy: [{ ts: "asc" }, { id: "asc" }],
    });
    return thin(rows).map((r) => ({
      ts: r.ts.getTime(),
      cpuPercent: r.cpuPercent,
      load1: r.load1,
      load5: r.load5,
      load15: r.load15,
      memTotalBytes: Number(r.memTotalBytes),
      memAvailableBytes: Number(r.memAvailableBytes),
      swapTotalBytes: Number(r.swapTotalBytes),
      swapUsedBytes: Number(r.swapUsedBytes),
      diskTotalBytes: num(r.diskTotalBytes),
      diskFreeBytes: num(r.diskFreeBytes),
      socTempC: r.socTempC,
      throttle: r.throttleRaw === null ? null : decodeThrottle(r.throttleRaw),
      runnerRssBytes: num(r.runnerRssBytes),
      tokensPerSecond: r.tokensPerSecond,
      prefillTokensPerSecond: r.prefillTokensPerSecond,
      generatedTokens: r.generatedTokens,
      activeGenerations: r.activeGenerations,
      cpuFreqHz: num(r.cpuFreqHz),
      boardPowerW: r.boardPowerW,
    }));
  }

  /**
   * A device's telemetry over [toMs - rangeMs, toMs] for a chart: raw samples for
   * short ranges inside the raw window (evenly thinned to MAX_CHART_POINTS), per-minute
   * rollups grouped into buckets otherwise (see chooseResolution), brought up to date
   * before they are read.
   */
  async series(deviceId: string, rangeMs: number, toMs = this.now()): Promise<TelemetrySeries> {
    const fromMs = toMs - rangeMs;
    const { source, bucketMs } = chooseResolution(rangeMs, this.rawWindowMs);
    if (source === "raw") {
      const points = (await this.rawSamples(deviceId, fromMs, toMs)).map(pointFromSample);
      return { source, bucketMs, fromMs, toMs, points };
    }
    // A long-range chart must not wait for the next timer run to see the last minute (or a new device at all).
    await this.rollupNow();
    // Buckets are aligned to multiples of bucketMs since the epoch, so a refresh does not shift them.
    // Averages are weighted by each minute's sample count.
    const from = sqlTime(floorMinute(fromMs));
    const to = sqlTime(toMs);
    const rows = await this.prisma.$queryRaw<Record<string, unknown>[]>`
      WITH m AS (
        SELECT *, (floor(extract(epoch FROM minute) * 1000 / ${bucketMs}::float8) * ${bucketMs}::float8)::float8 AS bucket
        FROM "TelemetryMinute"
        WHERE "deviceId" = ${deviceId} AND minute >= ${from}::timestamp AND minute <= ${to}::timestamp
      )
      SELECT bucket AS ts,
        sum(samples)::float8 AS samples,
        (sum("cpuAvg" * samples) / nullif(sum(samples) FILTER (WHERE "cpuAvg" IS NOT NULL), 0))::float8 AS "cpuPercent",
        min("cpuMin")::float8 AS "cpuMin", max("cpuMax")::float8 AS "cpuMax",
        (sum("socTempAvg" * samples) / nullif(sum(samples) FILTER (WHERE "socTempAvg" IS NOT NULL), 0))::float8 AS "socTempC",
        min("socTempMin")::float8 AS "socTempMin", max("socTempMax")::float8 AS "socTempMax",
        max("memTotalBytes")::float8 AS "memTotalBytes",
        (sum("memUsedAvg" * samples) / sum(samples))::float8 AS "memUsedBytes",
        max("memUsedMax")::float8 AS "memUsedMax",
        max("swapTotalBytes")::float8 AS "swapTotalBytes",
        (sum("swapUsedAvg" * samples) / sum(samples))::float8 AS "swapUsedBytes",
        (sum("runnerRssAvg" * samples) / nullif(sum(samples) FILTER (WHERE "runnerRssAvg" IS NOT NULL), 0))::float8 AS "runnerRssBytes",
        max("runnerRssMax")::float8 AS "runnerRssMax",
        (sum("tokensPerSecondAvg" * samples) / nullif(sum(samples) FILTER (WHERE "tokensPerSecondAvg" IS NOT NULL), 0))::float8 AS "tokensPerSecond",
        max("tokensPerSecondMax")::float8 AS "tokensPerSecondMax",
        (sum("prefillTokensPerSecondAvg" * samples) / nullif(sum(samples) FILTER (WHERE "prefillTokensPerSecondAvg" IS NOT NULL), 0))::float8 AS "prefillTokensPerSecond",
        sum("generatedTokens")::float8 AS "generatedTokens",
        (sum("cpuFreqAvg" * samples) / nullif(sum(samples) FILTER (WHERE "cpuFreqAvg" IS NOT NULL), 0))::float8 AS "cpuFreqHz",
        min("cpuFreqMin")::float8 AS "cpuFreqMin",
        (sum("boardPowerAvg" * samples) / nullif(sum(samples) FILTER (WHERE "boardPowerAvg" IS NOT NULL), 0))::float8 AS "boardPowerW",
        max("boardPowerMax")::float8 AS "boardPowerMax",
        (sum("load1Avg" * samples) / sum(samples))::float8 AS load1,
        (sum("load5Avg" * samples) / sum(samples))::float8 AS load5,
        (sum("load15Avg" * samples) / sum(samples))::float8 AS load15,
        max("diskTotalBytes")::float8 AS "diskTotalBytes",
        ((array_agg("diskFreeLast" ORDER BY minute DESC) FILTER (WHERE "diskFreeLast" IS NOT NULL))[1])::float8 AS "diskFreeBytes",
        (sum("throttledSamples")::float8 / nullif(sum(samples) FILTER (WHERE "throttledSamples" IS NOT NULL), 0))::float8 AS throttled,
        (sum("underVoltageSamples")::float8 / nullif(sum(samples) FILTER (WHERE "underVoltageSamples" IS NOT NULL), 0))::float8 AS "underVoltage"
      FROM m
      GROUP BY bucket
      ORDER BY bucket`;
    const points = rows.map((r) => {
      const p = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, num(v)])) as Record<keyof TelemetryPoint, number | null>;
      return { ...p, ts: p.ts ?? 0, samples: p.samples ?? 0 };
    });
    return { source, bucketMs, fromMs, toMs, points };
  }
}
