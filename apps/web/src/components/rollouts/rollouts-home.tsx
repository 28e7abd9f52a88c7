"use client";
/** The Rollouts page: what a rollout does, "New rollout", and the rollouts so far (live). */
import { useQuery } from "@tanstack/react-query";
import { Rocket } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { QueryList } from "@/components/ui/query-list";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { NewRolloutDialog } from "./new-rollout-dialog";
import { RolloutCountsText } from "./rollout-progress";
import { RolloutStateBadge, RuntimeBadge } from "./rollout-badges";
import { useRolloutsSync } from "./use-rollouts-sync";
import { useCan } from "@/lib/use-role";

export function RolloutsHome({ preselect }: { preselect: { artifactId: string | null; deviceIds: string[] } }) {
  useRolloutsSync();
  const trpc = useTRPC();
  const rollouts = useQuery(trpc.rollouts.list.queryOptions());
  const now = useNow();
  const [dialogOpen, setDialogOpen] = useState(preselect.artifactId !== null || preselect.deviceIds.length > 0);
  const canRollOut = useCan("operator");
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));

  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Rollouts</h1>
          <p className="max-w-2xl text-sm text-muted-foreground">
            Put a model on chosen devices safely: canaries first, then batches, with a cap on concurrent downloads. Each device checks disk,
            memory and runtime before downloading, verifies every file, switches models and runs a health check; a failure switches it back.
            Too many failures pause the rollout.
          </p>
        </div>
        {canRollOut ? (
          <Button onClick={() => setDialogOpen(true)} data-testid="rollout-new">
            <Rocket aria-hidden />
            New rollout
          </Button>
        ) : null}
      </div>
      <Card>
        <CardHeader>
          <CardTitle>Rollouts</CardTitle>
          <CardDescription>Newest first.</CardDescription>
        </CardHeader>
        <QueryList
          query={rollouts}
          loading="Loading rollouts…"
          empty={
            <EmptyState
              icon={Rocket}
              title="No rollouts yet"
              action={
                canRollOut ? (
                  <Button variant="outline" onClick={() => setDialogOpen(true)}>
                    New rollout
                  </Button>
                ) : null
              }
            >
              Upload a model on the Models page, then roll it out to devices or tags from here.
            </EmptyState>
          }
        >
          {(items) => (
            <Table stack data-testid="rollouts" aria-label="Rollouts">
              <TableHeader>
                <TableRow>
                  <TableHead>Name</TableHead>
                  <TableHead>Model</TableHead>
                  <TableHead>State</TableHead>
                  <TableHead>Devices</TableHead>
                  <TableHead>Created</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody className="max-lg:px-5 max-lg:pb-5">
                {items.map((r) => (
                  <TableRow key={r.id} data-testid="rollout-row" data-rollout-id={r.id} data-state={r.state}>
                    <TableCell className="font-medium break-all max-lg:mb-1 max-lg:border-b max-lg:pb-2">
                      <Link href={`/rollouts/${encodeURIComponent(r.id)}`} className="hover:underline" data-testid="rollout-link">
                        {r.name}
                      </Link>
                    </TableCell>
                    <TableCell label="Model">
                      <span className="flex flex-wrap items-center gap-1.5">
                        <span className="break-all">
                          {r.artifactName} {r.artifactVersion}
                        </span>
                        <RuntimeBadge runtime={r.artifactRuntime} />
                      </span>
                    </TableCell>
                    <TableCell label="State">
                      <RolloutStateBadge state={r.state} />
                    </TableCell>
                    <TableCell label="Devices" className="text-sm">
                      <RolloutCountsText counts={r.counts} />
                    </TableCell>
                    <TableCell label="Created" className="whitespace-nowrap">
                      <span title={formatDateTime(r.createdAt)}>{when(r.createdAt)}</span>
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </QueryList>
      </Card>
      <NewRolloutDialog open={dialogOpen && canRollOut} onClose={() => setDialogOpen(false)} preselect={preselect} />
    </div>
  );
}
