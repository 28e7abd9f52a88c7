"use client";
/**
 * Keeps benchmark runs in the react-query cache current while a benchmarks page is
 * open: each `bench:changed` replaces the run (bench.get) and its row of the runs
 * list, comparisons are fetched again, and a reconnect refetches what was missed.
 */
import { useQueryClient } from "@tanstack/react-query";
import { summarizeRun } from "@orchard/client";
import { useOnReconnect, useSocketEvent } from "./realtime";
import { useTRPC } from "./trpc";

export function useBenchSync(): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();

  useSocketEvent("bench:changed", (run) => {
    queryClient.setQueryData(trpc.bench.get.queryKey({ id: run.id }), run);
    queryClient.setQueryData(trpc.bench.list.queryKey(), (rows) => {
      if (!rows) return rows; // not loaded yet: the fetch will include it
      const known = rows.find((r) => r.id === run.id);
      const summary = summarizeRun(run);
      // The server's finish time, once the list has it, beats the one derived from the devices.
      const row = { ...summary, finishedAt: known?.finishedAt ?? summary.finishedAt };
      return known ? rows.map((r) => (r.id === run.id ? row : r)) : [row, ...rows];
    });
    void queryClient.invalidateQueries({ queryKey: trpc.bench.compare.pathKey() });
  });

  useOnReconnect(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.bench.pathKey() });
  });
}
