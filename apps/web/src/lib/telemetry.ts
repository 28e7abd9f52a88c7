"use client";
/**
 * A device's last hour of telemetry: the history from devices.telemetry, then
 * the samples pushed over socket.io while the page is open. After a reconnect
 * the history is fetched again to fill what was missed.
 */
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import type { TelemetrySample } from "@orchard/contracts";
import { useDeviceWatch, useOnReconnect, useSocketEvent } from "./realtime";
import { useTRPC } from "./trpc";

export const TELEMETRY_WINDOW_MS = 3600_000;

/** Sorted by time, one sample per timestamp, nothing older than the window. */
export function mergeSamples(a: readonly TelemetrySample[], b: readonly TelemetrySample[], now = Date.now()): TelemetrySample[] {
  const cutoff = now - TELEMETRY_WINDOW_MS;
  const byTs = new Map<number, TelemetrySample>();
  for (const s of a) if (s.ts >= cutoff) byTs.set(s.ts, s);
  for (const s of b) if (s.ts >= cutoff) byTs.set(s.ts, s);
  return [...byTs.values()].sort((x, y) => x.ts - y.ts);
}

export function useTelemetryWindow(deviceId: string) {
  const trpc = useTRPC();
  const [sinceMs, setSinceMs] = useState(() => Date.now() - TELEMETRY_WINDOW_MS);
  const history = useQuery(
    trpc.devices.telemetry.queryOptions({ id: deviceId, sinceMs }, { staleTime: Infinity, refetchOnWindowFocus: false }),
  );
  const [live, setLive] = useState<TelemetrySample[]>([]);

  useDeviceWatch(deviceId);
  useSocketEvent("device:telemetry", (event) => {
    if (event.deviceId === deviceId) setLive((prev) => mergeSamples(prev, event.samples));
  });
  useOnReconnect(() => setSinceMs(Date.now() - TELEMETRY_WINDOW_MS));

  const samples = useMemo(() => mergeSamples(history.data ?? [], live), [history.data, live]);
  return { samples, isPending: history.isPending, error: history.error };
}
