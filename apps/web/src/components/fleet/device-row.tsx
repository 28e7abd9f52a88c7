"use client";
/** One device in the fleet table (a card on small screens). Values from an offline device are dimmed: they are its last report. */
import Link from "next/link";
import { memo } from "react";
import { DECODE_SPEED, GENERATING_NOW, TOKEN_RATE_UNIT, type DeviceSummary } from "@orchard/contracts";
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

/** "Generating now" (docs/metrics.md, Token rates): an online device that has reported has one; 0 while idle. */
export function tokensNow(device: DeviceSummary): number | null {
  return device.online ? device.generatingTokensPerSecond : null;
}

/** Sticky columns on a wide screen (the table scrolls sideways under them): the device's name and its Chat button. */
export const STICKY_NAME = "lg:sticky lg:left-0 lg:z-[1] lg:bg-card lg:shadow-[inset_-1px_0_0_var(--color-border)]";
export const STICKY_ACTIONS = "lg:sticky lg:right-0 lg:z-[1] lg:bg-card lg:shadow-[inset_1px_0_0_var(--color-border)]";

function sparklineLabel(values: readonly (number | null)[]): string {
  const v = values.filter((x): x is number => x !== null);
  if (v.length === 0) return "Nothing generated in the last 30 minutes";
  const avg = v.reduce((a, b) => a + b, 0) / v.length;
  return `${GENERATING_NOW.label} per minute over the last 30 minutes: average ${formatTokS(avg)}, lowest ${formatTokS(Math.min(...v))}, highest ${formatTokS(Math.max(...v))}`;
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
  const decode = device.online ? (device.telemetry?.tokensPerSecond ?? null) : null;
  return (
    <span className="inline-flex items-center gap-2">
      <span className="flex w-[4.75rem] flex-col text-right whitespace-nowrap lg:text-left">
        <span
          className={cn("tabular-nums", now === 0 && "text-muted-foreground")}
          data-testid="device-tokens"
          data-value={now ?? undefined}
          title={`${GENERATING_NOW.label}: ${GENERATING_NOW.help}`}
        >
          {now !== null ? formatTokS(now) : device.online ? <NotAvailable reason="no telemetry yet" /> : <NotAvailable reason="offline" />}
        </span>
        {decode !== null ? (
          <span
            className="text-[11px] text-muted-foreground tabular-nums"
            data-testid="device-decode"
            data-value={decode}
            title={`${DECODE_SPEED.label}: ${DECODE_SPEED.help}`}
          >
            decode {formatTokS(decode).replace(` ${TOKEN_RATE_UNIT}`, "")}
          </span>
        ) : null}
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
      <TableCell className={cn("mb-1 border-b pb-2 lg:mb-0 lg:border-0 lg:pb-2.5", STICKY_NAME)}>
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
      <TableCell label={`${GENERATING_NOW.label} (${TOKEN_RATE_UNIT})`}>
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
      <TableCell className={cn("mt-1 border-t pt-2 lg:mt-0 lg:border-0 lg:pt-2.5 lg:text-right", STICKY_ACTIONS)}>
        <ChatButton device={device} testId="device-chat" className="max-lg:w-full" />
      </TableCell>
    </TableRow>
  );
});
