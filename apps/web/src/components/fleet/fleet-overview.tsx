"use client";
/**
 * The fleet page: counts, the live-link warning, the overview (cards with the live
 * totals, fleet tokens/s over time) and the table with a sparkline per device (or
 * how to enroll the first device).
 */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Plus, Server } from "lucide-react";
import Link from "next/link";
import type { DeviceSummary } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { buttonClass } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { useLinkState } from "@/lib/realtime";
import type { TelemetryRange } from "@orchard/client";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";
import { throttleIssuesNow } from "./throttle-badge";
import { FleetTable } from "./fleet-table";
import { FleetThroughputChart } from "./fleet-throughput-chart";
import { OverviewCards } from "./overview-cards";
import { useFleetOverview } from "./use-fleet-overview";

export function FleetOverview() {
  const trpc = useTRPC();
  const devices = useQuery(trpc.devices.list.queryOptions());
  const link = useLinkState();
  const [range, setRange] = useState<TelemetryRange>("1h");
  const overview = useFleetOverview(range);
  const hasDevices = (devices.data?.length ?? 0) > 0;
  // Enrolling is for admins (the server refuses the others anyway).
  const canEnroll = useCan("admin");

  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Fleet</h1>
          {devices.data ? <FleetCounts devices={devices.data} /> : <p className="text-sm text-muted-foreground">Your devices, live.</p>}
        </div>
        {canEnroll ? (
          <Link href="/enroll" className={buttonClass("outline")}>
            <Plus aria-hidden />
            Enroll a device
          </Link>
        ) : null}
      </div>

      {link === "reconnecting" ? (
        <Alert tone="warning">Live updates paused: the connection to the server dropped. Reconnecting… (rows may be out of date)</Alert>
      ) : null}

      {hasDevices ? (
        <>
          <OverviewCards totals={overview.totals} />
          <FleetThroughputChart
            range={range}
            onRangeChange={setRange}
            points={overview.points}
            bucketMs={overview.bucketMs}
            isPending={overview.isPending}
            isFetching={overview.isFetching}
            error={overview.error}
          />
        </>
      ) : null}

      {/* On a phone the rows are cards themselves: no frame around them. */}
      <Card
        className={devices.data?.length ? "max-lg:border-0 max-lg:bg-transparent max-lg:shadow-none lg:overflow-hidden" : "overflow-hidden"}
      >
        {devices.isPending ? (
          <LoadingBlock label="Loading devices…" />
        ) : devices.isError ? (
          <div className="p-5">
            <Alert>{errorMessage(devices.error)}</Alert>
          </div>
        ) : devices.data.length === 0 ? (
          <EmptyState
            icon={Server}
            title="No devices yet"
            action={
              canEnroll ? (
                <Link href="/enroll" className={buttonClass("primary")}>
                  <Plus aria-hidden />
                  Enroll your first device
                </Link>
              ) : null
            }
          >
            Install the agent on a Raspberry Pi, then create an enrollment token on the Enroll page and run the command it shows. The Pi
            appears here as soon as it connects.
          </EmptyState>
        ) : (
          <FleetTable devices={devices.data} sparklines={overview.sparklines} />
        )}
      </Card>
    </div>
  );
}

function FleetCounts({ devices }: { devices: DeviceSummary[] }) {
  const online = devices.filter((d) => d.online).length;
  const attention = devices.filter(
    (d) => d.online && (d.runner?.state === "crash_loop" || throttleIssuesNow(d.telemetry?.throttle)),
  ).length;
  return (
    <p className="text-sm text-muted-foreground">
      <span data-testid="fleet-count-total" className="font-medium text-foreground tabular-nums">
        {devices.length}
      </span>{" "}
      {devices.length === 1 ? "device" : "devices"} ·{" "}
      <span data-testid="fleet-count-online" className="font-medium text-success tabular-nums">
        {online}
      </span>{" "}
      online
      {attention > 0 ? (
        <>
          {" "}
          ·{" "}
          <span className="font-medium text-danger">
            {attention} {attention === 1 ? "needs" : "need"} attention
          </span>
        </>
      ) : null}
    </p>
  );
}
