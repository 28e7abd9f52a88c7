"use client";
/**
 * Keeps rollouts in the react-query cache current while a rollouts page (or a device
 * page) is open: each `rollout:changed` replaces the rollout (rollouts.get) and its
 * row of the list, and the device page's "which rollout installed this model" is
 * asked again; a reconnect refetches what was missed.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useOnReconnect, useSocketEvent } from "@/lib/realtime";
import { useTRPC } from "@/lib/trpc";

export function useRolloutsSync(): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();

  useSocketEvent("rollout:changed", (rollout) => {
    queryClient.setQueryData(trpc.rollouts.get.queryKey({ id: rollout.id }), rollout);
    const { devices: _devices, ...summary } = rollout;
    queryClient.setQueryData(trpc.rollouts.list.queryKey(), (rows) => {
      if (!rows) return rows; // not loaded yet: the fetch will include it
      return rows.some((r) => r.id === rollout.id) ? rows.map((r) => (r.id === rollout.id ? summary : r)) : [summary, ...rows];
    });
    void queryClient.invalidateQueries({ queryKey: trpc.rollouts.ofDevice.pathKey() });
  });

  useOnReconnect(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.rollouts.pathKey() });
  });
}
