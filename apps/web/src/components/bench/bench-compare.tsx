"use client";
/**
 * Two runs side by side: rows paired by device and prompt (bench.compare), decode
 * and prompt-feed tokens/s and time to first token of each, with the change from A
 * to B in percent, coloured by whether it is better (more tok/s, less TTFT).
 */
import { useQuery } from "@tanstack/react-query";
import { Alert } from "@/components/ui/alert";
import { LoadingBlock } from "@/components/ui/spinner";
import type { BenchCompareMetric } from "@orchard/client";
import { cn } from "@/lib/cn";
import { errorMessage, useTRPC } from "@/lib/trpc";

const METRICS = [
  { key: "decodeTokS", title: "Decode (tok/s)", digits: 2, higherIsBetter: true },
  { key: "prefillTokS", title: "Prompt feed (tok/s)", digits: 2, higherIsBetter: true },
  { key: "ttftMs", title: "TTFT (ms)", digits: 0, higherIsBetter: false },
] as const;

export function BenchCompare({ a, b }: { a: string; b: string }) {
  const trpc = useTRPC();
  const comparison = useQuery(trpc.bench.compare.queryOptions({ a, b }));
  if (comparison.isPending) return <LoadingBlock label="Comparing…" />;
  if (comparison.isError) return <Alert>{errorMessage(comparison.error)}</Alert>;
  const { rows } = comparison.data;
  if (rows.length === 0) return <p className="text-sm text-muted-foreground">Neither run has results yet.</p>;

  return (
    <div className="overflow-x-auto">
      <table className="w-full text-sm" data-testid="bench-compare" aria-label="Comparison">
        <thead>
          <tr className="border-b">
            <th colSpan={2} className="h-8 px-3" />
            {METRICS.map((m) => (
              <th key={m.key} colSpan={3} scope="colgroup" className="h-8 border-l px-3 text-left text-xs font-semibold whitespace-nowrap">
                {m.title}
              </th>
            ))}
          </tr>
          <tr className="border-b text-xs text-muted-foreground">
            <th scope="col" className="h-9 px-3 text-left font-medium">
              Device
            </th>
            <th scope="col" className="h-9 px-3 text-left font-medium">
              Prompt
            </th>
            {METRICS.map((m) => (
              <Headers key={m.key} />
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.deviceId}/${r.prompt}`} className="border-b last:border-0 hover:bg-muted/40" data-testid="bench-compare-row">
              <td className="px-3 py-2 font-medium whitespace-nowrap">{r.device}</td>
              <td className="px-3 py-2 font-mono text-xs">{r.prompt}</td>
              {METRICS.map((m) => (
                <MetricCells key={m.key} metric={r[m.key]} digits={m.digits} higherIsBetter={m.higherIsBetter} />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Headers() {
  return (
    <>
      <th scope="col" className="h-9 border-l px-3 text-right font-medium">
        A
      </th>
      <th scope="col" className="h-9 px-3 text-right font-medium">
        B
      </th>
      <th scope="col" className="h-9 px-3 text-right font-medium" title="Change from A to B">
        Δ
      </th>
    </>
  );
}

function MetricCells({ metric, digits, higherIsBetter }: { metric: BenchCompareMetric; digits: number; higherIsBetter: boolean }) {
  const value = (v: number | null) =>
    v === null ? (
      <span className="text-muted-foreground" title="not in this run">
        —
      </span>
    ) : (
      v.toFixed(digits)
    );
  const change = metric.changePct;
  // Changes within ±2 % are noise on a Pi (clock and temperature drift).
  const better = change !== null && Math.abs(change) >= 2 && change > 0 === higherIsBetter;
  const worse = change !== null && Math.abs(change) >= 2 && !better;
  return (
    <>
      <td className="border-l px-3 py-2 text-right tabular-nums">{value(metric.a)}</td>
      <td className="px-3 py-2 text-right tabular-nums">{value(metric.b)}</td>
      <td className={cn("px-3 py-2 text-right whitespace-nowrap tabular-nums", better && "text-success", worse && "text-danger")}>
        {change === null ? <span className="text-muted-foreground">—</span> : `${change > 0 ? "+" : ""}${change.toFixed(1)} %`}
      </td>
    </>
  );
}
