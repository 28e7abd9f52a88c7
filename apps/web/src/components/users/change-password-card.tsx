"use client";
/** Changing your own password (any role): proves the current one; your other sessions end. */
import { useMutation } from "@tanstack/react-query";
import { KeyRound } from "lucide-react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";

export function ChangePasswordCard({ onChanged }: { onChanged?: () => void } = {}) {
  const trpc = useTRPC();
  const [currentPassword, setCurrent] = useState("");
  const [newPassword, setNew] = useState("");
  const change = useMutation(
    trpc.auth.changePassword.mutationOptions({
      onSuccess: () => {
        setCurrent("");
        setNew("");
        onChanged?.();
      },
    }),
  );
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!change.isPending) change.mutate({ currentPassword, newPassword });
  };
  return (
    <Card>
      <CardHeader>
        <CardTitle>Your password</CardTitle>
        <CardDescription>Your other sessions end; this one stays signed in.</CardDescription>
      </CardHeader>
      <CardContent>
        <form onSubmit={submit} className="flex flex-col gap-4" data-testid="change-password-form" noValidate>
          <Field label="Current password" htmlFor="current-password">
            <Input
              id="current-password"
              type="password"
              autoComplete="current-password"
              value={currentPassword}
              onChange={(e) => setCurrent(e.target.value)}
            />
          </Field>
          <Field label="New password" htmlFor="new-password" hint="At least 8 characters.">
            <Input
              id="new-password"
              type="password"
              autoComplete="new-password"
              value={newPassword}
              onChange={(e) => setNew(e.target.value)}
            />
          </Field>
          {change.isError ? <Alert>{errorMessage(change.error)}</Alert> : null}
          {change.isSuccess ? <Alert tone="info">Password changed.</Alert> : null}
          <div>
            <Button type="submit" variant="outline" disabled={!currentPassword || !newPassword || change.isPending}>
              {change.isPending ? <Spinner label="Saving" /> : <KeyRound aria-hidden />}
              Change password
            </Button>
          </div>
        </form>
      </CardContent>
    </Card>
  );
}
