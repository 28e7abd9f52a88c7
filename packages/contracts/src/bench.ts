/**
 * Benchmarks: the server sends `bench.run` on a device's `cmd` topic; the agent runs
 * the prompts one after another through the same queue as chats (so a benchmark never
 * overlaps an answer), samples the board before and after, and reports on `events`:
 * `bench.progress` after each prompt and one final `bench.result` (QoS 1). A repeated
 * `bench.run` for a run the device already has is ignored.
 *
 * The table rows at the end (one per device and prompt) and the side-by-side model are
 * the data every place shows; how they print (columns, CSV, Markdown) is in
 * @orchard/client's bench-table.ts.
 */
import { z } from "zod";
import { Timestamp } from "./primitives.ts";

const timestamp = Timestamp; // ms since the epoch, before 2100 (primitives.ts)
export const BenchRunId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export const BenchPrompt = z.object({
  id: z.string().regex(/^[a-z0-9-]{1,32}$/),
  text: z.string().min(1).max(8000),
});
export type BenchPrompt = z.infer<typeof BenchPrompt>;

/**
 * The standard prompt set. The first is the reference deployment's prompt (its
 * Performance table and token-id check use it); the others cover a short answer,
 * a longer prompt to feed, and a long generation.
 */
export const BENCH_STANDARD_PROMPTS: readonly BenchPrompt[] = [
  { id: "capital-of-france", text: "The capital of France is" },
  { id: "short-answer", text: "In one sentence, what is a Raspberry Pi?" },
  {
    id: "long-prompt",
    text:
      "Summarise the following notes in three bullet points.\n" +
      "The fleet has several Raspberry Pi 5 boards with 8 GB of RAM each. Each board runs an on-device language model " +
      "exported to a single file of about five gigabytes. Boards heat up under sustained load and the firmware lowers the " +
      "clock when the SoC reaches its soft limit, which lowers the decode speed. A weak power supply causes under-voltage " +
      "warnings and the same slowdown. Swapping makes every token slower still, because the model's weights are memory-mapped.",
  },
  { id: "long-generation", text: "Write a short story about an orchard that is tended by robots." },
];

/** Max new tokens per prompt unless the caller says otherwise (the reference table used 64). */
export const BENCH_DEFAULT_MAX_NEW_TOKENS = 64;

export const BenchRunCommand = z.object({
  type: z.literal("bench.run"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  runId: BenchRunId,
  prompts: z.array(BenchPrompt).min(1).max(20),
  maxNewTokens: z.number().int().positive().max(2048).default(BENCH_DEFAULT_MAX_NEW_TOKENS),
});
export type BenchRunCommand = z.infer<typeof BenchRunCommand>;

/** The board's state at one moment (before the first prompt, after the last). */
export const BenchBoardState = z.object({
  socTempC: z.number().min(-40).max(150).nullable(),
  throttleRaw: z.number().int().nonnegative().nullable(),
  cpuFreqHz: z.number().int().nonnegative().nullable(),
  boardPowerW: z.number().nonnegative().max(200).nullable(),
});
export type BenchBoardState = z.infer<typeof BenchBoardState>;

/** One prompt's measurements, from the runner's own `done` statistics. Greedy, fresh session (no KV reuse). */
export const BenchPromptResult = z.object({
  promptId: z.string().max(32),
  promptTokens: z.number().int().nonnegative(),
  generatedTokens: z.number().int().nonnegative(),
  ttftMs: z.number().nonnegative(),
  prefillTokS: z.number().nonnegative(),
  decodeTokS: z.number().nonnegative(),
  totalMs: z.number().nonnegative(),
  peakRssBytes: z.number().int().nonnegative(),
  /** Mean board power during the prompt × its duration ÷ generated tokens; null where power is unreadable. */
  energyJPerToken: z.number().nonnegative().nullable(),
  finishReason: z.enum(["stop", "length", "cancelled"]),
  /** The first characters of the answer, so a reader can tell a real answer from gibberish. */
  textPreview: z.string().max(200),
});
export type BenchPromptResult = z.infer<typeof BenchPromptResult>;

/** What the device ran and how the whole run went. */
export const BenchDeviceResult = z.object({
  backend: z.string().max(32),
  runnerVersion: z.string().max(64).nullable(),
  model: z.string().max(256).nullable(),
  modelSha256: z.string().max(64).nullable(),
  /** Time the runner took to load the model (from its `ready` line). */
  loadMs: z.number().nonnegative().nullable(),
  before: BenchBoardState,
  after: BenchBoardState,
  prompts: z.array(BenchPromptResult).max(20),
});
export type BenchDeviceResult = z.infer<typeof BenchDeviceResult>;

export const BenchProgressEvent = z.object({
  kind: z.literal("bench.progress"),
  ts: timestamp,
  runId: BenchRunId,
  completed: z.number().int().nonnegative(),
  total: z.number().int().positive(),
});

export const BenchResultEvent = z.object({
  kind: z.literal("bench.result"),
  ts: timestamp,
  runId: BenchRunId,
  /** ok=false: `error` says why; `result` holds whatever prompts finished before the failure. */
  ok: z.boolean(),
  error: z.string().max(2000).nullable(),
  result: BenchDeviceResult.nullable(),
});

// ------------------------------------------------------------------ results table

/** One row of a results table: a device's run of one prompt. */
export interface BenchTableRow {
  run: string;
  device: string;
  backend: string;
  runnerVersion: string | null;
  model: string | null;
  modelSha256: string | null;
  prompt: string;
  loadMs: number | null;
  ttftMs: number;
  prefillTokS: number;
  decodeTokS: number;
  promptTokens: number;
  generatedTokens: number;
  peakRssBytes: number;
  energyJPerToken: number | null;
  tempBeforeC: number | null;
  tempAfterC: number | null;
  throttleBefore: number | null;
  throttleAfter: number | null;
}

/** Flattens one device's result into table rows, one per prompt. */
export function benchTableRows(run: string, device: string, result: BenchDeviceResult): BenchTableRow[] {
  return result.prompts.map((p) => ({
    run,
    device,
    backend: result.backend,
    runnerVersion: result.runnerVersion,
    model: result.model,
    modelSha256: result.modelSha256,
    prompt: p.promptId,
    loadMs: result.loadMs,
    ttftMs: p.ttftMs,
    prefillTokS: p.prefillTokS,
    decodeTokS: p.decodeTokS,
    promptTokens: p.promptTokens,
    generatedTokens: p.generatedTokens,
    peakRssBytes: p.peakRssBytes,
    energyJPerToken: p.energyJPerToken,
    tempBeforeC: result.before.socTempC,
    tempAfterC: result.after.socTempC,
    throttleBefore: result.before.throttleRaw,
    throttleAfter: result.after.throttleRaw,
  }));
}

// ------------------------------------------------------------------ runtimes side by side

/** One model's run in a runtime comparison: a label ("tiny-gguf 1 (llama.cpp)") and what the device reported. */
export interface SideBySideModel {
  label: string;
  result: BenchDeviceResult | null;
}

/** The metrics a side-by-side table shows, and whether a higher value is better (for speed-up factors). */
export const SIDE_BY_SIDE_METRICS = [
  { key: "ttftMs", title: "TTFT (ms)", higherIsBetter: false, digits: 0 },
  { key: "prefillTokS", title: "Prompt feed (tok/s)", higherIsBetter: true, digits: 2 },
  { key: "decodeTokS", title: "Decode (tok/s)", higherIsBetter: true, digits: 2 },
  { key: "peakRssBytes", title: "Peak RSS (MiB)", higherIsBetter: false, digits: 0 },
  { key: "energyJPerToken", title: "Energy (J/token)", higherIsBetter: false, digits: 3 },
] as const;
export type SideBySideMetric = (typeof SIDE_BY_SIDE_METRICS)[number]["key"];

export interface SideBySideRow {
  /** A prompt id, or "all prompts" for the aggregate row. */
  prompt: string;
  aggregate: boolean;
  /** Per metric, one value per model (null where the model has no value). */
  values: Record<SideBySideMetric, (number | null)[]>;
  /**
   * Per metric, each model against the first ("B vs A"): how many times better, so > 1 is
   * better whichever way the metric points (decode tok/s B ÷ A; TTFT, RSS, energy A ÷ B).
   * null for the first model and where either side is missing or zero.
   */
  speedup: Record<SideBySideMetric, (number | null)[]>;
}

export interface SideBySide {
  models: { label: string; backend: string | null; tempBeforeC: number | null; tempAfterC: number | null }[];
  rows: SideBySideRow[];
}

const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);

/**
 * The models of a runtime comparison side by side: one row per prompt (in the first
 * model's order, then any prompt only a later model has) and an aggregate row (the mean
 * over prompts; peak RSS is the maximum), with each model's factor against the first.
 */
export function sideBySide(models: readonly SideBySideModel[]): SideBySide {
  const prompts: string[] = [];
  for (const m of models) for (const p of m.result?.prompts ?? []) if (!prompts.includes(p.promptId)) prompts.push(p.promptId);
  const factor = (higherIsBetter: boolean, a: number | null, b: number | null): number | null => {
    if (a === null || b === null || a === 0 || b === 0) return null;
    return higherIsBetter ? b / a : a / b;
  };
  const row = (prompt: string, aggregate: boolean, pick: (m: SideBySideModel, key: SideBySideMetric) => number | null): SideBySideRow => {
    const values = {} as SideBySideRow["values"];
    const speedup = {} as SideBySideRow["speedup"];
    for (const metric of SIDE_BY_SIDE_METRICS) {
      const vs = models.map((m) => pick(m, metric.key));
      values[metric.key] = vs;
      speedup[metric.key] = vs.map((v, i) => (i === 0 ? null : factor(metric.higherIsBetter, vs[0] ?? null, v)));
    }
    return { prompt, aggregate, values, speedup };
  };
  const rows = prompts.map((id) =>
    row(id, false, (m, key) => {
      const p = m.result?.prompts.find((x) => x.promptId === id);
      return p ? p[key] : null;
    }),
  );
  rows.push(
    row("all prompts", true, (m, key) => {
      const vs = (m.result?.prompts ?? []).map((p) => p[key]).filter((v): v is number => v !== null);
      if (vs.length === 0) return null;
      return key === "peakRssBytes" ? Math.max(...vs) : mean(vs);
    }),
  );
  return {
    models: models.map((m) => ({
      label: m.label,
      backend: m.result?.backend ?? null,
      tempBeforeC: m.result?.before.socTempC ?? null,
      tempAfterC: m.result?.after.socTempC ?? null,
    })),
    rows,
  };
}
