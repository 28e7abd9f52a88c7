/**
 * A tiny inline SVG line for a table cell: one path, no library, cheap enough for
 * every visible row. Null values break the line; an isolated value is a dot.
 */
import { memo } from "react";
import { cn } from "@/lib/cn";

const PAD = 1.5;

/** The SVG path for `values` in a width × height box scaled to [0, max]. */
export function sparklinePath(values: readonly (number | null)[], width: number, height: number, max: number): string {
  const n = values.length;
  if (n === 0 || max <= 0) return "";
  const step = n > 1 ? (width - 2 * PAD) / (n - 1) : 0;
  const y = (v: number) => (height - PAD - (Math.min(v, max) / max) * (height - 2 * PAD)).toFixed(1);
  let d = "";
  let drawing = false;
  values.forEach((v, i) => {
    if (v === null) {
      drawing = false;
      return;
    }
    const x = (PAD + i * step).toFixed(1);
    const nextIsValue = i + 1 < n && values[i + 1] !== null;
    if (!drawing) {
      // An isolated value: a zero-length segment, drawn as a dot by the round line cap.
      d += nextIsValue ? `M${x} ${y(v)}` : `M${x} ${y(v)}h0.01`;
      drawing = true;
    } else {
      d += `L${x} ${y(v)}`;
    }
  });
  return d;
}

export const Sparkline = memo(function Sparkline({
  values,
  max,
  label,
  width = 72,
  height = 22,
  className,
}: {
  values: readonly (number | null)[];
  /** The top of the scale (shared by every row, so lines compare across devices). */
  max: number;
  /** What the line shows, for screen readers and the tooltip. */
  label: string;
  width?: number;
  height?: number;
  className?: string;
}) {
  const points = values.reduce<number>((n, v) => (v === null ? n : n + 1), 0);
  return (
    <svg
      role="img"
      aria-label={label}
      data-testid="sparkline"
      data-points={points}
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      className={cn("shrink-0 overflow-visible text-rose-500", className)}
    >
      <title>{label}</title>
      <line x1={0} x2={width} y1={height - 0.5} y2={height - 0.5} className="stroke-border" strokeWidth={1} />
      <path
        d={sparklinePath(values, width, height, max)}
        fill="none"
        stroke="currentColor"
        strokeWidth={1.5}
        strokeLinecap="round"
        strokeLinejoin="round"
      />
    </svg>
  );
});
