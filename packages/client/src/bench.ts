/**
 * Benchmark results as the dashboard, the HTTP export and the tRPC API shape them:
 * a run's table rows (contracts' `benchTableRows`, so every place shows the same
 * columns), the summary row of the runs list, the column groups of the results
 * table, and the comparison of two runs. Pure functions; the server and the browser
 * both import them.
 */
import { z } from "zod";
import { benchTableRows, type BenchRunDto, type BenchTableRow } from "@orchard/contracts";
import { BENCH_COLUMNS } from "./bench-table.ts";

/** Every row of a run: one per device and prompt, for devices that reported results (a failed device may have some). */
export function runTableRows(run: BenchRunDto): BenchTableRow[] {
  return run.devices.flatMap((d) => (d.result ? benchTableRows(run.name, d.deviceName, d.result) : []));
}

/** A run in the runs list: counts instead of results. */
export const BenchRunSummary = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.number(),
  finishedAt: z.number().nullable(),
  state: z.enum(["running", "finished"]),
  maxNewTokens: z.number().int().positive(),
  promptCount: z.number().int().nonnegative(),
  devices: z.number().int().nonnegative(),
  done: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});
export type BenchRunSummary = z.infer<typeof BenchRunSummary>;

/** The summary of a full run (the browser turns a `bench:changed` event into its list row with it). */
export function summarizeRun(run: BenchRunDto): BenchRunSummary {
  const finishedAt = run.devices.reduce<number | null>(
    (latest, d) => (d.finishedAt !== null && d.finishedAt > (latest ?? 0) ? d.finishedAt : latest),
    null,
  );
  return {
    id: run.id,
    name: run.name,
    createdAt: run.createdAt,
    finishedAt: run.state === "finished" ? (finishedAt ?? run.createdAt) : null,
    state: run.state,
    maxNewTokens: run.maxNewTokens,
    promptCount: run.prompts.length,
    devices: run.devices.length,
    done: run.devices.filter((d) => d.state === "done").length,
    failed: run.devices.filter((d) => d.state === "failed").length,
  };
}

// ------------------------------------------------------------------ results table layout

type ColumnKey = (typeof BENCH_COLUMNS)[number]["key"];

/**
 * How the results table groups the contract's columns, like the reference deployment's
 * Performance table: what ran (host, runtime, model), then speed, then what it cost.
 * "Run" is left out on a run's own page (every row would repeat the page title).
 */
export const BENCH_COLUMN_GROUPS: readonly { title: string; keys: readonly ColumnKey[] }[] = [
  { title: "Device and runtime", keys: ["device", "backend", "runnerVersion", "model", "modelSha256"] },
  { title: "Prompt", keys: ["prompt"] },
  { title: "Speed", keys: ["loadMs", "ttftMs", "prefillTokS", "decodeTokS"] },
  { title: "Tokens", keys: ["promptTokens", "generatedTokens"] },
  { title: "Memory and energy", keys: ["peakRssBytes", "energyJPerToken"] },
  { title: "Board before → after", keys: ["tempBeforeC", "tempAfterC", "throttleBefore", "throttleAfter"] },
];

/** Columns that describe the device's whole run rather than one prompt (shown once per device in the table). */
export const BENCH_DEVICE_KEYS: ReadonlySet<ColumnKey> = new Set([
  "device",
  "backend",
  "runnerVersion",
  "model",
  "modelSha256",
  "loadMs",
  "tempBeforeC",
  "tempAfterC",
  "throttleBefore",
  "throttleAfter",
]);

/** A cell as the Markdown export writes it ("n/a" where the device could not read the value). */
export function formatBenchCell(key: ColumnKey, row: BenchTableRow): string {
  const column = BENCH_COLUMNS.find((c) => c.key === key)!;
  const value = row[key];
  if (value === null) return "n/a";
  return typeof value === "number" && column.format ? column.format(value) : String(value);
}

// ------------------------------------------------------------------ comparing two runs

const Metric = z.object({
  a: z.number().nullable(),
  b: z.number().nullable(),
  /** (b − a) / a in percent; null when either side is missing or a is 0. */
  changePct: z.number().nullable(),
});
export type BenchCompareMetric = z.infer<typeof Metric>;

export const BenchCompareRow = z.object({
  deviceId: z.string(),
  device: z.string(),
  prompt: z.string(),
  decodeTokS: Metric,
  prefillTokS: Metric,
  ttftMs: Metric,
});
export type BenchCompareRow = z.infer<typeof BenchCompareRow>;

export const BenchComparison = z.object({
  a: z.object({ id: z.string(), name: z.string(), createdAt: z.number() }),
  b: z.object({ id: z.string(), name: z.string(), createdAt: z.number() }),
  rows: z.array(BenchCompareRow),
});
export type BenchComparison = z.infer<typeof BenchComparison>;

function metric(a: number | null, b: number | null): BenchCompareMetric {
  return { a, b, changePct: a !== null && b !== null && a !== 0 ? ((b - a) / a) * 100 : null };
}

/**
 * Pairs the rows of two runs by device (its id, so a renamed device still pairs) and
 * prompt. Rows only one run has are kept with the other side empty: A's order first,
 * then what only B has.
 */
export function compareRuns(a: BenchRunDto, b: BenchRunDto): BenchComparison {
  type Side = { deviceId: string; device: string; prompt: string; decodeTokS: number; prefillTokS: number; ttftMs: number };
  const sides = (run: BenchRunDto): Side[] =>
    run.devices.flatMap((d) =>
      (d.result?.prompts ?? []).map((p) => ({
        deviceId: d.deviceId,
        device: d.deviceName,
        prompt: p.promptId,
        decodeTokS: p.decodeTokS,
        prefillTokS: p.prefillTokS,
        ttftMs: p.ttftMs,
      })),
    );
  const key = (s: Side) => `${s.deviceId}\u0000${s.prompt}`;
  const bByKey = new Map(sides(b).map((s) => [key(s), s]));
  const rows: BenchCompareRow[] = [];
  const row = (x: Side | undefined, y: Side | undefined): BenchCompareRow => {
    const any = (x ?? y)!;
    return {
      deviceId: any.deviceId,
      device: y?.device ?? any.device,
      prompt: any.prompt,
      decodeTokS: metric(x?.decodeTokS ?? null, y?.decodeTokS ?? null),
      prefillTokS: metric(x?.prefillTokS ?? null, y?.prefillTokS ?? null),
      ttftMs: metric(x?.ttftMs ?? null, y?.ttftMs ?? null),
    };
  };
  for (const x of sides(a)) {
    const y = bByKey.get(key(x));
    bByKey.delete(key(x));
    rows.push(row(x, y));
  }
  for (const y of bByKey.values()) rows.push(row(undefined, y));
  const head = (r: BenchRunDto) => ({ id: r.id, name: r.name, createdAt: r.createdAt });
  return { a: head(a), b: head(b), rows };
}
