"use client";
/** The Benchmarks page: what a benchmark measures, "Run benchmark", and the runs so far (live). */
import { useQuery } from "@tanstack/react-query";
import { Gauge, Scale, Trash2 } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import { Button } from "@/components/ui/button";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { QueryList } from "@/components/ui/query-list";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { useBenchSync } from "@/lib/bench-live";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { useCan } from "@/lib/use-role";
import { RunStateBadge } from "./bench-badges";
import { CompareRuntimesDialog } from "./compare-runtimes-dialog";
import { RuntimeComparisons } from "./runtime-comparisons";
import { DeleteRunDialog, type RunRef } from "./delete-run-dialog";
import { RunBenchmarkDialog } from "./run-benchmark-dialog";

export function BenchHome({ preselect }: { preselect: string[] }) {
  useBenchSync();
  const trpc = useTRPC();
  const runs = useQuery(trpc.bench.list.queryOptions());
  const now = useNow();
  const [dialogOpen, setDialogOpen] = useState(preselect.length > 0);
  const [deleting, setDeleting] = useState<RunRef | null>(null);
  const [comparing, setComparing] = useState(false);
  // A viewer sees the runs; starting or deleting one is not offered (the server refuses it anyway).
  const canRun = useCan("operator");
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));

  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Benchmarks</h1>
          <p className="max-w-2xl text-sm text-muted-foreground">
            The standard prompt set on chosen devices: load time, time to first token, prompt-feed and decode speed, peak memory, board
            temperature and throttling before and after, energy per token where the board reports power. Comparable across devices, models
            and runner versions.
          </p>
        </div>
        {canRun ? (
          <div className="flex flex-wrap gap-2">
            <Button variant="outline" onClick={() => setComparing(true)} data-testid="compare-runtimes">
              <Scale aria-hidden />
              Compare runtimes
            </Button>
            <Button onClick={() => setDialogOpen(true)} data-testid="bench-new">
              <Gauge aria-hidden />
              Run benchmark
            </Button>
          </div>
        ) : null}
      </div>
      <RuntimeComparisons />
      <Card>
        <CardHeader>
          <CardTitle>Runs</CardTitle>
          <CardDescription>Newest first. A run is finished when every device has reported or failed.</CardDescription>
        </CardHeader>
        <QueryList
          query={runs}
          loading="Loading runs…"
          empty={
            <EmptyState
              icon={Gauge}
              title="No benchmark runs yet"
              action={
                canRun ? (
                  <Button variant="outline" onClick={() => setDialogOpen(true)}>
                    Run benchmark
                  </Button>
                ) : null
              }
            >
              Run the standard prompt set on one device or the whole fleet; results can be exported as CSV or Markdown and compared.
            </EmptyState>
          }
        >
          {(items) => (
            <Table stack data-testid="bench-runs" aria-label="Benchmark runs">
              <TableHeader>
                <TableRow>
                  <TableHead>Name</TableHead>
                  <TableHead>State</TableHead>
                  <TableHead>Devices</TableHead>
                  <TableHead>Prompts</TableHead>
                  <TableHead>Max new tokens</TableHead>
                  <TableHead>Created</TableHead>
                  <TableHead>
                    <span className="sr-only">Actions</span>
                  </TableHead>
                </TableRow>
              </TableHeader>
              <TableBody className="max-lg:px-5 max-lg:pb-5">
                {items.map((r) => (
                  <TableRow key={r.id} data-testid="bench-run-row" data-run-id={r.id} data-state={r.state}>
                    <TableCell className="font-medium break-all max-lg:mb-1 max-lg:border-b max-lg:pb-2">
                      <Link href={`/benchmarks/${encodeURIComponent(r.id)}`} className="hover:underline" data-testid="bench-run-link">
                        {r.name}
                      </Link>
                    </TableCell>
                    <TableCell label="State">
                      <RunStateBadge state={r.state} />
                    </TableCell>
                    <TableCell label="Devices" className="whitespace-nowrap tabular-nums">
                      {r.done}/{r.devices} done
                      {r.failed > 0 ? <span className="text-danger"> · {r.failed} failed</span> : null}
                    </TableCell>
                    <TableCell label="Prompts" className="tabular-nums">
                      {r.promptCount}
                    </TableCell>
                    <TableCell label="Max new tokens" className="tabular-nums">
                      {r.maxNewTokens}
                    </TableCell>
                    <TableCell label="Created" className="whitespace-nowrap">
                      <span title={formatDateTime(r.createdAt)}>{when(r.createdAt)}</span>
                    </TableCell>
                    <TableCell className="max-lg:mt-1 max-lg:border-t max-lg:pt-2 lg:text-right">
                      {canRun ? (
                        <Button
                          variant="ghost"
                          size="sm"
                          className="text-danger hover:bg-danger/10"
                          onClick={() => setDeleting({ id: r.id, name: r.name })}
                          data-testid="bench-run-delete"
                        >
                          <Trash2 aria-hidden />
                          Delete
                        </Button>
                      ) : null}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </QueryList>
      </Card>
      <RunBenchmarkDialog open={dialogOpen && canRun} onClose={() => setDialogOpen(false)} preselect={preselect} />
      <DeleteRunDialog run={deleting} onClose={() => setDeleting(null)} />
      <CompareRuntimesDialog open={comparing && canRun} onClose={() => setComparing(false)} />
    </div>
  );
}
