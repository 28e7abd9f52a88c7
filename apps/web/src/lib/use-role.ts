"use client";
/**
 * The signed-in user's role, for hiding what it cannot do. The server is the authority
 * (it refuses with 403 whatever the dashboard shows); this only keeps a viewer from
 * meeting buttons that would fail.
 */
import { useQuery } from "@tanstack/react-query";
import { roleAtLeast, type Role } from "@orchard/client";
import { useTRPC } from "./trpc";

/** The signed-in user (username, role), once known. */
export function useMe() {
  const trpc = useTRPC();
  return useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: Infinity }));
}

/** Whether the signed-in user has at least `min`; false while unknown. */
export function useCan(min: Role): boolean {
  const role = useMe().data?.role;
  return role !== undefined && roleAtLeast(role, min);
}
