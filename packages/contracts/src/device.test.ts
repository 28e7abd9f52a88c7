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
};

describe("telemetry", () => {
  it("accepts a real sample and nulls for sources a machine does not have", () => {
    expect(TelemetryMessage.parse({ samples: [sample] }).samples[0]).toEqual(sample);
    const bare = { ...sample, socTempC: null, throttle: null, cpuPercent: null, diskFreeBytes: null, diskTotalBytes: null };
    expect(TelemetryMessage.safeParse({ samples: [bare] }).success).toBe(true);
  });

  it("rejects impossible values instead of charting them", () => {
    for (const bad of [
      { socTempC: 10_000 },
      { socTempC: Number.NaN },
      { memAvailableBytes: -1 },
      { cpuPercent: 140 },
      { load1: Number.POSITIVE_INFINITY },
      { ts: -5 },
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
