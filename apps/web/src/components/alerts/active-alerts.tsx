"use client";
/** Alerts open now, newest first: kind, device (linked), what fired it and since when. */
import { CircleCheck } from "lucide-react";
import Link from "next/link";
import type { AlertDto } from "@orchard/contracts";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useNow } from "@/lib/use-now";
import { AlertKindBadge } from "./alert-kind";

export function ActiveAlertList({ alerts, showDevice = true }: { alerts: AlertDto[]; showDevice?: boolean }) {
  const now = useNow();
  return (
    <ul className="divide-y border-t" data-testid="active-alerts">
      {alerts.map((a) => (
        <li
          key={a.id}
          className="flex flex-col gap-1.5 px-5 py-3 text-sm sm:flex-row sm:items-center sm:gap-3"
          data-testid="active-alert"
          data-kind={a.kind}
          data-device-id={a.deviceId}
        >
          <div className="flex shrink-0 items-center gap-2">
            <AlertKindBadge kind={a.kind} />
            {showDevice ? (
              <Link href={`/devices/${encodeURIComponent(a.deviceId)}`} className="font-medium break-all hover:underline">
                {a.deviceName}
              </Link>
            ) : null}
          </div>
          <p className="min-w-0 flex-1 break-words text-muted-foreground">{a.message}</p>
          <time className="shrink-0 text-xs whitespace-nowrap text-muted-foreground" title={formatDateTime(a.startedAt)}>
            {now === 0 ? `since ${formatDateTime(a.startedAt)}` : `started ${formatRelative(a.startedAt, Math.max(now, a.startedAt))}`}
          </time>
        </li>
      ))}
    </ul>
  );
}

export function NoActiveAlerts({ children }: { children: string }) {
  return (
    <p className="flex items-center gap-2 border-t px-5 py-4 text-sm text-muted-foreground" data-testid="no-active-alerts">
      <CircleCheck className="size-4 text-success" aria-hidden />
      {children}
    </p>
  );
}
