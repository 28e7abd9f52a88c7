"use client";
/** The commands for a new token, shown once, with its expiry ticking down. */
import { CircleCheck, Clock, TriangleAlert } from "lucide-react";
import Link from "next/link";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { CodeBlock } from "@/components/ui/code-block";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useNow } from "@/lib/use-now";
import type { CreatedToken } from "./enroll-form";

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === "localhost" || host.startsWith("127.") || host === "[::1]" || host === "::1";
  } catch {
    return false;
  }
}

export function EnrollmentResult({ token, used }: { token: CreatedToken; used: boolean }) {
  const now = useNow();
  const expired = now > 0 && now >= token.expiresAt;

  return (
    <Card data-testid="enroll-result" className={expired ? "opacity-70" : undefined}>
      <CardHeader>
        <div className="flex flex-wrap items-center justify-between gap-2">
          <CardTitle>Run these on the Pi{token.deviceName ? ` (${token.deviceName})` : ""}</CardTitle>
          {used ? (
            <Badge tone="success">
              <CircleCheck aria-hidden />
              used: the device enrolled
            </Badge>
          ) : expired ? (
            <Badge tone="danger">
              <TriangleAlert aria-hidden />
              expired
            </Badge>
          ) : (
            <Badge tone="info" title={formatDateTime(token.expiresAt)} data-testid="enroll-expiry">
              <Clock aria-hidden />
              expires {now === 0 ? formatDateTime(token.expiresAt) : formatRelative(token.expiresAt, now)}
            </Badge>
          )}
        </div>
        <CardDescription>
          The token works once and until {formatDateTime(token.expiresAt)}. It is shown only now: copy the commands before leaving this
          page.
        </CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-3">
        {token.commands.map((command, i) => (
          <div key={command} className="flex flex-col gap-1">
            <span className="text-xs font-medium text-muted-foreground">
              {i + 1}. {i === 0 ? "Enroll (trades the token for the device's own credentials)" : "Start the agent and keep it running"}
            </span>
            <CodeBlock code={command} testId="enroll-command" />
          </div>
        ))}
        {used ? (
          <p className="text-sm">
            The device is in the fleet:{" "}
            <Link href="/" className="font-medium text-primary underline-offset-4 hover:underline">
              see it on the Fleet page
            </Link>
            .
          </p>
        ) : isLoopback(token.serverUrl) ? (
          <Alert tone="warning">
            These commands point at <span className="font-mono">{token.serverUrl}</span>, which a Pi cannot reach. Open the dashboard by
            this machine&apos;s LAN address (or set the address agents should use) and create the token again.
          </Alert>
        ) : (
          <p className="text-xs text-muted-foreground">
            The Pi must reach <span className="font-mono">{token.serverUrl}</span> and the MQTT port of this server.
          </p>
        )}
      </CardContent>
    </Card>
  );
}
