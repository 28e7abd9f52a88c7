"use client";
/** One device in the fleet table (a card on small screens). Values from an offline device are dimmed: they are its last report. */
import Link from "next/link";
import { memo } from "react";
import type { DeviceSummary } from "@orchard/contracts";
import { ChatButton } from "@/components/chat/chat-button";
import { TableCell, TableRow } from "@/components/ui/table";
import { cn } from "@/lib/cn";
import { formatTokS } from "@/lib/format";
import { DeviceStatusBadge } from "./device-status-badge";
import { LastSeen } from "./last-seen";
import { CpuValue, DiskFreeValue, MemoryValue, TempValue } from "./metrics";
import { NotAvailable } from "./not-available";
import { ModelName, RunnerSummary } from "./runner-status";
import { Sparkline } from "./sparkline";
import { ThrottleBadge } from "./throttle-badge";

/** Decode tokens/s now: only an online device that is generating has one. */
export function tokensNow(device: DeviceSummary): number | null {
  return device.online ? (device.telemetry?.tokensPerSecond ?? null) : null;
}

function sparklineLabel(values: readonly (number | null)[]): string {
  const v = values.filter((x): x is number => x !== null);
  if (v.length === 0) return "Nothing generated in the last 30 minutes";
  const avg = v.reduce((a, b) => a + b, 0) / v.length;
  return `Decode tokens/s per minute over the last 30 minutes: average ${formatTokS(avg)}, lowest ${formatTokS(Math.min(...v))}, highest ${formatTokS(Math.max(...v))}`;
}

function TokensCell({
  device,
  sparkline,
  sparkMax,
}: {
  device: DeviceSummary;
  sparkline: readonly (number | null)[] | undefined;
  sparkMax: number;
}) {
  const now = tokensNow(device);
  return (
    <span className="inline-flex items-center gap-2">
      <span
        className="w-11 text-right tabular-nums whitespace-nowrap lg:text-left"
        data-testid="device-tokens"
        data-value={now ?? undefined}
      >
        {now !== null ? (
          formatTokS(now).replace(" tok/s", "")
        ) : device.online ? (
          <span className="text-muted-foreground" title="Not generating now">
            idle
          </span>
        ) : (
          <NotAvailable reason="offline" />
        )}
      </span>
      {sparkline ? (
        <Sparkline values={sparkline} max={sparkMax} label={sparklineLabel(sparkline)} width={64} />
      ) : (
        <span aria-hidden className="w-16 max-lg:hidden" />
      )}
    </span>
  );
}

/**
 * `index` is the row's position in the sorted fleet (for aria-rowindex and the windowing, which renders only the
 * rows in view); `sparkline` the device's decode tokens/s per minute over the last 30 minutes.
 */
export const DeviceRow = memo(function DeviceRow({
  device,
  index,
  sparkline,
  sparkMax,
}: {
  device: DeviceSummary;
  index: number;
  sparkline: readonly (number | null)[] | undefined;
  sparkMax: number;
}) {
  const t = device.telemetry;
  const stale = !device.online;
  const staleTitle = stale ? "Last reported value (the device is offline)" : undefined;
  const dim = cn(stale && "opacity-55");

  return (
    <TableRow
      data-testid="device-row"
      data-device-id={device.id}
      data-online={device.online}
      data-virtual-index={index}
      aria-rowindex={index + 2}
      className="lg:h-[57px]"
    >
      <TableCell className="mb-1 border-b pb-2 lg:mb-0 lg:border-0 lg:pb-2.5">
        <Link
          href={`/devices/${encodeURIComponent(device.id)}`}
          data-testid="device-name"
          className="font-medium text-foreground underline-offset-4 hover:text-primary hover:underline"
        >
          {device.name}
        </Link>
        <div className="max-w-52 truncate text-xs text-muted-foreground lg:max-w-full" title={device.hostname ?? undefined}>
          {device.hostname ?? device.id}
          {device.arch ? ` · ${device.arch}` : ""}
        </div>
      </TableCell>
      <TableCell label="Status">
        <DeviceStatusBadge online={device.online} />
      </TableCell>
      <TableCell label="Last seen">
        <LastSeen ts={device.lastSeenAt} />
      </TableCell>
      <TableCell label="Agent" className="whitespace-nowrap">
        {device.agentVersion ? (
          <span className="font-mono text-xs">{device.agentVersion}</span>
        ) : (
          <NotAvailable reason="not reported yet" />
        )}
      </TableCell>
      <TableCell label="Runner" className={dim} title={staleTitle}>
        <RunnerSummary runner={device.runner} />
      </TableCell>
      <TableCell label="Model" className={cn("lg:max-w-48", dim)}>
        <ModelName model={device.activeModel?.name ?? null} runner={device.runner} />
      </TableCell>
      <TableCell label="Tokens/s">
        <TokensCell device={device} sparkline={sparkline} sparkMax={sparkMax} />
      </TableCell>
      <TableCell label="CPU" className={dim} title={staleTitle}>
        <CpuValue percent={t?.cpuPercent} />
      </TableCell>
      <TableCell label="SoC temp" className={cn("whitespace-nowrap", dim)} title={staleTitle}>
        <TempValue celsius={t?.socTempC} />
      </TableCell>
      <TableCell label="Throttling" className={dim}>
        <ThrottleBadge flags={t ? t.throttle : undefined} />
      </TableCell>
      <TableCell label="Memory" className={dim} title={staleTitle}>
        <MemoryValue sample={t} />
      </TableCell>
      <TableCell label="Disk free" className={dim} title={staleTitle}>
        <DiskFreeValue sample={t} />
      </TableCell>
      <TableCell className="mt-1 border-t pt-2 lg:mt-0 lg:border-0 lg:pt-2.5 lg:text-right">
        <ChatButton device={device} testId="device-chat" className="max-lg:w-full" />
      </TableCell>
    </TableRow>
  );
});
