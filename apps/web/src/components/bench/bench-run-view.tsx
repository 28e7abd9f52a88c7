"use client";
/**
 * One benchmark run: each device's progress (live) and failures with their reason,
 * the results table, CSV and Markdown downloads of the same table, and a side-by-side
 * comparison with another run.
 */
import { useQuery } from "@tanstack/react-query";
import { ArrowLeft, FileDown, Gauge, Trash2 } from "lucide-react";
import Link from "next/link";
import { useEffect, useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button, buttonClass } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { useBenchSync } from "@/lib/bench-live";
import { runTableRows } from "@orchard/client";
import { formatDateTime } from "@/lib/format";
import { errorCode, errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";
import { RunStateBadge } from "./bench-badges";
import { BenchChart } from "./bench-chart";
import { BenchCompare } from "./bench-compare";
import { BenchProgress } from "./bench-progress";
import { BenchResultsTable } from "./bench-results-table";
import { DeleteRunDialog, type RunRef } from "./delete-run-dialog";

function BackToRuns() {
  return (
    <Link href="/benchmarks" className="inline-flex items-center gap-1 text-sm text-muted-foreground hover:text-foreground">
      <ArrowLeft className="size-4" aria-hidden />
      Benchmarks
    </Link>
  );
}

export function BenchRunView({ id }: { id: string }) {
  useBenchSync();
  const trpc = useTRPC();
  const run = useQuery(trpc.bench.get.queryOptions({ id }));
  const [compareWith, setCompareWith] = useState("");
  const [deleting, setDeleting] = useState<RunRef | null>(null);
  const canDelete = useCan("operator");

  const name = run.data?.name;
  useEffect(() => {
    if (name) document.title = `${name} · Orchard`;
  }, [name]);

  if (run.isPending) return <LoadingBlock label="Loading run…" />;
  if (run.isError) {
    return (
      <div className="flex flex-col gap-4">
        <BackToRuns />
        {errorCode(run.error) === "NOT_FOUND" ? (
          <Card data-testid="bench-run-missing">
            <EmptyState icon={Trash2} title="No such benchmark run">
              There is no run with id {id}. It may have been deleted.
            </EmptyState>
          </Card>
        ) : (
          <Alert>{errorMessage(run.error)}</Alert>
        )}
      </div>
    );
  }

  const r = run.data;
  const rowCount = runTableRows(r).length;
  const failed = r.devices.filter((d) => d.state === "failed").length;
  const exportHref = (ext: "csv" | "md") => `/api/benchmarks/${encodeURIComponent(r.id)}.${ext}`;

  return (
    <div className="flex flex-col gap-5" data-testid="bench-run" data-run-id={r.id} data-state={r.state}>
      <BackToRuns />
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div className="flex min-w-0 flex-col gap-1">
          <div className="flex flex-wrap items-center gap-2">
            <h1 className="text-2xl font-semibold tracking-tight break-all">{r.name}</h1>
            <RunStateBadge state={r.state} />
          </div>
          <p className="text-sm text-muted-foreground">
            Started {formatDateTime(r.createdAt)} · {r.devices.length} {r.devices.length === 1 ? "device" : "devices"} · {r.prompts.length}{" "}
            prompts · up to {r.maxNewTokens} new tokens each
            {failed > 0 ? <span className="text-danger"> · {failed} failed</span> : null}
          </p>
        </div>
        <div className="flex flex-wrap gap-2">
          <a href={exportHref("csv")} download className={buttonClass("outline", "sm")} data-testid="bench-export-csv">
            <FileDown aria-hidden />
            Export CSV
          </a>
          <a href={exportHref("md")} download className={buttonClass("outline", "sm")} data-testid="bench-export-md">
            <FileDown aria-hidden />
            Export Markdown
          </a>
          {canDelete ? (
            <Button
              variant="outline"
              size="sm"
              className="text-danger hover:bg-danger/10"
              onClick={() => setDeleting({ id: r.id, name: r.name })}
              data-testid="bench-delete"
            >
              <Trash2 aria-hidden />
              Delete
            </Button>
          ) : null}
        </div>
      </div>

      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,2fr)_minmax(0,1fr)]">
        <Card>
          <CardHeader>
            <CardTitle>Devices</CardTitle>
            <CardDescription>
              Each device runs the prompts one after another, between chats; its bar fills as prompts finish.
            </CardDescription>
          </CardHeader>
          <CardContent>
            <BenchProgress devices={r.devices} />
          </CardContent>
        </Card>
        <Card>
          <CardHeader>
            <CardTitle>Prompt set</CardTitle>
            <CardDescription>Greedy decoding, a fresh session for each prompt.</CardDescription>
          </CardHeader>
          <CardContent>
            <ol className="flex flex-col gap-2 text-sm">
              {r.prompts.map((p) => (
                <li key={p.id} className="flex flex-col">
                  <span className="font-mono text-xs">{p.id}</span>
                  <span className="line-clamp-2 text-muted-foreground" title={p.text}>
                    {p.text}
                  </span>
                </li>
              ))}
            </ol>
          </CardContent>
        </Card>
      </div>

      <Card>
        <CardHeader>
          <CardTitle>Results</CardTitle>
          <CardDescription>
            Per device, the mean over its prompts; below, one row per device and prompt, columns as in the CSV and Markdown exports. A dash
            means the device cannot read that value.
          </CardDescription>
        </CardHeader>
        <CardContent>
          {rowCount > 0 ? (
            <div className="flex flex-col gap-6">
              <BenchChart run={r} />
              <BenchResultsTable run={r} />
            </div>
          ) : (
            <EmptyState icon={Gauge} title={r.state === "running" ? "No results yet" : "No results"}>
              {r.state === "running" ? "Each device reports its results when it has run every prompt." : "No device finished any prompt."}
            </EmptyState>
          )}
        </CardContent>
      </Card>

      <Card>
        <CardHeader>
          <CardTitle>Compare</CardTitle>
          <CardDescription>
            Pairs rows by device and prompt: decode and prompt-feed tok/s and time to first token, with the change in %.
          </CardDescription>
        </CardHeader>
        <CardContent className="flex flex-col gap-4">
          <CompareWith runId={r.id} value={compareWith} onChange={setCompareWith} />
          {compareWith ? <BenchCompare a={compareWith} b={r.id} /> : null}
        </CardContent>
      </Card>
      <DeleteRunDialog run={deleting} onClose={() => setDeleting(null)} />
    </div>
  );
}

/** "Compare with…": another run as A, this one as B (usually: an older baseline against this run). */
function CompareWith({ runId, value, onChange }: { runId: string; value: string; onChange: (id: string) => void }) {
  const trpc = useTRPC();
  const runs = useQuery(trpc.bench.list.queryOptions());
  const others = (runs.data ?? []).filter((r) => r.id !== runId);
  return (
    <label className="flex flex-wrap items-center gap-2 text-sm">
      <span className="font-medium">Compare with…</span>
      <select
        value={value}
        onChange={(e) => onChange(e.target.value)}
        disabled={others.length === 0}
        className="h-9 max-w-full min-w-0 rounded-md border border-input bg-card px-2 text-sm shadow-xs focus-visible:ring-2 focus-visible:ring-ring/40 focus-visible:outline-none"
        data-testid="bench-compare-select"
      >
        <option value="">{others.length === 0 ? "no other runs yet" : "choose a run (A)"}</option>
        {others.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name} ({formatDateTime(o.createdAt)})
          </option>
        ))}
      </select>
      {value ? <span className="text-xs text-muted-foreground">A = the chosen run, B = this run</span> : null}
    </label>
  );
}
