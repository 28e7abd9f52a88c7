"use client";
/** The Enroll page: how enrollment works, the token form, the commands for the new token, and the pending tokens. */
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { useTRPC } from "@/lib/trpc";
import { EnrollForm, type CreatedToken } from "./enroll-form";
import { EnrollmentResult } from "./enrollment-result";
import { PendingTokens } from "./pending-tokens";

export function EnrollPanel() {
  const trpc = useTRPC();
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const pending = useQuery(trpc.enrollment.listPending.queryOptions(undefined, { refetchInterval: 30_000 }));
  // The token left the pending list before expiring: a device used it.
  const used =
    created !== null &&
    pending.data !== undefined &&
    !pending.isFetching &&
    created.expiresAt > Date.now() &&
    !pending.data.some((t) => t.id === created.id) &&
    pending.dataUpdatedAt > created.createdAt;

  return (
    <div className="flex flex-col gap-5">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">Enroll a device</h1>
        <p className="text-sm text-muted-foreground">Add a Raspberry Pi to the fleet with a single-use token.</p>
      </div>
      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,3fr)_minmax(0,2fr)]">
        <div className="flex flex-col gap-5">
          <Card>
            <CardHeader>
              <CardTitle>New enrollment token</CardTitle>
              <CardDescription>
                First install the agent on the Pi (see <span className="font-mono text-xs">infra/pi/agent-install.md</span> in the
                repository). Then create a token here and run the commands it shows on the Pi: the agent trades the token for its own
                credentials and the Pi appears on the Fleet page.
              </CardDescription>
            </CardHeader>
            <CardContent>
              <EnrollForm onCreated={setCreated} />
            </CardContent>
          </Card>
          {created ? <EnrollmentResult token={created} used={used} /> : null}
        </div>
        <PendingTokens />
      </div>
    </div>
  );
}
