"use client";
/**
 * A run's results as bar charts, one bar per device that reported results: decode and
 * prompt-feed tok/s (each with its own scale: prompt feed is usually ten times faster),
 * and energy per token where the device could read its board power (a Pi 5's PMIC).
 * A bar is the mean over the device's prompts of the same per-prompt values as the
 * results table below (which is the chart's table fallback). Plain SVG, no library:
 * each chart has a title, a description and an axis labelled with its unit.
 */
import { useId } from "react";
import type { BenchRunDto } from "@orchard/contracts";
import { cn } from "@/lib/cn";

export interface BenchBar {
  deviceId: string;
  device: string;
  value: number;
  /** Prompts the mean is over. */
  prompts: number;
}

type Metric = "decodeTokS" | "prefillTokS" | "energyJPerToken";

/** Per device with results: the mean of one per-prompt metric (devices whose prompts all lack it are left out). */
export function benchBars(run: BenchRunDto, metric: Metric): BenchBar[] {
  return run.devices.flatMap((d) => {
    const values = (d.result?.prompts ?? []).map((p) => p[metric]).filter((v): v is number => v !== null);
    if (values.length === 0) return [];
    return [
      { deviceId: d.deviceId, device: d.deviceName, value: values.reduce((a, b) => a + b, 0) / values.length, prompts: values.length },
    ];
  });
}

/** 0, and 3–5 round steps up to at least max. */
function ticks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const rough = max / 4;
  const pow = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= rough) ?? rough;
  const out: number[] = [];
  for (let v = 0; v < max + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  if (out.at(-1)! < max) out.push(Number((out.at(-1)! + step).toPrecision(12)));
  return out;
}

const ROW = 34;
const TOP = 4;
const AXIS = 40;

export function BarChart({
  title,
  unit,
  description,
  bars,
  digits,
  metric,
  color,
}: {
  title: string;
  unit: string;
  description: string;
  bars: BenchBar[];
  /** Decimals of the value labels (the table's). */
  digits: number;
  metric: Metric;
  color: string;
}) {
  const id = useId();
  const scale = ticks(Math.max(0, ...bars.map((b) => b.value)));
  const top = scale.at(-1)!;
  // Bars use at most 82% of the width, so the value label after the longest one fits.
  const pct = (v: number) => (top > 0 ? (v / top) * 82 : 0);
  const height = TOP + bars.length * ROW + AXIS;
  return (
    <figure className="flex min-w-0 flex-col gap-1" data-testid="bench-chart" data-metric={metric} data-bars={bars.length}>
      <figcaption className="text-sm font-medium">
        {title} <span className="font-normal text-muted-foreground">({unit})</span>
      </figcaption>
      <svg role="img" aria-labelledby={`${id}-t ${id}-d`} width="100%" height={height} className="overflow-visible text-foreground">
        <title id={`${id}-t`}>{`${title} (${unit}) per device`}</title>
        <desc id={`${id}-d`}>{`${description} ${bars.map((b) => `${b.device}: ${b.value.toFixed(digits)} ${unit}`).join("; ")}.`}</desc>
        {scale.map((t) => (
          <g key={t}>
            <line
              x1={`${pct(t)}%`}
              x2={`${pct(t)}%`}
              y1={TOP}
              y2={TOP + bars.length * ROW}
              className="stroke-border"
              strokeDasharray={t === 0 ? undefined : "2 3"}
            />
            <text
              x={`${pct(t)}%`}
              y={TOP + bars.length * ROW + 14}
              textAnchor={t === 0 ? "start" : "middle"}
              className="fill-muted-foreground text-[10px] tabular-nums"
            >
              {t}
            </text>
          </g>
        ))}
        <text x="0" y={height - 4} className="fill-muted-foreground text-[11px]">
          {`${title}, ${unit} →`}
        </text>
        {bars.map((b, i) => {
          const y = TOP + i * ROW;
          return (
            <g key={b.deviceId} data-testid="bench-chart-bar" data-device-id={b.deviceId} data-value={b.value}>
              <text x="0" y={y + 11} className="fill-foreground text-[11px]">
                {b.device}
              </text>
              <rect x="0" y={y + 15} width={`${Math.max(pct(b.value), 0.4)}%`} height={12} rx={2} fill={color}>
                <title>{`${b.device}: ${b.value.toFixed(digits)} ${unit}, mean of ${b.prompts} ${b.prompts === 1 ? "prompt" : "prompts"}`}</title>
              </rect>
              <text
                x={`${Math.max(pct(b.value), 0.4)}%`}
                dx={4}
                y={y + 25}
                className="fill-foreground text-[11px] tabular-nums"
                data-testid="bench-chart-value"
              >
                {b.value.toFixed(digits)}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}

export function BenchChart({ run }: { run: BenchRunDto }) {
  const decode = benchBars(run, "decodeTokS");
  const prefill = benchBars(run, "prefillTokS");
  const energy = benchBars(run, "energyJPerToken");
  if (decode.length === 0) return null;
  return (
    <div className={cn("grid gap-6", energy.length > 0 ? "lg:grid-cols-3" : "md:grid-cols-2")} data-testid="bench-charts">
      <BarChart
        title="Decode"
        unit="tok/s"
        description="Generated tokens after the first ÷ decode time, mean over the device's prompts."
        bars={decode}
        digits={2}
        metric="decodeTokS"
        color="#f43f5e"
      />
      {prefill.length > 0 ? (
        <BarChart
          title="Prompt feed"
          unit="tok/s"
          description="Prompt tokens fed ÷ prefill time, mean over the device's prompts."
          bars={prefill}
          digits={2}
          metric="prefillTokS"
          color="#3b82f6"
        />
      ) : null}
      {energy.length > 0 ? (
        <BarChart
          title="Energy per token"
          unit="J/token"
          description="Mean board power × time ÷ generated tokens (Pi 5 PMIC), mean over the device's prompts."
          bars={energy}
          digits={3}
          metric="energyJPerToken"
          color="#10b981"
        />
      ) : (
        <p className="self-center text-sm text-muted-foreground md:col-span-2 lg:col-span-1" data-testid="bench-chart-no-energy">
          Energy per token: not measured on these devices (it needs board power, readable on a Raspberry Pi 5).
        </p>
      )}
    </div>
  );
}
