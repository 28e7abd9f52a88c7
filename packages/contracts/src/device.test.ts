import { describe, expect, it } from "vitest";
import { decodeThrottle, DeviceCommand, DeviceEvent, DeviceStatus, TelemetryMessage, type TelemetrySample } from "./device.ts";
// Through the index (not ./primitives.ts), so a missing export fails one assertion, not the whole file.
import * as contracts from "./index.ts";

const sample: TelemetrySample = {
  ts: 1_700_000_000_000,
  cpuPercent: 12.5,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  memTotalBytes: 8e9,
  memAvailableBytes: 6e9,
  swapTotalBytes: 0,
  swapUsedBytes: 0,
  diskTotalBytes: 64e9,
  diskFreeBytes: 20e9,
  socTempC: 55.2,
  throttle: decodeThrottle(0),
  runnerRssBytes: 123_456,
  tokensPerSecond: null,
  prefillTokensPerSecond: null,
  generatedTokens: null,
  activeGenerations: null,
  cpuFreqHz: null,
  boardPowerW: null,
};

describe("telemetry", () => {
  it("accepts a real sample and nulls for sources a machine does not have", () => {
    expect(TelemetryMessage.parse({ samples: [sample] }).samples[0]).toEqual(sample);
    const bare = { ...sample, socTempC: null, throttle: null, cpuPercent: null, diskFreeBytes: null, diskTotalBytes: null };
    expect(TelemetryMessage.safeParse({ samples: [bare] }).success).toBe(true);
  });

  it("reads a sample from an agent that predates the throughput fields as nulls", () => {
    const older: Record<string, unknown> = { ...sample };
    for (const k of ["prefillTokensPerSecond", "generatedTokens", "activeGenerations", "cpuFreqHz", "boardPowerW"]) delete older[k];
    expect(TelemetryMessage.parse({ samples: [older] }).samples[0]).toEqual(sample);
    const full = { ...sample, prefillTokensPerSecond: 31.5, generatedTokens: 6, activeGenerations: 2, cpuFreqHz: 2.4e9, boardPowerW: 6.8 };
    expect(TelemetryMessage.parse({ samples: [full] }).samples[0]).toEqual(full);
  });

  it("rejects impossible values instead of charting them", () => {
    for (const bad of [
      { socTempC: 10_000 },
      { socTempC: Number.NaN },
      { memAvailableBytes: -1 },
      { cpuPercent: 140 },
      { load1: Number.POSITIVE_INFINITY },
      { ts: -5 },
      { boardPowerW: 1_000 },
      { boardPowerW: -1 },
      { cpuFreqHz: 2.5 },
      { generatedTokens: -3 },
      { prefillTokensPerSecond: Number.NaN },
    ]) {
      expect(TelemetryMessage.safeParse({ samples: [{ ...sample, ...bad }] }).success, JSON.stringify(bad)).toBe(false);
    }
    expect(TelemetryMessage.safeParse({ samples: [] }).success).toBe(false);
  });
});

describe("decodeThrottle", () => {
  it("decodes vcgencmd get_throttled bits", () => {
    const flags = decodeThrottle(0x50005);
    expect(flags).toMatchObject({
      raw: 0x50005,
      underVoltage: true,
      armFreqCapped: false,
      throttled: true,
      softTempLimit: false,
      underVoltageOccurred: true,
      armFreqCappedOccurred: false,
      throttledOccurred: true,
      softTempLimitOccurred: false,
    });
    expect(Object.values(decodeThrottle(0)).filter((v) => v === true)).toHaveLength(0);
  });
});

describe("status and commands", () => {
  it("accepts the last will, which has no timestamp", () => {
    expect(DeviceStatus.parse({ state: "offline", reason: "lost" })).toEqual({ state: "offline", reason: "lost" });
  });

  it("rejects an online status without runner information", () => {
    expect(DeviceStatus.safeParse({ state: "online", ts: 1, agentVersion: "0.1.0", hostname: "pi", arch: "arm64" }).success).toBe(false);
  });

  it("requires an id on every command", () => {
    expect(DeviceCommand.safeParse({ type: "ping", ts: 1 }).success).toBe(false);
    expect(DeviceCommand.parse({ type: "runner.restart", id: "c1", ts: 1 }).type).toBe("runner.restart");
  });
});

describe("what a device may store (timestamps, NUL)", () => {
  const runner = {
    state: "ready",
    backend: "sim",
    model: "sim",
    pid: 1,
    rssBytes: 1,
    maxContext: 2048,
    loadMs: 1,
    restarts: 0,
    lastError: null,
    version: null,
  };
  const exit = { kind: "runner.exit", ts: 1_700_000_000_000, code: 1, signal: null, stderrTail: "bye", restartInMs: 1000 };
  const online = {
    state: "online",
    ts: 1_700_000_000_000,
    agentVersion: "0.1.0",
    hostname: "pi",
    arch: "arm64",
    runner,
    activeModel: null,
  };

  it("refuses a timestamp that no date can hold (ts 9e15 passes Number but not Date), at every device message", () => {
    expect(new Date(9e15).getTime()).toBeNaN(); // why it matters: the writer turns ts into a Date
    expect(DeviceEvent.safeParse(exit).success).toBe(true);
    expect(DeviceEvent.safeParse({ ...exit, ts: 9e15 }).success).toBe(false);
    expect(DeviceEvent.safeParse({ ...exit, ts: contracts.MAX_TIMESTAMP_MS }).success).toBe(false);
    expect(DeviceEvent.safeParse({ ...exit, ts: contracts.MAX_TIMESTAMP_MS - 1 }).success).toBe(true);
    expect(DeviceEvent.safeParse({ kind: "bench.progress", ts: 9e15, runId: "r1", completed: 0, total: 1 }).success).toBe(false);
    // Whatever else a rollout report carries, its ts is checked too.
    const rollout = DeviceEvent.safeParse({ kind: "rollout.state", ts: 9e15 });
    expect(rollout.error?.issues.some((i) => i.path.join(".") === "ts")).toBe(true);
    expect(DeviceStatus.safeParse({ ...online, ts: 9e15 }).success).toBe(false);
    expect(DeviceStatus.safeParse({ state: "offline", reason: "shutdown", ts: 9e15 }).success).toBe(false);
    expect(TelemetryMessage.safeParse({ samples: [{ ...sample, ts: 9e15 }] }).success).toBe(false);
    // A Pi whose clock is not set yet (1970) still reports: only impossible dates are refused.
    expect(DeviceEvent.safeParse({ ...exit, ts: 10_000 }).success).toBe(true);
    expect(contracts.Timestamp.safeParse(1.5).success).toBe(false);
  });

  it("refuses a NUL character in any string a device sends to be stored, and says where", () => {
    const refused = (r: { success: boolean; error?: { issues: { path: PropertyKey[]; message: string }[] } }) => {
      expect(r.success).toBe(false);
      return `${r.error!.issues[0]!.path.join(".")}: ${r.error!.issues[0]!.message}`;
    };
    expect(refused(DeviceEvent.safeParse({ ...exit, stderrTail: "fatal\u0000garbage" }))).toMatch(/^stderrTail: .*NUL/);
    expect(refused(DeviceStatus.safeParse({ ...online, hostname: "pi\u0000" }))).toMatch(/^hostname: .*NUL/);
    expect(refused(DeviceStatus.safeParse({ ...online, runner: { ...runner, lastError: "x\u0000" } }))).toMatch(/^runner\.lastError: /);
    expect(refused(DeviceEvent.safeParse({ kind: "runner.state", ts: 1_700_000_000_000, runner: { ...runner, model: "\u0000" } }))).toMatch(
      /^runner\.model: /,
    );
    expect(
      refused(
        DeviceEvent.safeParse({ kind: "bench.result", ts: 1_700_000_000_000, runId: "r1", ok: false, error: "e\u0000", result: null }),
      ),
    ).toMatch(/^error: /);
    // Other control characters are text a runner may print; they store fine.
    expect(DeviceEvent.safeParse({ ...exit, stderrTail: "a\tb\u0001\u001b[0m" }).success).toBe(true);
    expect(contracts.noNul.safeParse("a\u0000").success).toBe(false);
  });
});
