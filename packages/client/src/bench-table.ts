/**
 * How benchmark results print, the same everywhere (the dashboard's tables, the CSV and
 * Markdown exports, `orchard bench`): the results columns the reference deployment's
 * Performance table has, RFC 4180 CSV, GitHub Markdown, and the runtime comparison's
 * side-by-side table. The rows themselves (benchTableRows, sideBySide) are data and stay
 * in @orchard/contracts.
 */
import {
  SIDE_BY_SIDE_METRICS,
  type BenchTableRow,
  type RuntimeComparisonDto,
  type SideBySide,
  type SideBySideMetric,
} from "@orchard/contracts";
import { bytesIn } from "@orchard/format";

interface Column {
  key: keyof BenchTableRow;
  title: string;
  /** How a value prints in Markdown (CSV keeps the raw number). */
  format?: (value: number) => string;
}

const fixed = (digits: number) => (v: number) => v.toFixed(digits);
const hex = (v: number) => `0x${v.toString(16)}`;

export const BENCH_COLUMNS: readonly Column[] = [
  { key: "run", title: "Run" },
  { key: "device", title: "Device" },
  { key: "backend", title: "Backend" },
  { key: "runnerVersion", title: "Runner" },
  { key: "model", title: "Model" },
  { key: "modelSha256", title: "Model sha256" },
  { key: "prompt", title: "Prompt" },
  { key: "loadMs", title: "Load (ms)", format: fixed(0) },
  { key: "ttftMs", title: "TTFT (ms)", format: fixed(0) },
  { key: "prefillTokS", title: "Prompt feed (tok/s)", format: fixed(2) },
  { key: "decodeTokS", title: "Decode (tok/s)", format: fixed(2) },
  { key: "promptTokens", title: "Prompt tokens" },
  { key: "generatedTokens", title: "Generated tokens" },
  { key: "peakRssBytes", title: "Peak RSS (MiB)", format: (v) => bytesIn(v, "MiB").toFixed(0) },
  { key: "energyJPerToken", title: "Energy (J/token)", format: fixed(3) },
  { key: "tempBeforeC", title: "SoC °C before", format: fixed(1) },
  { key: "tempAfterC", title: "SoC °C after", format: fixed(1) },
  { key: "throttleBefore", title: "Throttle before", format: hex },
  { key: "throttleAfter", title: "Throttle after", format: hex },
];

function csvCell(value: string | number | null): string {
  if (value === null) return "";
  const s = String(value);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV with a header row; raw numbers (bytes, not MiB), empty cells for "not readable". */
export function benchToCsv(rows: readonly BenchTableRow[]): string {
  const header = BENCH_COLUMNS.map((c) => csvCell(c.key)).join(",");
  const lines = rows.map((r) => BENCH_COLUMNS.map((c) => csvCell(r[c.key])).join(","));
  return [header, ...lines].join("\r\n") + "\r\n";
}

/** A GitHub-flavoured Markdown table; "n/a" where a value was not readable on the device. */
export function benchToMarkdown(rows: readonly BenchTableRow[]): string {
  const cell = (c: Column, r: BenchTableRow) => {
    const v = r[c.key];
    if (v === null) return "n/a";
    const s = typeof v === "number" && c.format ? c.format(v) : String(v);
    return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
  };
  const head = `| ${BENCH_COLUMNS.map((c) => c.title).join(" | ")} |`;
  const rule = `|${BENCH_COLUMNS.map((c) => (c.format ? " ---: " : " --- ")).join("|")}|`;
  return [head, rule, ...rows.map((r) => `| ${BENCH_COLUMNS.map((c) => cell(c, r)).join(" | ")} |`)].join("\n") + "\n";
}

/** A metric's value as the tables print it ("n/a" where missing). */
export function formatSideBySideValue(key: SideBySideMetric, v: number | null): string {
  if (v === null) return "n/a";
  const metric = SIDE_BY_SIDE_METRICS.find((m) => m.key === key)!;
  return key === "peakRssBytes" ? bytesIn(v, "MiB").toFixed(0) : v.toFixed(metric.digits);
}

/** "×2.41"; "n/a" where there is no factor. */
export function formatSpeedup(v: number | null): string {
  return v === null ? "n/a" : `×${v.toFixed(2)}`;
}

/** The side-by-side table in Markdown: a row per prompt and metric, a column per model, factors against the first model. */
export function sideBySideToMarkdown(s: SideBySide): string {
  const esc = (t: string) => t.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const others = s.models.slice(1);
  const head = `| Prompt | Metric | ${s.models.map((m) => esc(m.label)).join(" | ")} |${others.map((m) => ` ${esc(m.label)} vs ${esc(s.models[0]!.label)} |`).join("")}`;
  const rule = `| --- | --- |${s.models.map(() => " ---: |").join("")}${others.map(() => " ---: |").join("")}`;
  const lines: string[] = [];
  for (const r of s.rows) {
    for (const metric of SIDE_BY_SIDE_METRICS) {
      const values = r.values[metric.key].map((v) => formatSideBySideValue(metric.key, v));
      const factors = r.speedup[metric.key].slice(1).map(formatSpeedup);
      lines.push(
        `| ${r.aggregate ? `**${r.prompt}**` : esc(r.prompt)} | ${metric.title} | ${values.join(" | ")} |${factors.map((f) => ` ${f} |`).join("")}`,
      );
    }
  }
  const temp = (v: number | null) => (v === null ? "n/a" : v.toFixed(1));
  lines.push(
    `| **board** | SoC °C before → after | ${s.models.map((m) => `${temp(m.tempBeforeC)} → ${temp(m.tempAfterC)}`).join(" | ")} |${others.map(() => " |").join("")}`,
  );
  return [head, rule, ...lines].join("\n") + "\n";
}

/** The Markdown export: a heading, the side-by-side table, then every result row. */
export function comparisonMarkdown(c: RuntimeComparisonDto, table: SideBySide, rows: readonly BenchTableRow[]): string {
  const status = `${c.state}${c.error ? `: ${c.error}` : ""}`;
  return (
    `# ${c.name}\n\n${c.deviceName}, ${c.promptCount} prompts, up to ${c.maxNewTokens} new tokens each; ${status}\n\n` +
    `## Side by side (factors: how many times better than ${table.models[0]?.label ?? "the first model"})\n\n` +
    `${sideBySideToMarkdown(table)}\n## All results\n\n${benchToMarkdown(rows)}`
  );
}
