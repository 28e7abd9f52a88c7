"use client";
/** The fleet at a glance: devices online, generating now (whole fleet), generations held, active alerts (a link to them). */
import { Activity, BellRing, Server, Zap, type LucideIcon } from "lucide-react";
import Link from "next/link";
import type { ReactNode } from "react";
import { GENERATING_NOW, type FleetTotals } from "@orchard/contracts";
import { Card } from "@/components/ui/card";
import { cn } from "@/lib/cn";
import { formatTokS } from "@/lib/format";

function StatCard({
  icon: Icon,
  title,
  help,
  testId,
  value,
  children,
  className,
}: {
  icon: LucideIcon;
  title: string;
  help: string;
  testId: string;
  /** The raw number (tests and scripts read it); absent until the first totals arrive. */
  value: number | undefined;
  children: ReactNode;
  className?: string;
}) {
  return (
    <Card className={cn("flex flex-col gap-1 px-4 py-3.5", className)} data-testid={testId} data-value={value} title={help}>
      <h2 className="flex items-center gap-1.5 text-xs font-medium text-muted-foreground">
        <Icon className="size-3.5" aria-hidden />
        {title}
      </h2>
      <div className="text-2xl font-semibold tracking-tight tabular-nums">{children}</div>
    </Card>
  );
}

export function OverviewCards({ totals }: { totals: FleetTotals | null }) {
  const alerts = totals?.alertsActive ?? 0;
  return (
    <div className="grid grid-cols-2 gap-3 lg:grid-cols-4" aria-live="off">
      <StatCard
        icon={Server}
        title="Devices online"
        help="Devices online now, of all enrolled devices."
        testId="overview-devices"
        value={totals?.devicesOnline}
      >
        {totals ? (
          <>
            <span data-testid="overview-online" className="text-success">
              {totals.devicesOnline}
            </span>
            <span className="text-base font-normal text-muted-foreground">
              {" / "}
              <span data-testid="overview-total">{totals.devicesTotal}</span>
            </span>
          </>
        ) : (
          "—"
        )}
      </StatCard>
      <StatCard
        icon={Zap}
        title={GENERATING_NOW.fleetLabel!}
        help={`${GENERATING_NOW.help} It is the sum of the table's "${GENERATING_NOW.label}" column.`}
        testId="overview-tokens"
        value={totals?.tokensPerSecond}
      >
        {totals ? formatTokS(totals.tokensPerSecond) : "—"}
      </StatCard>
      <StatCard
        icon={Activity}
        title="Active generations"
        help="Generations the online devices hold now, running or queued."
        testId="overview-generations"
        value={totals?.activeGenerations}
      >
        {totals ? totals.activeGenerations : "—"}
      </StatCard>
      <Link
        href="/alerts"
        className="rounded-xl focus-visible:ring-2 focus-visible:ring-ring focus-visible:outline-none"
        data-testid="overview-alerts-link"
      >
        <StatCard
          icon={BellRing}
          title="Active alerts"
          help="Alerts open now (offline, throttling, under-voltage, temperature, disk, crash loop). Opens the alerts page."
          testId="overview-alerts"
          value={totals?.alertsActive}
          className="h-full transition-colors hover:bg-muted/50"
        >
          <span className={cn(alerts > 0 && "text-danger")}>{totals ? alerts : "—"}</span>
        </StatCard>
      </Link>
    </div>
  );
}
