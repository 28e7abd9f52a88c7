/** Each device's part of a run: its state, a progress bar over the prompts, and why it failed. */
import Link from "next/link";
import type { BenchDeviceRunDto } from "@orchard/contracts";
import { cn } from "@/lib/cn";
import { formatDuration } from "@/lib/format";
import { DeviceRunStateBadge } from "./bench-badges";

export function BenchProgress({ devices }: { devices: BenchDeviceRunDto[] }) {
  return (
    <ul className="flex flex-col divide-y" aria-label="Devices">
      {devices.map((d) => {
        const pct = d.total > 0 ? Math.round((d.completed / d.total) * 100) : 0;
        return (
          <li
            key={d.deviceId}
            className="flex flex-col gap-1.5 py-2.5 first:pt-0 last:pb-0"
            data-testid="bench-device"
            data-device-id={d.deviceId}
            data-state={d.state}
          >
            <div className="flex flex-wrap items-center gap-x-3 gap-y-1">
              <Link href={`/devices/${encodeURIComponent(d.deviceId)}`} className="min-w-0 truncate text-sm font-medium hover:underline">
                {d.deviceName}
              </Link>
              <DeviceRunStateBadge state={d.state} />
              <span className="ml-auto text-xs text-muted-foreground tabular-nums" data-testid="bench-device-count">
                {d.completed}/{d.total} prompts
                {d.startedAt !== null && d.finishedAt !== null ? ` · ${formatDuration(d.finishedAt - d.startedAt)}` : null}
              </span>
            </div>
            <div
              role="progressbar"
              aria-label={`${d.deviceName}: prompts done`}
              aria-valuemin={0}
              aria-valuemax={d.total}
              aria-valuenow={d.completed}
              className="h-1.5 w-full overflow-hidden rounded-full bg-muted"
            >
              <div
                className={cn(
                  "h-full rounded-full transition-[width] duration-500",
                  d.state === "failed" ? "bg-danger" : d.state === "done" ? "bg-success" : "bg-primary",
                )}
                style={{ width: `${d.state === "done" ? 100 : pct}%` }}
              />
            </div>
            {d.state === "failed" && d.error ? (
              <p className="text-xs break-words text-danger" data-testid="bench-device-error">
                {d.error}
              </p>
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}
