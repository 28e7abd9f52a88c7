"use client";
/** The device page's alerts: what is open on this device now, and its latest cleared ones. */
import { useQuery } from "@tanstack/react-query";
import { Bell } from "lucide-react";
import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { Card, CardHeader, CardTitle } from "@/components/ui/card";
import { formatDateTime, formatDuration, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { ActiveAlertList, NoActiveAlerts } from "./active-alerts";
import { AlertKindBadge } from "./alert-kind";
import { useActiveAlerts } from "./use-alerts";

const RECENT = 5;

export function DeviceAlerts({ deviceId }: { deviceId: string }) {
  const trpc = useTRPC();
  const active = useActiveAlerts();
  const recent = useQuery(trpc.alerts.list.queryOptions({ deviceId, limit: RECENT + 10 }));
  const now = useNow();
  const open = active.data?.filter((a) => a.deviceId === deviceId) ?? [];
  const cleared = recent.data?.items.filter((a) => a.clearedAt !== null).slice(0, RECENT) ?? [];
  const error = active.error ?? recent.error;

  return (
    <Card data-testid="device-alerts">
      <CardHeader>
        <div className="flex items-center justify-between gap-3">
          <CardTitle className="flex items-center gap-2">
            <Bell className="size-4 text-muted-foreground" aria-hidden />
            Alerts
          </CardTitle>
          <Link
            href={`/alerts?device=${encodeURIComponent(deviceId)}`}
            className="text-sm text-muted-foreground hover:text-foreground"
            data-testid="device-alerts-history"
          >
            History
          </Link>
        </div>
      </CardHeader>
      {error ? (
        <div className="px-5 pb-5">
          <Alert>{errorMessage(error)}</Alert>
        </div>
      ) : active.isPending ? null : open.length === 0 ? (
        <NoActiveAlerts>No active alerts on this device.</NoActiveAlerts>
      ) : (
        <ActiveAlertList alerts={open} showDevice={false} />
      )}
      {cleared.length > 0 ? (
        <ul className="divide-y border-t" aria-label="Recently cleared alerts">
          {cleared.map((a) => (
            <li
              key={a.id}
              className="flex flex-wrap items-center gap-2 px-5 py-2 text-xs text-muted-foreground"
              data-testid="cleared-alert"
            >
              <AlertKindBadge kind={a.kind} active={false} />
              <span title={formatDateTime(a.startedAt)}>
                {now === 0 ? formatDateTime(a.startedAt) : formatRelative(a.startedAt, Math.max(now, a.startedAt))}
              </span>
              <span>· lasted {formatDuration(a.clearedAt! - a.startedAt)}</span>
            </li>
          ))}
        </ul>
      ) : null}
    </Card>
  );
}
