"use client";
/**
 * A runtime comparison: its steps live (`bench:comparison`), Cancel while it runs, and
 * the result: the models side by side (per prompt and all prompts: TTFT, prompt feed,
 * decode, peak RSS, energy per token; board temperature before → after) with each
 * model's factor against the first, CSV/Markdown downloads built with the same
 * contracts helpers as `orchard bench compare`, and, for two models, the runs' Compare view.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Download, Square } from "lucide-react";
import Link from "next/link";
import { SIDE_BY_SIDE_METRICS, comparisonTableRows, type RuntimeComparisonDetail } from "@orchard/contracts";
import { benchToCsv, comparisonMarkdown, formatSideBySideValue, formatSpeedup } from "@orchard/client";
import { Alert } from "@/components/ui/alert";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { LoadingBlock } from "@/components/ui/spinner";
import { cn } from "@/lib/cn";
import { useSocketEvent } from "@/lib/realtime";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";
import { BenchCompare } from "./bench-compare";

const STATE_TONES: Record<string, BadgeTone> = { running: "info", completed: "success", failed: "danger", cancelled: "neutral" };

function download(name: string, type: string, body: string) {
  const url = URL.createObjectURL(new Blob([body], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  URL.revokeObjectURL(url);
}

function fileBase(name: string, id: string) {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
  return `${slug || "comparison"}-${id}`;
}

export function RuntimeComparisonView({ id }: { id: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const detail = useQuery(trpc.bench.comparison.queryOptions({ id }));
  useSocketEvent("bench:comparison", (c) => {
    if (c.id !== id) return;
    queryClient.setQueryData(trpc.bench.comparison.queryKey({ id }), (old) => (old ? { ...old, comparison: c } : old));
    // Runs and the side-by-side table change when a benchmark reports or a step ends.
    void queryClient.invalidateQueries({ queryKey: trpc.bench.comparison.queryKey({ id }) });
  });
  const canCancel = useCan("operator");
  const cancel = useMutation(
    trpc.bench.cancelComparison.mutationOptions({
      onSuccess: () => void queryClient.invalidateQueries({ queryKey: trpc.bench.comparison.queryKey({ id }) }),
    }),
  );

  if (detail.isPending) return <LoadingBlock label="Loading the comparison…" />;
  if (detail.isError) return <Alert>{errorMessage(detail.error)}</Alert>;
  const { comparison: c, runs } = detail.data;
  const done = runs.filter((r) => r?.state === "finished" && r.devices[0]?.result).map((r) => r!.id);

  return (
    <div className="flex flex-col gap-5" data-testid="comparison-view" data-state={c.state}>
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <p className="text-sm text-muted-foreground">
            <Link href="/benchmarks" className="hover:underline">
              Benchmarks
            </Link>{" "}
            / Runtime comparison
          </p>
          <h1 className="text-2xl font-semibold tracking-tight break-all">{c.name}</h1>
          <p className="text-sm text-muted-foreground">
            {c.deviceName} · {c.steps.length} models · {c.promptCount} prompts, up to {c.maxNewTokens} new tokens each
          </p>
        </div>
        <div className="flex flex-wrap gap-2">
          {c.state === "running" && canCancel ? (
            <Button
              variant="outline"
              onClick={() => cancel.mutate({ id })}
              disabled={c.cancelRequested || cancel.isPending}
              data-testid="comparison-cancel"
            >
              <Square aria-hidden />
              {c.cancelRequested ? "Cancelling…" : "Cancel"}
            </Button>
          ) : null}
          <Button
            variant="outline"
            disabled={done.length === 0}
            onClick={() => download(`${fileBase(c.name, c.id)}.csv`, "text/csv", benchToCsv(comparisonTableRows(c, runs)))}
            data-testid="comparison-csv"
          >
            <Download aria-hidden />
            CSV
          </Button>
          <Button
            variant="outline"
            disabled={done.length === 0}
            onClick={() =>
              download(
                `${fileBase(c.name, c.id)}.md`,
                "text/markdown",
                comparisonMarkdown(c, detail.data.sideBySide, comparisonTableRows(c, runs)),
              )
            }
            data-testid="comparison-markdown"
          >
            <Download aria-hidden />
            Markdown
          </Button>
        </div>
      </div>
      {cancel.isError ? <Alert>{errorMessage(cancel.error)}</Alert> : null}
      <Card>
        <CardHeader>
          <CardTitle className="flex items-center gap-2">
            Steps{" "}
            <Badge tone={STATE_TONES[c.state] ?? "neutral"} data-testid="comparison-state">
              {c.state}
            </Badge>
          </CardTitle>
          <CardDescription data-testid="comparison-step">{c.stepText}</CardDescription>
        </CardHeader>
        <CardContent>
          {c.progress && c.state === "running" ? (
            <div className="mb-3 h-1.5 overflow-hidden rounded bg-muted" aria-hidden>
              <div
                className="h-full bg-primary transition-all"
                style={{ width: `${(c.progress.completed / Math.max(1, c.progress.total)) * 100}%` }}
              />
            </div>
          ) : null}
          <ol className="flex flex-col gap-1.5 text-sm">
            {c.steps.map((s, i) => (
              <li
                key={s.artifactId}
                className="flex flex-wrap items-center gap-2"
                data-testid="comparison-step-row"
                data-step-state={s.state}
              >
                <span className="w-5 font-semibold text-muted-foreground">{String.fromCharCode(65 + i)}</span>
                <span className="font-medium">
                  {s.name} {s.version}
                </span>
                <Badge tone="outline">{s.runtime}</Badge>
                <span className={cn("text-muted-foreground", s.state === "failed" && "text-danger")}>{s.state.replace("_", " ")}</span>
                {s.runId ? (
                  <Link href={`/benchmarks/${encodeURIComponent(s.runId)}`} className="text-xs hover:underline">
                    run
                  </Link>
                ) : null}
                {s.error ? <span className="w-full pl-7 text-xs text-danger">{s.error}</span> : null}
              </li>
            ))}
          </ol>
          {c.error ? <Alert className="mt-3">{c.error}</Alert> : null}
        </CardContent>
      </Card>
      <Card>
        <CardHeader>
          <CardTitle>Side by side</CardTitle>
          <CardDescription>
            Factors say how many times better each model is than A (×2.00: twice the tok/s, or half the TTFT, memory or energy). &ldquo;All
            prompts&rdquo; is the mean over prompts; its peak RSS is the maximum.
          </CardDescription>
        </CardHeader>
        <CardContent>
          <SideBySideTable detail={detail.data} />
        </CardContent>
      </Card>
      {runs.length === 2 && done.length === 2 ? (
        <Card>
          <CardHeader>
            <CardTitle>B against A, run by run</CardTitle>
            <CardDescription>The two benchmark runs in the runs&apos; Compare view.</CardDescription>
          </CardHeader>
          <CardContent>
            <BenchCompare a={done[0]!} b={done[1]!} />
          </CardContent>
        </Card>
      ) : null}
    </div>
  );
}

function SideBySideTable({ detail }: { detail: RuntimeComparisonDetail }) {
  const { models, rows } = detail.sideBySide;
  if (rows.every((r) => SIDE_BY_SIDE_METRICS.every((m) => r.values[m.key].every((v) => v === null)))) {
    return <p className="text-sm text-muted-foreground">No results yet.</p>;
  }
  const others = models.slice(1);
  return (
    <div className="overflow-x-auto">
      <table className="w-full text-sm" data-testid="comparison-table" aria-label="Models side by side">
        <thead>
          <tr className="border-b text-xs text-muted-foreground">
            <th scope="col" className="h-9 px-3 text-left font-medium">
              Prompt
            </th>
            <th scope="col" className="h-9 px-3 text-left font-medium">
              Metric
            </th>
            {models.map((m, i) => (
              <th key={m.label} scope="col" className="h-9 px-3 text-right font-medium whitespace-nowrap" data-testid="comparison-model">
                {String.fromCharCode(65 + i)}: {m.label}
              </th>
            ))}
            {others.map((m, i) => (
              <th key={m.label} scope="col" className="h-9 border-l px-3 text-right font-medium whitespace-nowrap">
                {String.fromCharCode(66 + i)} vs A
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.flatMap((r) =>
            SIDE_BY_SIDE_METRICS.map((metric, mi) => (
              <tr
                key={`${r.prompt}/${metric.key}`}
                className={cn(mi === 0 && "border-t", r.aggregate && "bg-muted/40 font-medium")}
                data-testid={r.aggregate ? "comparison-aggregate" : "comparison-row"}
              >
                <td className="px-3 py-1 font-mono text-xs">{mi === 0 ? r.prompt : ""}</td>
                <td className="px-3 py-1 whitespace-nowrap text-muted-foreground">{metric.title}</td>
                {r.values[metric.key].map((v, i) => (
                  <td key={i} className="px-3 py-1 text-right tabular-nums">
                    {formatSideBySideValue(metric.key, v)}
                  </td>
                ))}
                {r.speedup[metric.key].slice(1).map((f, i) => (
                  <td
                    key={i}
                    className={cn("border-l px-3 py-1 text-right tabular-nums", f !== null && (f >= 1 ? "text-success" : "text-danger"))}
                    data-testid="comparison-speedup"
                  >
                    {formatSpeedup(f)}
                  </td>
                ))}
              </tr>
            )),
          )}
          <tr className="border-t">
            <td className="px-3 py-1 font-mono text-xs">board</td>
            <td className="px-3 py-1 text-muted-foreground">SoC °C before → after</td>
            {models.map((m) => (
              <td key={m.label} className="px-3 py-1 text-right tabular-nums whitespace-nowrap">
                {m.tempBeforeC === null ? "n/a" : m.tempBeforeC.toFixed(1)} → {m.tempAfterC === null ? "n/a" : m.tempAfterC.toFixed(1)}
              </td>
            ))}
            {others.map((m) => (
              <td key={m.label} className="border-l" />
            ))}
          </tr>
        </tbody>
      </table>
    </div>
  );
}
