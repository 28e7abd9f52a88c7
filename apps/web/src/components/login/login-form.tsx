"use client";
/** Username + password → session cookie, then back to the page the user asked for (only paths on this site). */
import { useMutation } from "@tanstack/react-query";
import { LogIn, Sprout } from "lucide-react";
import { useSearchParams } from "next/navigation";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";

/** `next` if it is a path on this site ("/devices/x"), else "/": never "//evil.example" or "https://…". */
export function safeNextPath(next: string | null): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return "/";
  if (next.startsWith("/login")) return "/";
  return next;
}

export function LoginForm() {
  const trpc = useTRPC();
  const params = useSearchParams();
  const [username, setUsername] = useState("admin");
  const [password, setPassword] = useState("");
  const login = useMutation(
    trpc.auth.login.mutationOptions({
      // A full navigation, so the next page and its live link start with the new session cookie.
      onSuccess: () => window.location.assign(safeNextPath(params.get("next"))),
    }),
  );

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!login.isPending) login.mutate({ username: username.trim(), password });
  };
  const busy = login.isPending || login.isSuccess;

  return (
    <Card className="w-full max-w-sm">
      <CardHeader className="items-center text-center">
        <span className="mb-2 flex size-10 items-center justify-center rounded-lg bg-primary text-primary-foreground">
          <Sprout className="size-5" aria-hidden />
        </span>
        <CardTitle className="text-lg">Sign in to Orchard</CardTitle>
        <CardDescription>Manage your Raspberry Pi fleet.</CardDescription>
      </CardHeader>
      <CardContent>
        <form onSubmit={submit} className="flex flex-col gap-4" data-testid="login-form" noValidate>
          <Field label="Username" htmlFor="username">
            <Input
              id="username"
              name="username"
              autoComplete="username"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              required
            />
          </Field>
          <Field label="Password" htmlFor="password">
            <Input
              id="password"
              name="password"
              type="password"
              autoComplete="current-password"
              autoFocus
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-invalid={login.isError || undefined}
              required
            />
          </Field>
          {login.isError ? <Alert>{errorMessage(login.error)}</Alert> : null}
          <Button type="submit" disabled={busy || !username.trim() || !password} data-testid="login-submit">
            {busy ? <Spinner className="text-primary-foreground" label="Signing in" /> : <LogIn aria-hidden />}
            Sign in
          </Button>
          <p className="text-xs leading-relaxed text-muted-foreground">
            On its first start the server printed the <span className="font-mono">admin</span> password in its log. To choose your own,
            start the server with <span className="font-mono break-all">ORCHARD_ADMIN_PASSWORD</span> set.
          </p>
        </form>
      </CardContent>
    </Card>
  );
}
