import { describe, expect, it } from "vitest";
import { decodeThrottle, DeviceCommand, DeviceStatus, TelemetryMessage, type TelemetrySample } from "./device.ts";

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
