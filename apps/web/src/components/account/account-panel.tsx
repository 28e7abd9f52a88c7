"use client";
/** The Account page: your own password and your own sessions (any role; an admin sees only their own here). */
import { useQueryClient } from "@tanstack/react-query";
import { ChangePasswordCard } from "@/components/users/change-password-card";
import { useTRPC } from "@/lib/trpc";
import { useMe } from "@/lib/use-role";
import { SessionList } from "./session-list";

export function AccountPanel() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const me = useMe();
  return (
    <div className="flex flex-col gap-5">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">Account</h1>
        <p className="text-sm text-muted-foreground" data-testid="account-who">
          {me.data ? (
            <>
              Signed in as <span className="font-medium text-foreground">{me.data.username}</span> ({me.data.role}).
            </>
          ) : (
            "Your password and where you are signed in."
          )}
        </p>
      </div>
      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,2fr)_minmax(0,3fr)]">
        <ChangePasswordCard onChanged={() => void queryClient.invalidateQueries({ queryKey: trpc.account.sessions.queryKey() })} />
        <SessionList />
      </div>
    </div>
  );
}
