"use client";
/** The alerts page: what needs attention now, then the history; optionally of one device (?device=ID). */
import { useQuery } from "@tanstack/react-query";
import { BellRing, History } from "lucide-react";
import Link from "next/link";
import { useEffect } from "react";
import { Alert } from "@/components/ui/alert";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { LoadingBlock } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { ActiveAlertList, NoActiveAlerts } from "./active-alerts";
import { AlertHistory } from "./alert-history";
import { useActiveAlerts } from "./use-alerts";

export function AlertsPanel({ deviceId }: { deviceId?: string }) {
  const trpc = useTRPC();
  const active = useActiveAlerts();
  const device = useQuery({ ...trpc.devices.get.queryOptions({ id: deviceId ?? "" }), enabled: deviceId !== undefined });
  const shown = deviceId === undefined ? active.data : active.data?.filter((a) => a.deviceId === deviceId);
  const count = shown?.length ?? 0;

  useEffect(() => {
    document.title = `${count > 0 ? `(${count}) ` : ""}Alerts · Orchard`;
  }, [count]);

  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-col gap-1">
        <h1 className="text-2xl font-semibold tracking-tight">Alerts</h1>
        {deviceId === undefined ? (
          <p className="text-sm text-muted-foreground">
            A device offline, throttled or under-voltage, too hot, low on disk, or with a crash-looping runner. Each alert clears by itself
            once the condition has been gone for a while.
          </p>
        ) : (
          <p className="text-sm text-muted-foreground" data-testid="alerts-device-filter">
            Alerts of{" "}
            <Link href={`/devices/${encodeURIComponent(deviceId)}`} className="font-medium text-foreground hover:underline">
              {device.data?.name ?? deviceId}
            </Link>{" "}
            ·{" "}
            <Link href="/alerts" className="hover:underline">
              show every device
            </Link>
          </p>
        )}
      </div>

      <Card>
        <CardHeader>
          <CardTitle className="flex items-center gap-2">
            <BellRing className="size-4 text-muted-foreground" aria-hidden />
            Active
            {shown ? <span className="text-sm font-normal text-muted-foreground">({count})</span> : null}
          </CardTitle>
        </CardHeader>
        {active.isPending ? (
          <LoadingBlock label="Loading alerts…" />
        ) : active.isError ? (
          <div className="px-5 pb-5">
            <Alert>{errorMessage(active.error)}</Alert>
          </div>
        ) : count === 0 ? (
          <NoActiveAlerts>Nothing needs attention.</NoActiveAlerts>
        ) : (
          <ActiveAlertList alerts={shown ?? []} showDevice={deviceId === undefined} />
        )}
      </Card>

      <Card>
        <CardHeader>
          <CardTitle className="flex items-center gap-2">
            <History className="size-4 text-muted-foreground" aria-hidden />
            History
          </CardTitle>
          <CardDescription>Every alert, newest first, with when it started and cleared.</CardDescription>
        </CardHeader>
        <AlertHistory deviceId={deviceId} />
      </Card>
    </div>
  );
}
