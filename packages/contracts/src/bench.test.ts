import { describe, expect, it } from "vitest";
import { BENCH_STANDARD_PROMPTS, benchTableRows, type BenchDeviceResult } from "./bench.ts";
import { DeviceCommand, DeviceEvent } from "./device.ts";

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

describe("bench contract", () => {
  it("starts the standard prompt set with the reference deployment's prompt", () => {
    expect(BENCH_STANDARD_PROMPTS[0]).toEqual({ id: "capital-of-france", text: "The capital of France is" });
    const cmd = DeviceCommand.parse({ type: "bench.run", id: "c1", ts: 1, runId: "run_1", prompts: BENCH_STANDARD_PROMPTS });
    expect(cmd).toMatchObject({ type: "bench.run", maxNewTokens: 64 });
  });

  it("refuses malformed commands and results", () => {
    expect(DeviceCommand.safeParse({ type: "bench.run", id: "c1", ts: 1, runId: "../x", prompts: BENCH_STANDARD_PROMPTS }).success).toBe(
      false,
    );
    expect(DeviceCommand.safeParse({ type: "bench.run", id: "c1", ts: 1, runId: "r", prompts: [] }).success).toBe(false);
    const event = { kind: "bench.result", ts: 1, runId: "r", ok: true, error: null, result };
    expect(DeviceEvent.parse(event)).toEqual(event);
    const bad = { ...event, result: { ...result, prompts: [{ ...result.prompts[0], decodeTokS: -1 }] } };
    expect(DeviceEvent.safeParse(bad).success).toBe(false);
  });
});

describe("results table", () => {
  const rows = benchTableRows("Run A", "pi-1", result);

  it("has one row per prompt with the device's before/after state", () => {
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({
      device: "pi-1",
      prompt: "capital-of-france",
      tempBeforeC: 51.5,
      tempAfterC: 63,
      throttleAfter: 0x50005,
    });
  });
});
