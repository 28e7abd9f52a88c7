"use client";
/**
 * Alerts in the react-query cache, kept current by socket.io: each "alert:changed"
 * adds an opened alert to alerts.active or drops a cleared one at once, and the
 * history queries (alerts.list) are refetched shortly after (coalesced: a broker
 * restart may open hundreds of alerts at once). A reconnect refetches everything.
 */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useRef } from "react";
import type { AlertDto } from "@orchard/contracts";
import { useOnReconnect, useSocketEvent } from "@/lib/realtime";
import { useTRPC } from "@/lib/trpc";

const HISTORY_REFRESH_MS = 500;

const newestFirst = (a: AlertDto, b: AlertDto) => b.startedAt - a.startedAt || b.id.localeCompare(a.id);

/** Mounted once, in the shell. */
export function useAlertsSync(): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useSocketEvent("alert:changed", (alert) => {
    queryClient.setQueryData(trpc.alerts.active.queryKey(), (rows) => {
      if (!rows) return rows; // not loaded yet: the fetch will include it
      const others = rows.filter((r) => r.id !== alert.id);
      return alert.clearedAt === null ? [...others, alert].sort(newestFirst) : others;
    });
    timer.current ??= setTimeout(() => {
      timer.current = null;
      void queryClient.invalidateQueries({ queryKey: trpc.alerts.list.pathKey() });
    }, HISTORY_REFRESH_MS);
  });

  useOnReconnect(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.alerts.pathKey() });
  });
}

/** Every open alert (one cache for the nav badge, the alerts page and the device page). */
export function useActiveAlerts() {
  const trpc = useTRPC();
  return useQuery(trpc.alerts.active.queryOptions());
}
