"use client";
/** The device page's charts for the last hour: CPU, SoC temperature, memory, runner RSS, load. */
import { Activity, Cpu, Gauge, MemoryStick, Thermometer } from "lucide-react";
import { useMemo } from "react";
import type { TelemetrySample } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { LoadingBlock } from "@/components/ui/spinner";
import { formatBytes, formatLoad, formatPercent, formatTemp } from "@/lib/format";
import { errorMessage } from "@/lib/trpc";
import { useTelemetryWindow } from "@/lib/telemetry";
import { TelemetryChart, type ChartSeries, type YRange } from "./telemetry-chart";

/** Samples further apart than this are drawn with a break: the device was not reporting. */
const GAP_MS = 60_000;

const COLORS = { green: "#16a34a", blue: "#3b82f6", amber: "#f59e0b", violet: "#a855f7", slate: "#94a3b8" } as const;

const percentRange: YRange = () => [0, 100];
const tempRange: YRange = (min, max) => [Math.min(30, (min ?? 30) - 5), Math.max(70, (max ?? 70) + 5)];
const fromZero =
  (softMax: number): YRange =>
  (_min, max) => [0, Math.max(softMax, (max ?? 0) * 1.15)];
/** Axis labels for bytes: "512 MB", "2 GB", "1.5 GB". */
const bytes = (v: number) => (v === 0 ? "0" : formatBytes(v, 1).replace(/\.0 /, " "));
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** Power-of-two tick steps, so memory axes read 2 GB, 4 GB, 6 GB rather than 2.3 GB, 4.7 GB. */
const BYTE_INCRS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((n) => n * MiB).concat([1, 2, 4, 8, 16, 32, 64].map((n) => n * GiB));

interface Columns {
  xs: number[];
  cpu: (number | null)[];
  temp: (number | null)[];
  memUsed: (number | null)[];
  memTotal: (number | null)[];
  swapUsed: (number | null)[];
  rss: (number | null)[];
  load1: (number | null)[];
  load5: (number | null)[];
  load15: (number | null)[];
}

/** Turns samples into uPlot's column arrays, inserting a null row where the device went quiet. */
function toColumns(samples: TelemetrySample[]): Columns {
  const c: Columns = { xs: [], cpu: [], temp: [], memUsed: [], memTotal: [], swapUsed: [], rss: [], load1: [], load5: [], load15: [] };
  let prev: number | null = null;
  const push = (ts: number, s: TelemetrySample | null) => {
    c.xs.push(ts / 1000);
    c.cpu.push(s?.cpuPercent ?? null);
    c.temp.push(s?.socTempC ?? null);
    c.memUsed.push(s ? s.memTotalBytes - s.memAvailableBytes : null);
    c.memTotal.push(s ? s.memTotalBytes : null);
    c.swapUsed.push(s && s.swapTotalBytes > 0 ? s.swapUsedBytes : null);
    c.rss.push(s?.runnerRssBytes ?? null);
    c.load1.push(s?.load1 ?? null);
    c.load5.push(s?.load5 ?? null);
    c.load15.push(s?.load15 ?? null);
  };
  for (const s of samples) {
    if (prev !== null && s.ts - prev > GAP_MS) push(prev + 1, null);
    push(s.ts, s);
    prev = s.ts;
  }
  return c;
}

export function TelemetryCharts({ deviceId }: { deviceId: string }) {
  const { samples, isPending, error } = useTelemetryWindow(deviceId);
  const c = useMemo(() => toColumns(samples), [samples]);
  const last = samples.at(-1) ?? null;

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
      load: [series("1 min", COLORS.green, c.load1), series("5 min", COLORS.blue, c.load5), series("15 min", COLORS.slate, c.load15)],
      hasCpu: has(c.cpu),
      hasTemp: has(c.temp),
      hasRss: has(c.rss),
    };
  }, [c]);

  if (isPending) return <LoadingBlock label="Loading telemetry…" />;
  if (error) return <Alert>{errorMessage(error)}</Alert>;
  if (samples.length === 0) {
    return (
      <Alert tone="info">
        No telemetry in the last hour. Charts fill in as soon as the device reports (every few seconds while its agent runs).
      </Alert>
    );
  }

  const memTotal = last?.memTotalBytes ?? 0;
  return (
    <div className="grid gap-4 md:grid-cols-2" data-testid="telemetry-charts">
      <TelemetryChart
        title="CPU"
        icon={Cpu}
        testId="chart-cpu"
        current={last?.cpuPercent != null ? formatPercent(last.cpuPercent) : "—"}
        xs={c.xs}
        series={charts.cpu}
        format={(v) => `${Math.round(v)}%`}
        formatValue={formatPercent}
        yRange={percentRange}
        unavailable={charts.hasCpu ? undefined : "CPU usage is not available on this device."}
      />
      <TelemetryChart
        title="SoC temperature"
        icon={Thermometer}
        testId="chart-temp"
        current={last?.socTempC != null ? formatTemp(last.socTempC) : "—"}
        xs={c.xs}
        series={charts.temp}
        format={(v) => `${Math.round(v)} °C`}
        formatValue={formatTemp}
        yRange={tempRange}
        unavailable={charts.hasTemp ? undefined : "Not available on this device (no thermal zone)."}
      />
      <TelemetryChart
        title="Memory used"
        icon={MemoryStick}
        testId="chart-memory"
        current={last ? `${formatBytes(last.memTotalBytes - last.memAvailableBytes)} / ${formatBytes(last.memTotalBytes)}` : null}
        xs={c.xs}
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
        series={charts.rss}
        format={bytes}
        formatValue={(v) => formatBytes(v)}
        incrs={BYTE_INCRS}
        yRange={fromZero(64 * MiB)}
        unavailable={charts.hasRss ? undefined : "No runner process was measured in the last hour."}
      />
      <TelemetryChart
        title="Load average"
        icon={Activity}
        testId="chart-load"
        className="md:col-span-2"
        current={last ? `${formatLoad(last.load1)} · ${formatLoad(last.load5)} · ${formatLoad(last.load15)}` : null}
        xs={c.xs}
        series={charts.load}
        format={(v) => (v >= 10 ? v.toFixed(0) : v.toFixed(1))}
        formatValue={formatLoad}
        yRange={fromZero(1)}
      />
    </div>
  );
}
