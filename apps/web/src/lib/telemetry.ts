"use client";
/**
 * A device's telemetry over a chosen range (15 min to 30 days) from
 * devices.telemetrySeries. Short ranges come from raw samples, and the samples pushed
 * over socket.io while the page is open are merged in; long ranges come from
 * per-minute rollups and are fetched again every minute. After a reconnect the
 * history is fetched again to fill what was missed.
 */
import { useQuery } from "@tanstack/react-query";
import { useEffect, useMemo, useState } from "react";
import type { TelemetrySample } from "@orchard/contracts";
import { useDeviceWatch, useOnReconnect, useSocketEvent } from "./realtime";
import { useTRPC } from "./trpc";
import { pointFromSample, RAW_MAX_RANGE_MS, TELEMETRY_RANGES, type TelemetryPoint, type TelemetryRange } from "@orchard/client";

export { TELEMETRY_RANGES, type TelemetryPoint, type TelemetryRange } from "@orchard/client";

/** Live samples are kept this long (the longest range that merges them). */
const LIVE_KEEP_MS = RAW_MAX_RANGE_MS;
/** Long ranges are fetched again this often (the rollups gain a minute each minute). */
const ROLLUP_REFRESH_MS = 60_000;

/** Sorted by time, one entry per timestamp (the later list wins), nothing older than windowMs. */
export function mergeByTs<T extends { ts: number }>(a: readonly T[], b: readonly T[], windowMs: number, now = Date.now()): T[] {
  const cutoff = now - windowMs;
  const byTs = new Map<number, T>();
  for (const s of a) if (s.ts >= cutoff) byTs.set(s.ts, s);
  for (const s of b) if (s.ts >= cutoff) byTs.set(s.ts, s);
  return [...byTs.values()].sort((x, y) => x.ts - y.ts);
}

export function useTelemetryRange(deviceId: string, range: TelemetryRange) {
  const trpc = useTRPC();
  const rangeMs = TELEMETRY_RANGES[range];
  const short = rangeMs <= RAW_MAX_RANGE_MS;
  const history = useQuery(
    trpc.devices.telemetrySeries.queryOptions(
      { id: deviceId, rangeMs },
      {
        // Short ranges stay current through live samples; long ones are refetched.
        staleTime: short ? Infinity : ROLLUP_REFRESH_MS / 2,
        refetchInterval: short ? false : ROLLUP_REFRESH_MS,
        refetchOnWindowFocus: false,
        placeholderData: (prev) => prev,
      },
    ),
  );
  const [live, setLive] = useState<TelemetrySample[]>([]);

  useDeviceWatch(deviceId);
  useSocketEvent("device:telemetry", (event) => {
    if (event.deviceId === deviceId) setLive((prev) => mergeByTs(prev, event.samples, LIVE_KEEP_MS));
  });
  const { refetch } = history;
  useOnReconnect(() => void refetch());
  // Keep the x axis moving for long ranges between refreshes.
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), short ? 5_000 : ROLLUP_REFRESH_MS);
    return () => clearInterval(t);
  }, [short]);

  const data = history.data;
  // Placeholder data from another range is shown while the new one loads, but not merged with live samples.
  const current = data && data.toMs - data.fromMs === rangeMs ? data : undefined;
  const points = useMemo((): TelemetryPoint[] => {
    if (!data) return [];
    if (current?.source !== "raw") return data.points;
    return mergeByTs(current.points, live.map(pointFromSample), rangeMs, Math.max(now, live.at(-1)?.ts ?? 0));
  }, [data, current, live, rangeMs, now]);
  const newest = live.at(-1) ?? null;

  return {
    points,
    /** The newest live sample (for the card headers), if one arrived while the page is open. */
    newest,
    source: data?.source ?? (short ? "raw" : "rollup"),
    bucketMs: data?.bucketMs ?? 0,
    rangeMs,
    isPending: history.isPending,
    isFetching: history.isFetching,
    error: history.error,
  };
}
