"use client";
/**
 * A rollout's devices: each one's state, a progress bar over the bytes it downloaded
 * (full once its files are in), rate and time left while downloading, which try it
 * is on, and why it failed. Canaries are marked; devices offline say that they wait.
 */
import { Undo2 } from "lucide-react";
import Link from "next/link";
import type { RolloutCounts, RolloutDeviceDto, RolloutDto } from "@orchard/contracts";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { cn } from "@/lib/cn";
import { formatByteRate, formatBytes, formatDuration } from "@/lib/format";
import { DeviceRolloutStateBadge } from "./rollout-badges";

export function RolloutCountsText({ counts }: { counts: RolloutCounts }) {
  const parts: { text: string; className?: string }[] = [{ text: `${counts.active}/${counts.total} active` }];
  if (counts.inFlight > 0) parts.push({ text: `${counts.inFlight} working` });
  if (counts.waiting > 0) parts.push({ text: `${counts.waiting} waiting` });
  if (counts.failed > 0) parts.push({ text: `${counts.failed} failed`, className: "text-danger" });
  if (counts.rolledBack > 0) parts.push({ text: `${counts.rolledBack} rolled back`, className: "text-warning" });
  if (counts.aborted > 0) parts.push({ text: `${counts.aborted} aborted` });
  return (
    <span className="tabular-nums" data-testid="rollout-counts">
      {parts.map((p, i) => (
        <span key={p.text} className={p.className}>
          {i > 0 ? " · " : ""}
          {p.text}
        </span>
      ))}
    </span>
  );
}

const DONE_BYTES_STATES = new Set(["verifying", "staged", "activating", "health_check", "active"]);

function progressOf(d: RolloutDeviceDto): number {
  if (DONE_BYTES_STATES.has(d.state)) return 100;
  if (d.bytesTotal <= 0) return 0;
  return Math.min(100, (d.bytesDone / d.bytesTotal) * 100);
}

/** "12.0 MiB of 64.0 MiB · 8.0 MiB/s · 7 s left" while downloading; what it waits for otherwise. */
function detailOf(d: RolloutDeviceDto, rollout: Pick<RolloutDto, "state">): string {
  if (d.state === "downloading") {
    const parts = [`${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)}`];
    if (d.rateBps !== null) parts.push(formatByteRate(d.rateBps));
    if (d.etaSeconds !== null) parts.push(`${formatDuration(d.etaSeconds * 1000)} left`);
    return parts.join(" · ");
  }
  if (d.state === "pending" && !d.sent) return rollout.state === "paused" ? "waits: the rollout is paused" : "waits for its turn";
  if (d.state === "pending" && !d.online) return "offline: gets the rollout when it connects";
  if (d.state === "pending") return "sent; not started yet";
  if (d.state === "failed" || d.state === "rolled_back" || d.state === "aborted") return "";
  return formatBytes(d.bytesTotal);
}

export function RolloutDevices({
  rollout,
  onRollback,
}: {
  rollout: RolloutDto;
  /** Offered for devices that run the rollout's model; absent: no button. */
  onRollback?: (device: RolloutDeviceDto) => void;
}) {
  return (
    <ul className="flex flex-col divide-y" aria-label="Devices">
      {rollout.devices.map((d) => {
        const pct = progressOf(d);
        const detail = detailOf(d, rollout);
        const failed = d.state === "failed" || (d.state === "rolled_back" && d.error?.code !== "rolled_back");
        const maxTries = rollout.strategy.retries + 1;
        return (
          <li
            key={d.deviceId}
            className="flex flex-col gap-1.5 py-2.5 first:pt-0 last:pb-0"
            data-testid="rollout-device"
            data-device-id={d.deviceId}
            data-state={d.state}
          >
            <div className="flex flex-wrap items-center gap-x-3 gap-y-1">
              <span className="flex min-w-0 items-center gap-1.5">
                <span
                  className={cn("size-2 shrink-0 rounded-full", d.online ? "bg-success" : "bg-muted-foreground/40")}
                  title={d.online ? "online" : "offline"}
                  aria-label={d.online ? "online" : "offline"}
                />
                <Link href={`/devices/${encodeURIComponent(d.deviceId)}`} className="truncate text-sm font-medium hover:underline">
                  {d.deviceName}
                </Link>
              </span>
              {d.canary ? (
                <Badge tone="outline" title="Goes first, alone: the other devices wait until every canary runs the model.">
                  canary
                </Badge>
              ) : null}
              <DeviceRolloutStateBadge state={d.state} sent={d.sent} />
              {d.attempt > 1 ? (
                <span className="text-xs text-muted-foreground tabular-nums" data-testid="rollout-device-attempt">
                  try {d.attempt} of {maxTries}
                </span>
              ) : null}
              {d.willRetry ? <Badge tone="warning">will retry</Badge> : null}
              <span className="ml-auto text-xs text-muted-foreground tabular-nums" data-testid="rollout-device-detail">
                {detail}
              </span>
              {onRollback && (d.state === "active" || d.state === "health_check") ? (
                <Button variant="ghost" size="sm" onClick={() => onRollback(d)} data-testid="rollout-device-rollback">
                  <Undo2 aria-hidden />
                  Roll back
                </Button>
              ) : null}
            </div>
            <div
              role="progressbar"
              aria-label={`${d.deviceName}: downloaded`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(pct)}
              className="h-1.5 w-full overflow-hidden rounded-full bg-muted"
              data-testid="rollout-device-bar"
            >
              <div
                className={cn(
                  "h-full rounded-full transition-[width] duration-500",
                  failed
                    ? "bg-danger"
                    : d.state === "active"
                      ? "bg-success"
                      : d.state === "rolled_back" || d.state === "aborted"
                        ? "bg-muted-foreground/50"
                        : "bg-primary",
                )}
                style={{ width: `${pct}%` }}
              />
            </div>
            {d.error ? (
              <p
                className={cn("text-xs break-words", failed && !d.willRetry ? "text-danger" : "text-muted-foreground")}
                data-testid="rollout-device-error"
                data-code={d.error.code}
              >
                {failed || d.state === "rolled_back" || d.state === "aborted" ? null : "Previous try: "}
                {d.error.message}
                <span className="font-mono"> ({d.error.code})</span>
                {d.acknowledged ? " · acknowledged when the rollout was resumed" : null}
              </p>
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}
