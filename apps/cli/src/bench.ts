/**
 * `orchard bench run|list|show`: benchmark runs from a terminal. Tables and exports
 * use the contracts' results-table helpers, so the columns are the dashboard's and
 * the CSV/Markdown are byte for byte what the dashboard downloads.
 */
import {
  SIDE_BY_SIDE_METRICS,
  benchTableRows,
  comparisonTableRows,
  type BenchRunDto,
  type RuntimeComparisonDetail,
  type BenchTableRow,
  type DeviceSummary,
} from "@orchard/contracts";
import { BENCH_COLUMNS, benchToCsv, benchToMarkdown, comparisonMarkdown, formatSideBySideValue, formatSpeedup } from "@orchard/client";
import { resolveDevice } from "./chat.ts";
import type { OrchardClient } from "./client.ts";
import { ago, table } from "./format.ts";

export type BenchOutput = "table" | "json" | "csv" | "markdown";

export interface BenchIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Rows of every device that reported results (a failed device may have some), in the run's device order. */
export function runRows(run: BenchRunDto): BenchTableRow[] {
  return run.devices.flatMap((d) => (d.result ? benchTableRows(run.name, d.deviceName, d.result) : []));
}

/** The devices a run goes to: each --device (id or name), or every online device with --all-online. */
export function chooseDevices(fleet: DeviceSummary[], names: string[], allOnline: boolean): string[] {
  if (names.length > 0 && allOnline) throw new Error("use either --device or --all-online, not both");
  if (allOnline) {
    const online = fleet.filter((d) => d.online);
    if (online.length === 0) throw new Error("no device is online (orchard devices lists them)");
    return online.map((d) => d.id);
  }
  if (names.length === 0) throw new Error("choose devices with --device ID-or-name (repeatable) or --all-online");
  return [...new Set(names.map((n) => resolveDevice(fleet, n).id))];
}

/** The results as a terminal table: the contract's columns (without Run: it is the heading), values as in the Markdown export. */
export function resultsTable(run: BenchRunDto): string {
  const columns = BENCH_COLUMNS.filter((c) => c.key !== "run");
  const rows = runRows(run).map((r) =>
    columns.map((c) => {
      const v = r[c.key];
      if (v === null) return "n/a";
      if (c.key === "modelSha256") return String(v).slice(0, 12);
      return typeof v === "number" && c.format ? c.format(v) : String(v);
    }),
  );
  return table(
    columns.map((c) => c.title),
    rows,
  );
}

/** One line per device: its state, progress and, for a failure, why. */
export function deviceLine(d: BenchRunDto["devices"][number]): string {
  switch (d.state) {
    case "pending":
      return `${d.deviceName}: waiting for the device`;
    case "running":
      return `${d.deviceName}: ${d.completed}/${d.total} prompts`;
    case "done":
      return `${d.deviceName}: done (${d.completed}/${d.total} prompts)`;
    case "failed":
      return `${d.deviceName}: failed: ${d.error ?? "no reason given"}`;
  }
}

export function render(run: BenchRunDto, output: BenchOutput, now = Date.now()): string {
  switch (output) {
    case "json":
      return `${JSON.stringify(run, null, 2)}\n`;
    case "csv":
      return benchToCsv(runRows(run));
    case "markdown":
      return benchToMarkdown(runRows(run));
    case "table": {
      const done = run.devices.filter((d) => d.state === "done").length;
      const head = [
        `${run.name} (${run.id}), created ${ago(run.createdAt, now)}, ${run.state}`,
        `${run.devices.length} devices, ${done} done; ${run.prompts.length} prompts, up to ${run.maxNewTokens} new tokens each`,
        ...run.devices.map((d) => `  ${deviceLine(d)}`),
      ].join("\n");
      const rows = runRows(run);
      return `${head}\n\n${rows.length > 0 ? resultsTable(run) : "no results yet"}\n`;
    }
  }
}

export function listTable(runs: Awaited<ReturnType<OrchardClient["bench"]["list"]["query"]>>, now = Date.now()): string {
  if (runs.length === 0) return "no benchmark runs yet (orchard bench run --all-online starts one)";
  return table(
    ["NAME", "ID", "CREATED", "STATE", "DEVICES", "DONE", "FAILED", "PROMPTS", "MAX TOKENS"],
    runs.map((r) => [
      r.name,
      r.id,
      ago(r.createdAt, now),
      r.state,
      String(r.devices),
      String(r.done),
      String(r.failed),
      String(r.promptCount),
      String(r.maxNewTokens),
    ]),
  );
}

/**
 * Follows a run until it is finished, printing a line on stderr whenever a device's
 * state or progress changes. Polls the API (the CLI has no socket.io client).
 */
export async function waitForRun(
  client: OrchardClient,
  id: string,
  io: BenchIo,
  opts: { pollMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<BenchRunDto> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const seen = new Map<string, string>();
  for (;;) {
    const run = await client.bench.get.query({ id });
    for (const d of run.devices) {
      const line = deviceLine(d);
      if (seen.get(d.deviceId) === line) continue;
      seen.set(d.deviceId, line);
      io.err(`${line}\n`);
    }
    if (run.state === "finished") return run;
    await sleep(opts.pollMs ?? 1000);
  }
}

// ------------------------------------------------------------------ bench compare

/** The side-by-side table for a terminal: a row per prompt and metric, a column per model, then the factors against the first. */
export function sideBySideTable(detail: RuntimeComparisonDetail): string {
  const { models, rows } = detail.sideBySide;
  const first = models[0]?.label ?? "A";
  const head = ["PROMPT", "METRIC", ...models.map((m) => m.label), ...models.slice(1).map((m) => `${m.label} VS ${first}`)];
  const body = rows.flatMap((r) =>
    SIDE_BY_SIDE_METRICS.map((metric) => [
      r.prompt,
      metric.title,
      ...r.values[metric.key].map((v) => formatSideBySideValue(metric.key, v)),
      ...r.speedup[metric.key].slice(1).map(formatSpeedup),
    ]),
  );
  const temp = (v: number | null) => (v === null ? "n/a" : v.toFixed(1));
  body.push([
    "board",
    "SoC °C before → after",
    ...models.map((m) => `${temp(m.tempBeforeC)} → ${temp(m.tempAfterC)}`),
    ...models.slice(1).map(() => ""),
  ]);
  return table(head, body);
}

export function renderComparison(detail: RuntimeComparisonDetail, output: BenchOutput): string {
  const c = detail.comparison;
  switch (output) {
    case "json":
      return `${JSON.stringify(detail, null, 2)}\n`;
    case "csv":
      return benchToCsv(comparisonTableRows(c, detail.runs));
    case "markdown":
      return comparisonMarkdown(c, detail.sideBySide, comparisonTableRows(c, detail.runs));
    case "table": {
      const head = [
        `${c.name} (${c.id}) on ${c.deviceName}: ${c.state}`,
        c.error ? `  ${c.error}` : `  ${c.stepText}`,
        ...c.steps.map((s, i) => `  ${i + 1}. ${s.name} ${s.version} (${s.runtime}): ${s.state}${s.error ? ` (${s.error})` : ""}`),
      ].join("\n");
      return `${head}\n\n${sideBySideTable(detail)}\n`;
    }
  }
}

/** Follows a comparison until it ends, printing each new step on stderr. Polls the API (the CLI has no socket.io client). */
export async function waitForComparison(
  client: OrchardClient,
  id: string,
  io: BenchIo,
  opts: { pollMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<RuntimeComparisonDetail> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let last = "";
  for (;;) {
    const detail = await client.bench.comparison.query({ id });
    const c = detail.comparison;
    if (c.stepText !== last) {
      last = c.stepText;
      io.err(`${c.stepText}\n`);
    }
    if (c.state !== "running") return detail;
    await sleep(opts.pollMs ?? 1000);
  }
}
