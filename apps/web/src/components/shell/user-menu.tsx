"use client";
/** The signed-in user and sign-out (ends the session on the server, closes the live link, goes to /login). */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { LogOut, UserRound } from "lucide-react";
import { Button } from "@/components/ui/button";
import { closeRealtime } from "@/lib/realtime";
import { markSigningOut, useTRPC } from "@/lib/trpc";

export function UserMenu() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const me = useQuery(trpc.auth.me.queryOptions(undefined, { staleTime: Infinity }));
  const logout = useMutation(
    trpc.auth.logout.mutationOptions({
      onMutate: markSigningOut,
      onSettled: () => {
        // Signed out either way: an error here means the session was already gone.
        closeRealtime();
        queryClient.clear();
        window.location.assign("/login");
      },
    }),
  );

  return (
    <div className="flex items-center gap-1">
      {me.data ? (
        <span
          className="hidden items-center gap-1.5 text-sm text-muted-foreground sm:inline-flex"
          data-testid="current-user"
          title={`Signed in as ${me.data.username}`}
        >
          <UserRound className="size-4" aria-hidden />
          {me.data.username}
        </span>
      ) : null}
      <Button variant="ghost" size="sm" onClick={() => logout.mutate()} disabled={logout.isPending} data-testid="sign-out" title="Sign out">
        <LogOut aria-hidden />
        <span className="hidden sm:inline">Sign out</span>
      </Button>
    </div>
  );
}
