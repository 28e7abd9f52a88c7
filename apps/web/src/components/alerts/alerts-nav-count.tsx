"use client";
/** The number of open alerts, next to "Alerts" in the navigation; nothing when there are none. */
import { useActiveAlerts } from "./use-alerts";

export function AlertsNavCount() {
  const active = useActiveAlerts();
  const count = active.data?.length ?? 0;
  if (count === 0) return null;
  return (
    <span
      className="inline-flex h-4.5 min-w-4.5 items-center justify-center rounded-full bg-danger px-1 text-[0.6875rem] leading-none font-semibold text-white tabular-nums"
      data-testid="nav-alerts-count"
      aria-label={`${count} active ${count === 1 ? "alert" : "alerts"}`}
    >
      {count > 99 ? "99+" : count}
    </span>
  );
}
