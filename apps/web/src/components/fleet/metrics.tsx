/** One telemetry value each, formatted; null → "—" with the reason. */
import type { TelemetrySample } from "@orchard/contracts";
import { cn } from "@/lib/cn";
import { formatBytes, formatPercent, formatTemp } from "@/lib/format";
import { NotAvailable } from "./not-available";

/** The Pi 5 starts throttling at 80 °C (hard limit 85 °C). */
const TEMP_WARN_C = 70;
const TEMP_HOT_C = 80;

export function CpuValue({ percent }: { percent: number | null | undefined }) {
  if (percent === null || percent === undefined) return <NotAvailable />;
  return <span className="tabular-nums">{formatPercent(percent)}</span>;
}

export function TempValue({ celsius }: { celsius: number | null | undefined }) {
  if (celsius === null || celsius === undefined) return <NotAvailable reason="not available on this device (no thermal zone)" />;
  return (
    <span
      className={cn(
        "tabular-nums",
        celsius >= TEMP_HOT_C ? "font-medium text-danger" : celsius >= TEMP_WARN_C ? "text-warning" : undefined,
      )}
      title={celsius >= TEMP_HOT_C ? "Hot: the SoC throttles at 80 °C" : undefined}
    >
      {formatTemp(celsius)}
    </span>
  );
}

/** used / total, with a thin bar. */
export function MemoryValue({ sample }: { sample: TelemetrySample | null | undefined }) {
  if (!sample || sample.memTotalBytes === 0) return <NotAvailable reason="no telemetry yet" />;
  const used = sample.memTotalBytes - sample.memAvailableBytes;
  const ratio = Math.min(1, Math.max(0, used / sample.memTotalBytes));
  return (
    <span className="inline-flex flex-col items-end gap-1 lg:items-start" title={`${formatPercent(ratio * 100)} used`}>
      <span className="tabular-nums whitespace-nowrap">
        {formatBytes(used)} <span className="text-muted-foreground">/ {formatBytes(sample.memTotalBytes)}</span>
      </span>
      <span className="h-1 w-20 overflow-hidden rounded-full bg-muted" aria-hidden>
        <span
          className={cn("block h-full rounded-full", ratio > 0.9 ? "bg-danger" : ratio > 0.75 ? "bg-warning" : "bg-primary")}
          style={{ width: `${ratio * 100}%` }}
        />
      </span>
    </span>
  );
}

export function DiskFreeValue({ sample }: { sample: TelemetrySample | null | undefined }) {
  if (!sample || sample.diskFreeBytes === null) return <NotAvailable />;
  const low = sample.diskTotalBytes ? sample.diskFreeBytes / sample.diskTotalBytes < 0.1 : false;
  return (
    <span
      className={cn("tabular-nums whitespace-nowrap", low && "text-warning")}
      title={
        sample.diskTotalBytes
          ? `${formatBytes(sample.diskFreeBytes)} free of ${formatBytes(sample.diskTotalBytes)} (agent data directory)`
          : undefined
      }
    >
      {formatBytes(sample.diskFreeBytes)}
    </span>
  );
}
