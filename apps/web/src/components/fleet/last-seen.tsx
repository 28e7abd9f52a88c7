"use client";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useNow } from "@/lib/use-now";

/** "12s ago", ticking every second; the exact time in the tooltip. */
export function LastSeen({ ts }: { ts: number | null }) {
  const now = useNow();
  if (ts === null)
    return (
      <span className="text-muted-foreground" title="The device has not connected since it enrolled">
        never
      </span>
    );
  return (
    <time dateTime={new Date(ts).toISOString()} title={formatDateTime(ts)} className="tabular-nums whitespace-nowrap">
      {now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts))}
    </time>
  );
}
