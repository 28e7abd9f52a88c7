"use client";
/** The device page: header with actions, runner and current readings, live charts, recent events. */
import { useQuery } from "@tanstack/react-query";
import { ArrowLeft, Trash2 } from "lucide-react";
import Link from "next/link";
import { useEffect, useRef, useState } from "react";
import { DeviceAlerts } from "@/components/alerts/device-alerts";
import { DeviceStatusBadge } from "@/components/fleet/device-status-badge";
import { Alert } from "@/components/ui/alert";
import { buttonClass } from "@/components/ui/button";
import { Card, CardContent } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { useLinkState, useSocketEvent } from "@/lib/realtime";
import { errorCode, errorMessage, useTRPC } from "@/lib/trpc";
import { DeviceActions } from "./device-actions";
import { DeviceEvents } from "./device-events";
import { CurrentReadings, DeviceIdentity, RunnerCard } from "./device-info";
import { ModelCard } from "./device-model";
import { DeviceTags } from "./device-tags";
import { TelemetryCharts } from "./telemetry-charts";

function BackToFleet() {
  return (
    <Link href="/" className="inline-flex items-center gap-1 text-sm text-muted-foreground hover:text-foreground">
      <ArrowLeft className="size-4" aria-hidden />
      Fleet
    </Link>
  );
}

export function DeviceDetail({ id }: { id: string }) {
  const trpc = useTRPC();
  const device = useQuery(trpc.devices.get.queryOptions({ id }));
  const link = useLinkState();
  const [removed, setRemoved] = useState(false);
  const deletingHere = useRef(false);

  useSocketEvent("fleet:removed", ({ deviceId }) => {
    if (deviceId === id && !deletingHere.current) setRemoved(true);
  });

  const name = device.data?.name;
  useEffect(() => {
    if (name) document.title = `${name} · Orchard`;
  }, [name]);

  if (removed || (device.isError && errorCode(device.error) === "NOT_FOUND")) {
    return (
      <div className="flex flex-col gap-4">
        <BackToFleet />
        <Card data-testid="device-removed">
          <EmptyState
            icon={Trash2}
            title={removed ? "This device was removed" : "No such device"}
            action={
              <Link href="/" className={buttonClass("outline")}>
                Back to the fleet
              </Link>
            }
          >
            {removed
              ? "It was deleted from the fleet (possibly from another browser or the CLI). Its history is gone; to bring the Pi back, enroll it again."
              : `There is no device with id ${id}. It may have been deleted.`}
          </EmptyState>
        </Card>
      </div>
    );
  }
  if (device.isPending) return <LoadingBlock label="Loading device…" />;
  if (device.isError) {
    return (
      <div className="flex flex-col gap-4">
        <BackToFleet />
        <Alert>{errorMessage(device.error)}</Alert>
      </div>
    );
  }

  const d = device.data;
  return (
    <div className="flex flex-col gap-5">
      <BackToFleet />
      <Card>
        <CardContent className="flex flex-col gap-5 pt-5">
          <div className="flex flex-col justify-between gap-4 sm:flex-row sm:items-start">
            <div className="flex min-w-0 flex-col gap-1">
              <div className="flex flex-wrap items-center gap-2">
                <h1 className="text-2xl font-semibold tracking-tight break-all" data-testid="device-title">
                  {d.name}
                </h1>
                <DeviceStatusBadge online={d.online} testId="device-page-status" />
              </div>
              {d.hostname && d.hostname !== d.name ? <p className="text-sm text-muted-foreground">{d.hostname}</p> : null}
            </div>
            <DeviceActions device={d} onDeleting={() => (deletingHere.current = true)} />
          </div>
          <DeviceIdentity device={d} />
          <DeviceTags device={d} />
        </CardContent>
      </Card>

      {link === "reconnecting" ? <Alert tone="warning">Live updates paused: reconnecting to the server…</Alert> : null}

      <div className="grid items-start gap-5 lg:grid-cols-2">
        <RunnerCard device={d} />
        <CurrentReadings device={d} />
        <ModelCard device={d} />
      </div>

      <DeviceAlerts deviceId={id} />

      <section className="flex flex-col gap-3" aria-labelledby="charts-title">
        <h2 id="charts-title" className="text-base font-semibold">
          Telemetry
        </h2>
        <TelemetryCharts deviceId={id} />
      </section>

      <DeviceEvents deviceId={id} />
    </div>
  );
}
