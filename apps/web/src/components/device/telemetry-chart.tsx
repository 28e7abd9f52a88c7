"use client";
/**
 * One uPlot line chart over a time range. The x axis always spans the range up
 * to now; a gap in the data (device offline) breaks the line instead of
 * bridging it. Charts on a page share a cursor.
 */
import type { LucideIcon } from "lucide-react";
import { useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Card } from "@/components/ui/card";
import { cn } from "@/lib/cn";
import { useColorScheme } from "@/lib/color-scheme";
import { formatDateTime, formatTime } from "@/lib/format";

export interface ChartSeries {
  label: string;
  /** A colour canvas understands (hex). */
  color: string;
  values: (number | null)[];
  fill?: boolean;
  dash?: number[];
}

export type YRange = (dataMin: number | null, dataMax: number | null) => [number, number];

const HEIGHT = 170;
const SYNC_KEY = "device-telemetry";

const THEME = {
  light: { axis: "#6b7280", grid: "rgba(107,114,128,0.14)" },
  dark: { axis: "#9ca3af", grid: "rgba(156,163,175,0.14)" },
} as const;

function withAlpha(hex: string, alpha: number): string {
  const a = Math.round(alpha * 255)
    .toString(16)
    .padStart(2, "0");
  return `${hex}${a}`;
}

export function TelemetryChart({
  title,
  icon: Icon,
  current,
  xs,
  series,
  format,
  formatValue = format,
  yRange,
  incrs,
  unavailable,
  windowMs,
  testId,
  className,
  help,
}: {
  title: string;
  /** What the chart measures, as a tooltip on its title (e.g. the token rates' definitions). */
  help?: string;
  icon: LucideIcon;
  /** The newest value, formatted, for the card header. */
  current: string | null;
  /** Sample times in seconds. */
  xs: number[];
  series: ChartSeries[];
  /** Axis labels. */
  format: (v: number) => string;
  /** Values in the header and legend (more precise than the axis); the axis format by default. */
  formatValue?: (v: number) => string;
  yRange: YRange;
  /** Tick steps to choose from (e.g. powers of two for bytes); uPlot's decimal steps otherwise. */
  incrs?: number[];
  /** Why there is nothing to chart (the device cannot read this value). */
  unavailable?: string;
  /** The x axis spans this long up to now. */
  windowMs: number;
  testId?: string;
  className?: string;
}) {
  const containerRef = useRef<HTMLDivElement>(null);
  const plotRef = useRef<uPlot | null>(null);
  const scheme = useColorScheme();
  /** The sample under the pointer (on this chart or a synced one), null when the pointer is elsewhere. */
  const [cursorIdx, setCursorIdx] = useState<number | null>(null);
  const data = useMemo(() => [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, [xs, series]);
  const formatRef = useRef(format);
  const rangeRef = useRef(yRange);
  const dataRef = useRef(data);
  const windowRef = useRef(windowMs);
  // Runs before the effects below, so a chart built now sees the latest props.
  useEffect(() => {
    formatRef.current = format;
    rangeRef.current = yRange;
    dataRef.current = data;
    windowRef.current = windowMs;
  });
  const seriesKey = series.map((s) => `${s.label}:${s.color}`).join("|");

  useEffect(() => {
    const el = containerRef.current;
    if (!el || unavailable) return;
    const widthOf = () => Math.max(200, Math.floor(el.getBoundingClientRect().width));
    const theme = THEME[scheme];
    const axis: uPlot.Axis = {
      stroke: theme.axis,
      grid: { stroke: theme.grid, width: 1 },
      ticks: { stroke: theme.grid, width: 1, size: 4 },
      font: "11px ui-sans-serif, system-ui, sans-serif",
    };
    const opts: uPlot.Options = {
      width: widthOf(),
      height: HEIGHT,
      padding: [8, 8, 0, 0],
      cursor: { sync: { key: SYNC_KEY }, drag: { x: false, y: false }, points: { size: 6 } },
      legend: { show: false },
      hooks: { setCursor: [(u) => setCursorIdx(u.cursor.idx ?? null)] },
      scales: {
        x: {
          time: true,
          range: () => {
            const now = Date.now() / 1000;
            return [now - windowRef.current / 1000, now];
          },
        },
        y: { range: (_u, min, max) => rangeRef.current(min, max) },
      },
      axes: [
        { ...axis, space: 60 },
        { ...axis, size: 58, incrs, values: (_u, splits) => splits.map((v) => formatRef.current(v)) },
      ],
      series: [
        {},
        ...series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          fill: s.fill ? withAlpha(s.color, 0.12) : undefined,
          dash: s.dash,
          points: { show: false },
        })),
      ],
    };
    const plot = new uPlot(opts, dataRef.current, el);
    plotRef.current = plot;
    const resize = new ResizeObserver(() => plot.setSize({ width: widthOf(), height: HEIGHT }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
      plotRef.current = null;
    };
    // The series' shape and the colour scheme define the chart; data changes are applied below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [seriesKey, scheme, unavailable]);

  useEffect(() => {
    plotRef.current?.setData(data);
  }, [data, windowMs]);

  const hovering = cursorIdx !== null && cursorIdx < xs.length;
  const idx = hovering ? cursorIdx : xs.length - 1;
  const valueAt = (values: (number | null)[]) => {
    const v = idx >= 0 ? values[idx] : null;
    return v === null || v === undefined ? "—" : formatValue(v);
  };
  const single = series.length === 1 ? series[0] : undefined;
  // Hovering: the single series' value there, or (several series) just the time, their values being in the legend.
  const headline = unavailable ? "—" : hovering ? (single ? valueAt(single.values) : "") : (current ?? "");

  return (
    <Card className={cn("min-w-0", className)} data-testid={testId}>
      <div className="flex items-baseline justify-between gap-3 px-4 pt-3.5 pb-1">
        <h3 className="flex items-center gap-1.5 text-sm font-medium" title={help}>
          <Icon className="size-4 text-muted-foreground" aria-hidden />
          {title}
        </h3>
        <span className="flex items-baseline gap-2">
          {hovering ? (
            <span className="text-xs text-muted-foreground tabular-nums">
              {windowMs > 86_400_000 ? formatDateTime(xs[idx]! * 1000) : formatTime(xs[idx]! * 1000)}
            </span>
          ) : null}
          <span className="text-sm font-semibold tabular-nums">{headline}</span>
        </span>
      </div>
      {unavailable ? (
        <div className="flex items-center justify-center px-4 text-center text-sm text-muted-foreground" style={{ height: HEIGHT }}>
          {unavailable}
        </div>
      ) : (
        <div className="px-2 pb-2">
          <div ref={containerRef} className="w-full" />
          {single ? null : (
            <ul className="flex flex-wrap gap-x-4 gap-y-1 px-2 pt-1 text-xs text-muted-foreground">
              {series.map((s) => (
                <li key={s.label} className="inline-flex items-center gap-1.5">
                  <span
                    aria-hidden
                    className="inline-block h-0.5 w-3 rounded-full"
                    style={{ background: s.dash ? `repeating-linear-gradient(90deg, ${s.color} 0 3px, transparent 3px 5px)` : s.color }}
                  />
                  {s.label}
                  <span className="font-medium text-foreground tabular-nums">{valueAt(s.values)}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </Card>
  );
}
