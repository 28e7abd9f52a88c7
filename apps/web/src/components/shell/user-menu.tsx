"use client";
/**
 * The signed-in user and their role (a link to the Account page: password, sessions), and sign-out (ends the session on
 * the server, closes the live link, goes to /login).
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { LogOut, UserRound } from "lucide-react";
import Link from "next/link";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { closeRealtime } from "@/lib/realtime";
import { markSigningOut, useTRPC } from "@/lib/trpc";
import { useMe } from "@/lib/use-role";

export function UserMenu() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const me = useMe();
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
        <Link
          href="/account"
          className="inline-flex items-center gap-1.5 rounded-md px-2 py-1 text-sm text-muted-foreground hover:bg-muted hover:text-foreground"
          data-testid="nav-account"
          title={`Signed in as ${me.data.username} (${me.data.role}): your account, password and sessions`}
        >
          <UserRound className="size-4" aria-hidden />
          <span className="hidden sm:inline" data-testid="current-user">
            {me.data.username}
          </span>
          <Badge tone="outline" className="hidden sm:inline-flex" data-testid="current-role">
            {me.data.role}
          </Badge>
          <span className="sr-only sm:hidden">Account</span>
        </Link>
      ) : null}
      <Button variant="ghost" size="sm" onClick={() => logout.mutate()} disabled={logout.isPending} data-testid="sign-out" title="Sign out">
        <LogOut aria-hidden />
        <span className="hidden sm:inline">Sign out</span>
      </Button>
    </div>
  );
}
