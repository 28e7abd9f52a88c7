import { benchTableRows, type BenchDeviceResult } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { parseCsv } from "../../../test/support/csv.ts";
import { BENCH_COLUMNS, benchToCsv, benchToMarkdown } from "./bench-table.ts";

const result: BenchDeviceResult = {
  backend: "sim",
  runnerVersion: "0.1.0",
  model: 'sim, "quoted"',
  modelSha256: null,
  loadMs: 12,
  before: { socTempC: 51.5, throttleRaw: 0, cpuFreqHz: 2.4e9, boardPowerW: 3.1 },
  after: { socTempC: 63, throttleRaw: 0x50005, cpuFreqHz: 1.5e9, boardPowerW: null },
  prompts: [
    {
      promptId: "capital-of-france",
      promptTokens: 14,
      generatedTokens: 8,
      ttftMs: 1234.5,
      prefillTokS: 11.3,
      decodeTokS: 0.87,
      totalMs: 9500,
      peakRssBytes: 5 * 2 ** 30,
      energyJPerToken: 7.25,
      finishReason: "stop",
      textPreview: "Paris.",
    },
    {
      promptId: "short-answer",
      promptTokens: 20,
      generatedTokens: 64,
      ttftMs: 2000,
      prefillTokS: 10,
      decodeTokS: 0.9,
      totalMs: 73000,
      peakRssBytes: 5 * 2 ** 30,
      energyJPerToken: null,
      finishReason: "length",
      textPreview: "A small computer…",
    },
  ],
};

describe("results table exports", () => {
  const rows = benchTableRows("Run A", "pi-1", result);

  it("writes CSV that parses back to the same values, with empty cells for unreadable ones", () => {
    const csv = benchToCsv(rows);
    const parsed = parseCsv(csv);
    expect(parsed[0]).toEqual(BENCH_COLUMNS.map((c) => c.key));
    expect(parsed).toHaveLength(3);
    const col = (name: string) => parsed[0]!.indexOf(name);
    expect(parsed[1]![col("model")]).toBe('sim, "quoted"');
    expect(Number(parsed[1]![col("decodeTokS")])).toBe(0.87);
    expect(Number(parsed[1]![col("peakRssBytes")])).toBe(5 * 2 ** 30);
    expect(parsed[1]![col("modelSha256")]).toBe("");
    expect(parsed[2]![col("energyJPerToken")]).toBe("");
  });

  it("writes a Markdown table with units and n/a for unreadable values", () => {
    const md = benchToMarkdown(rows).trim().split("\n");
    expect(md).toHaveLength(4);
    expect(md[0]).toContain("| Decode (tok/s) |");
    expect(md[2]).toContain("| 0.87 |");
    expect(md[2]).toContain("| 5120 |"); // MiB
    expect(md[2]).toContain("| 0x50005 |");
    expect(md[3]).toContain("| n/a |");
    for (const line of md) expect(line.split(/(?<!\\)\|/).length).toBe(BENCH_COLUMNS.length + 2);
  });
});
