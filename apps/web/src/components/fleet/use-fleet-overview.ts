"use client";
/**
 * The fleet overview's data: fleet.overview for the chosen range (fleet tokens/s per
 * bucket from the rollups, the per-device sparklines, the totals when read), fetched
 * again every minute, plus the `fleet:totals` pushed every 2 s: the newest totals for
 * the cards, and live points appended to the chart after the history ends.
 */
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import type { FleetTotals } from "@orchard/contracts";
import type { TelemetryRange } from "@orchard/client";
import { useOnReconnect, useSocketEvent } from "@/lib/realtime";
import { useTRPC } from "@/lib/trpc";

/** History and sparklines gain a minute each minute. */
const REFRESH_MS = 60_000;
/** Live totals kept for the chart: an hour at one every 2 s. */
const LIVE_KEEP = 1800;

export interface FleetChartPoint {
  ts: number;
  tokensPerSecond: number;
  /** Devices reporting in the bucket (history) or online (live). */
  devices: number;
}

export function useFleetOverview(range: TelemetryRange) {
  const trpc = useTRPC();
  const overview = useQuery(
    trpc.fleet.overview.queryOptions(
      { range },
      { refetchInterval: REFRESH_MS, staleTime: REFRESH_MS / 2, refetchOnWindowFocus: false, placeholderData: (prev) => prev },
    ),
  );
  const [live, setLive] = useState<FleetTotals[]>([]);
  useSocketEvent("fleet:totals", (totals) => {
    setLive((prev) => (prev.length >= LIVE_KEEP ? [...prev.slice(prev.length - LIVE_KEEP + 1), totals] : [...prev, totals]));
  });
  const { refetch } = overview;
  useOnReconnect(() => void refetch());

  const data = overview.data;
  // The newest of what the overview returned and what was pushed since.
  const newestLive = live.at(-1);
  const totals = !data ? (newestLive ?? null) : newestLive && newestLive.ts > data.totals.ts ? newestLive : data.totals;

  // Placeholder data from another range is shown while the new one loads, without live points.
  const current = data && data.range === range ? data : undefined;
  const points = useMemo((): FleetChartPoint[] => {
    if (!data) return [];
    const history = data.points.map((p) => ({ ts: p.ts, tokensPerSecond: p.tokensPerSecond, devices: p.devicesReporting }));
    if (!current) return history;
    const after = live.filter((t) => t.ts > current.toMs);
    return history.concat(after.map((t) => ({ ts: t.ts, tokensPerSecond: t.tokensPerSecond, devices: t.devicesOnline })));
  }, [data, current, live]);

  return {
    totals,
    points,
    bucketMs: data?.bucketMs ?? 60_000,
    sparklines: data?.sparklines,
    isPending: overview.isPending,
    isFetching: overview.isFetching,
    error: overview.error,
  };
}
