"use client";
/** One device in the fleet table (a card on small screens). Values from an offline device are dimmed: they are its last report. */
import Link from "next/link";
import type { DeviceSummary } from "@orchard/contracts";
import { ChatButton } from "@/components/chat/chat-button";
import { TableCell, TableRow } from "@/components/ui/table";
import { cn } from "@/lib/cn";
import { DeviceStatusBadge } from "./device-status-badge";
import { LastSeen } from "./last-seen";
import { CpuValue, DiskFreeValue, MemoryValue, TempValue } from "./metrics";
import { NotAvailable } from "./not-available";
import { ModelName, RunnerSummary } from "./runner-status";
import { ThrottleBadge } from "./throttle-badge";

export function DeviceRow({ device }: { device: DeviceSummary }) {
  const t = device.telemetry;
  const stale = !device.online;
  const staleTitle = stale ? "Last reported value (the device is offline)" : undefined;
  const dim = cn(stale && "opacity-55");

  return (
    <TableRow data-testid="device-row" data-device-id={device.id} data-online={device.online}>
      <TableCell className="mb-1 border-b pb-2 lg:mb-0 lg:border-0 lg:pb-2.5">
        <Link
          href={`/devices/${encodeURIComponent(device.id)}`}
          data-testid="device-name"
          className="font-medium text-foreground underline-offset-4 hover:text-primary hover:underline"
        >
          {device.name}
        </Link>
        <div className="max-w-52 truncate text-xs text-muted-foreground" title={device.hostname ?? undefined}>
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
}
