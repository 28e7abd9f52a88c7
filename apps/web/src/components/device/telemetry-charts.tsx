"use client";
/**
 * The device page's charts over a chosen range (15 min to 30 days), on one time axis
 * and ordered to answer "why is it slow?": decode and prompt-feed tokens/s first, then
 * what slows a Pi down — SoC temperature, throttling/under-voltage, the CPU clock,
 * board power — then CPU, memory and swap, runner RSS, load and disk. Ranges up to an
 * hour or so are raw samples with live updates; longer ones are per-minute rollups
 * grouped into buckets, where each line is the bucket's average (tokens/s also shows
 * the peak, the clock its minimum, power its peak).
 */
import { Activity, Cpu, Gauge, HardDrive, MemoryStick, Plug, Thermometer, Timer, TriangleAlert, Zap } from "lucide-react";
import { useMemo, useState } from "react";
import { DECODE_SPEED, TOKEN_RATE_UNIT } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { LoadingBlock } from "@/components/ui/spinner";
import { cn } from "@/lib/cn";
import { formatBytes, formatLoad, formatPercent, formatTemp, formatTokS } from "@/lib/format";
import { errorMessage } from "@/lib/trpc";
import { TELEMETRY_RANGES, useTelemetryRange, type TelemetryPoint, type TelemetryRange } from "@/lib/telemetry";
import { pointFromSample } from "@orchard/client";
import { TelemetryChart, type ChartSeries, type YRange } from "./telemetry-chart";

/** Raw samples further apart than this are drawn with a break: the device was not reporting. */
const GAP_MS = 60_000;

const COLORS = { green: "#16a34a", blue: "#3b82f6", amber: "#f59e0b", violet: "#a855f7", slate: "#94a3b8", rose: "#f43f5e" } as const;

const RANGE_LABELS: Record<TelemetryRange, string> = {
  "15m": "15 min",
  "1h": "1 h",
  "6h": "6 h",
  "24h": "24 h",
  "7d": "7 d",
  "30d": "30 d",
};
const RANGE_TITLES: Record<TelemetryRange, string> = {
  "15m": "the last 15 minutes",
  "1h": "the last hour",
  "6h": "the last 6 hours",
  "24h": "the last 24 hours",
  "7d": "the last 7 days",
  "30d": "the last 30 days",
};

const percentRange: YRange = () => [0, 100];
const tempRange: YRange = (min, max) => [Math.min(30, (min ?? 30) - 5), Math.max(70, (max ?? 70) + 5)];
const fromZero =
  (softMax: number): YRange =>
  (_min, max) => [0, Math.max(softMax, (max ?? 0) * 1.15)];
/** Axis labels for bytes: "512 MiB", "2 GiB", "1.5 GiB". */
const bytes = (v: number) => (v === 0 ? "0" : formatBytes(v, { trimZero: true }));
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** Power-of-two tick steps, so memory axes read 2 GiB, 4 GiB, 6 GiB rather than 2.3 GiB, 4.7 GiB. */
const BYTE_INCRS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((n) => n * MiB).concat([1, 2, 4, 8, 16, 32, 64].map((n) => n * GiB));

interface Columns {
  xs: number[];
  cpu: (number | null)[];
  temp: (number | null)[];
  memUsed: (number | null)[];
  memTotal: (number | null)[];
  swapUsed: (number | null)[];
  rss: (number | null)[];
  tps: (number | null)[];
  tpsMax: (number | null)[];
  prefill: (number | null)[];
  freq: (number | null)[];
  freqMin: (number | null)[];
  power: (number | null)[];
  powerMax: (number | null)[];
  diskFree: (number | null)[];
  load1: (number | null)[];
  load5: (number | null)[];
  load15: (number | null)[];
  throttled: (number | null)[];
  underVoltage: (number | null)[];
}

/** Turns points into uPlot's column arrays, inserting a null row where the device went quiet for longer than gapMs. */
function toColumns(points: TelemetryPoint[], gapMs: number): Columns {
  const c: Columns = {
    xs: [],
    cpu: [],
    temp: [],
    memUsed: [],
    memTotal: [],
    swapUsed: [],
    rss: [],
    tps: [],
    tpsMax: [],
    prefill: [],
    freq: [],
    freqMin: [],
    power: [],
    powerMax: [],
    diskFree: [],
    load1: [],
    load5: [],
    load15: [],
    throttled: [],
    underVoltage: [],
  };
  let prev: number | null = null;
  const push = (ts: number, p: TelemetryPoint | null) => {
    c.xs.push(ts / 1000);
    c.cpu.push(p?.cpuPercent ?? null);
    c.temp.push(p?.socTempC ?? null);
    c.memUsed.push(p?.memUsedBytes ?? null);
    c.memTotal.push(p?.memTotalBytes ?? null);
    c.swapUsed.push(p && (p.swapTotalBytes ?? 0) > 0 ? p.swapUsedBytes : null);
    c.rss.push(p?.runnerRssBytes ?? null);
    c.tps.push(p?.tokensPerSecond ?? null);
    c.tpsMax.push(p?.tokensPerSecondMax ?? null);
    c.prefill.push(p?.prefillTokensPerSecond ?? null);
    c.freq.push(p?.cpuFreqHz != null ? p.cpuFreqHz / 1e6 : null);
    c.freqMin.push(p?.cpuFreqMin != null ? p.cpuFreqMin / 1e6 : null);
    c.power.push(p?.boardPowerW ?? null);
    c.powerMax.push(p?.boardPowerMax ?? null);
    c.diskFree.push(p?.diskFreeBytes ?? null);
    c.load1.push(p?.load1 ?? null);
    c.load5.push(p?.load5 ?? null);
    c.load15.push(p?.load15 ?? null);
    c.throttled.push(p?.throttled != null ? p.throttled * 100 : null);
    c.underVoltage.push(p?.underVoltage != null ? p.underVoltage * 100 : null);
  };
  for (const p of points) {
    if (prev !== null && p.ts - prev > gapMs) push(prev + 1, null);
    push(p.ts, p);
    prev = p.ts;
  }
  return c;
}

/** The 15 min … 30 d buttons (also on the fleet overview). */
export function RangeSelector({ value, onChange }: { value: TelemetryRange; onChange: (r: TelemetryRange) => void }) {
  return (
    <div
      role="group"
      aria-label="Time range"
      data-testid="telemetry-range"
      className="inline-flex rounded-md border border-input bg-card p-0.5"
    >
      {(Object.keys(TELEMETRY_RANGES) as TelemetryRange[]).map((r) => (
        <button
          key={r}
          type="button"
          data-range={r}
          aria-pressed={r === value}
          onClick={() => onChange(r)}
          className={cn(
            "h-7 cursor-pointer rounded px-2.5 text-xs font-medium whitespace-nowrap transition-colors tabular-nums",
            "focus-visible:ring-2 focus-visible:ring-ring focus-visible:outline-none",
            r === value ? "bg-primary text-primary-foreground" : "text-muted-foreground hover:bg-muted hover:text-foreground",
          )}
        >
          {RANGE_LABELS[r]}
        </button>
      ))}
    </div>
  );
}

export function TelemetryCharts({ deviceId }: { deviceId: string }) {
  const [range, setRange] = useState<TelemetryRange>("1h");
  const { points, newest, source, bucketMs, rangeMs, isPending, isFetching, error } = useTelemetryRange(deviceId, range);
  // Rollup buckets are bucketMs apart; a missing bucket or two is a gap.
  const gapMs = source === "raw" ? GAP_MS : Math.max(GAP_MS, bucketMs * 2.5);
  const c = useMemo(() => toColumns(points, gapMs), [points, gapMs]);
  const last = useMemo(() => (newest ? pointFromSample(newest) : (points.at(-1) ?? null)), [newest, points]);

  const charts = useMemo(() => {
    const has = (col: (number | null)[]) => col.some((v) => v !== null);
    const series = (label: string, color: string, values: (number | null)[], extra: Partial<ChartSeries> = {}): ChartSeries => ({
      label,
      color,
      values,
      ...extra,
    });
    return {
      cpu: [series("CPU", COLORS.green, c.cpu, { fill: true })],
      temp: [series("SoC", COLORS.amber, c.temp)],
      memory: [
        series("Used", COLORS.blue, c.memUsed, { fill: true }),
        ...(has(c.swapUsed) ? [series("Swap used", COLORS.violet, c.swapUsed)] : []),
        series("Total", COLORS.slate, c.memTotal, { dash: [4, 4] }),
      ],
      rss: [series("Runner RSS", COLORS.violet, c.rss, { fill: true })],
      tps:
        source === "rollup"
          ? [series("Average", COLORS.rose, c.tps, { fill: true }), series("Peak", COLORS.slate, c.tpsMax, { dash: [4, 4] })]
          : [series("Decode", COLORS.rose, c.tps, { fill: true })],
      prefill: [series("Prompt feed", COLORS.blue, c.prefill, { fill: true })],
      freq:
        source === "rollup"
          ? [series("Average", COLORS.green, c.freq), series("Lowest", COLORS.amber, c.freqMin, { dash: [4, 4] })]
          : [series("ARM clock", COLORS.green, c.freq)],
      power:
        source === "rollup"
          ? [series("Average", COLORS.amber, c.power, { fill: true }), series("Peak", COLORS.slate, c.powerMax, { dash: [4, 4] })]
          : [series("Board", COLORS.amber, c.power, { fill: true })],
      disk: [series("Free", COLORS.blue, c.diskFree, { fill: true })],
      load: [series("1 min", COLORS.green, c.load1), series("5 min", COLORS.blue, c.load5), series("15 min", COLORS.slate, c.load15)],
      hasPrefill: has(c.prefill),
      hasFreq: has(c.freq),
      hasPower: has(c.power),
      hasDisk: has(c.diskFree),
      hasCpu: has(c.cpu),
      hasTemp: has(c.temp),
      hasRss: has(c.rss),
      hasTps: has(c.tps),
      throttle: [series("Throttled", COLORS.amber, c.throttled, { fill: true }), series("Under-voltage", COLORS.rose, c.underVoltage)],
      hasThrottle: has(c.throttled) || has(c.underVoltage),
    };
  }, [c, source]);

  const header = (
    <div className="flex flex-wrap items-center justify-between gap-3">
      <p className="text-sm text-muted-foreground" aria-live="polite">
        {source === "rollup" ? `Averages per ${formatBucket(bucketMs)}` : "Every sample"}
        {isFetching && !isPending ? " · updating…" : ""}
      </p>
      <RangeSelector value={range} onChange={setRange} />
    </div>
  );

  if (isPending) {
    return (
      <div className="flex flex-col gap-3">
        {header}
        <LoadingBlock label="Loading telemetry…" />
      </div>
    );
  }
  if (error) {
    return (
      <div className="flex flex-col gap-3">
        {header}
        <Alert>{errorMessage(error)}</Alert>
      </div>
    );
  }
  if (points.length === 0) {
    return (
      <div className="flex flex-col gap-3">
        {header}
        <Alert tone="info">
          No telemetry in {RANGE_TITLES[range]}. Charts fill in as soon as the device reports (every few seconds while its agent runs).
        </Alert>
      </div>
    );
  }

  const memTotal = last?.memTotalBytes ?? 0;
  const during = RANGE_TITLES[range];
  return (
    <div className="flex flex-col gap-3">
      {header}
      <div className="grid gap-4 md:grid-cols-2" data-testid="telemetry-charts" data-range={range} data-source={source}>
        <TelemetryChart
          title={`${DECODE_SPEED.label} (${TOKEN_RATE_UNIT})`}
          help={DECODE_SPEED.help}
          icon={Zap}
          testId="chart-tokens"
          current={last?.tokensPerSecond != null ? formatTokS(last.tokensPerSecond) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.tps}
          format={(v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1))}
          formatValue={formatTokS}
          yRange={fromZero(1)}
          unavailable={charts.hasTps ? undefined : `Nothing was generated in ${during}.`}
        />
        <TelemetryChart
          title="Prompt feed tokens/s"
          icon={Timer}
          testId="chart-prefill"
          current={last?.prefillTokensPerSecond != null ? formatTokS(last.prefillTokensPerSecond) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.prefill}
          format={(v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1))}
          formatValue={formatTokS}
          yRange={fromZero(1)}
          unavailable={charts.hasPrefill ? undefined : `No prompt was fed in ${during}.`}
        />
        <TelemetryChart
          title="SoC temperature"
          icon={Thermometer}
          testId="chart-temp"
          current={last?.socTempC != null ? formatTemp(last.socTempC) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.temp}
          format={(v) => `${Math.round(v)} °C`}
          formatValue={formatTemp}
          yRange={tempRange}
          unavailable={charts.hasTemp ? undefined : "Not available on this device (no thermal zone)."}
        />
        <TelemetryChart
          title="Throttling"
          icon={TriangleAlert}
          testId="chart-throttle"
          current={last?.throttled != null ? (last.throttled > 0 ? "Throttled" : last.underVoltage ? "Under-voltage" : "None") : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.throttle}
          format={(v) => `${Math.round(v)}%`}
          formatValue={(v) => `${Math.round(v)}% of samples`}
          yRange={percentRange}
          unavailable={charts.hasThrottle ? undefined : "Not available on this device (no vcgencmd)."}
        />
        <TelemetryChart
          title="CPU clock"
          icon={Gauge}
          testId="chart-clock"
          current={last?.cpuFreqHz != null ? formatMhz(last.cpuFreqHz / 1e6) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.freq}
          format={(v) => `${(v / 1000).toFixed(1)} GHz`}
          formatValue={formatMhz}
          yRange={fromZero(1000)}
          unavailable={charts.hasFreq ? undefined : "Not available on this device (no vcgencmd)."}
        />
        <TelemetryChart
          title="Board power"
          icon={Plug}
          testId="chart-power"
          current={last?.boardPowerW != null ? formatWatts(last.boardPowerW) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.power}
          format={(v) => `${v.toFixed(v >= 10 ? 0 : 1)} W`}
          formatValue={formatWatts}
          yRange={fromZero(5)}
          unavailable={charts.hasPower ? undefined : "Not available on this device (board power needs a Raspberry Pi 5's PMIC)."}
        />
        <TelemetryChart
          title="CPU"
          icon={Cpu}
          testId="chart-cpu"
          current={last?.cpuPercent != null ? formatPercent(last.cpuPercent) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.cpu}
          format={(v) => `${Math.round(v)}%`}
          formatValue={formatPercent}
          yRange={percentRange}
          unavailable={charts.hasCpu ? undefined : "CPU usage is not available on this device."}
        />
        <TelemetryChart
          title="Memory used"
          icon={MemoryStick}
          testId="chart-memory"
          current={
            last?.memUsedBytes != null && last.memTotalBytes != null
              ? `${formatBytes(last.memUsedBytes)} / ${formatBytes(last.memTotalBytes)}`
              : null
          }
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.memory}
          format={bytes}
          formatValue={(v) => formatBytes(v)}
          incrs={BYTE_INCRS}
          yRange={(_min, max) => [0, Math.max(memTotal, max ?? 0) * 1.05]}
        />
        <TelemetryChart
          title="Runner RSS"
          icon={Gauge}
          testId="chart-rss"
          current={last?.runnerRssBytes != null ? formatBytes(last.runnerRssBytes) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.rss}
          format={bytes}
          formatValue={(v) => formatBytes(v)}
          incrs={BYTE_INCRS}
          yRange={fromZero(64 * MiB)}
          unavailable={charts.hasRss ? undefined : `No runner process was measured in ${during}.`}
        />
        <TelemetryChart
          title="Load average"
          icon={Activity}
          testId="chart-load"
          current={
            last?.load1 != null && last.load5 != null && last.load15 != null
              ? `${formatLoad(last.load1)} · ${formatLoad(last.load5)} · ${formatLoad(last.load15)}`
              : null
          }
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.load}
          format={(v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1))}
          formatValue={formatLoad}
          yRange={fromZero(1)}
        />
        <TelemetryChart
          title="Disk free"
          icon={HardDrive}
          testId="chart-disk"
          current={last?.diskFreeBytes != null ? formatBytes(last.diskFreeBytes) : "—"}
          xs={c.xs}
          windowMs={rangeMs}
          series={charts.disk}
          format={bytes}
          formatValue={(v) => formatBytes(v)}
          incrs={BYTE_INCRS}
          yRange={(_min, max) => [0, Math.max(last?.diskTotalBytes ?? 0, max ?? 0) * 1.05]}
          unavailable={charts.hasDisk ? undefined : "Disk space is not available on this device."}
        />
      </div>
    </div>
  );
}

const formatMhz = (mhz: number) => (mhz >= 1000 ? `${(mhz / 1000).toFixed(2)} GHz` : `${Math.round(mhz)} MHz`);
const formatWatts = (w: number) => `${w.toFixed(2)} W`;

function formatBucket(ms: number): string {
  const min = Math.round(ms / 60_000);
  if (min === 1) return "minute";
  return min < 60 ? `${min} minutes` : min === 60 ? "hour" : `${min / 60} hours`;
}
