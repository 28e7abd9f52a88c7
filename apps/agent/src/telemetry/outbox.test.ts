import type { TelemetryMessage, TelemetrySample } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../lib/logger.js";
import { TelemetryOutbox } from "./outbox.js";

function sample(ts: number): TelemetrySample {
  return {
    ts,
    cpuPercent: 1,
    load1: 0,
    load5: 0,
    load15: 0,
    memTotalBytes: 1,
    memAvailableBytes: 1,
    swapTotalBytes: 0,
    swapUsedBytes: 0,
    diskTotalBytes: null,
    diskFreeBytes: null,
    socTempC: null,
    throttle: null,
    runnerRssBytes: null,
    tokensPerSecond: null,
    prefillTokensPerSecond: null,
    generatedTokens: null,
    activeGenerations: null,
    cpuFreqHz: null,
    boardPowerW: null,
  };
}

/** A link that is up or down, recording what it published. */
function link() {
  const state = { connected: false, sent: [] as TelemetryMessage[], failNext: false };
  return {
    state,
    publish: async (m: TelemetryMessage) => {
      if (!state.connected || state.failNext) {
        state.failNext = false;
        throw new Error("not connected");
      }
      state.sent.push(m);
    },
    isConnected: () => state.connected,
  };
}

describe("TelemetryOutbox", () => {
  it("publishes each sample at once while connected", async () => {
    const l = link();
    l.state.connected = true;
    const box = new TelemetryOutbox({ publish: l.publish, isConnected: l.isConnected, logger: silentLogger });
    box.add(sample(1));
    await box.flush();
    box.add(sample(2));
    await box.flush();
    expect(l.state.sent.map((m) => m.samples.map((s) => s.ts))).toEqual([[1], [2]]);
    expect(box.buffered).toBe(0);
    expect(box.lastPublishedAt).toBe(2);
  });

  it("keeps samples taken while disconnected and publishes them in order, in batches of at most 100", async () => {
    const l = link();
    const box = new TelemetryOutbox({ publish: l.publish, isConnected: l.isConnected, logger: silentLogger });
    for (let ts = 1; ts <= 250; ts += 1) {
      box.add(sample(ts));
      await box.flush();
    }
    expect(l.state.sent).toEqual([]);
    expect(box.buffered).toBe(250);
    l.state.connected = true;
    await box.flush();
    expect(l.state.sent.map((m) => m.samples.length)).toEqual([100, 100, 50]);
    expect(l.state.sent.flatMap((m) => m.samples.map((s) => s.ts))).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(box.buffered).toBe(0);
    expect(box.dropped).toBe(0);
  });

  it("is bounded: a long outage drops (and counts) the oldest samples", async () => {
    const l = link();
    const box = new TelemetryOutbox({ publish: l.publish, isConnected: l.isConnected, logger: silentLogger, capacity: 720 });
    for (let ts = 1; ts <= 1000; ts += 1) box.add(sample(ts));
    expect(box.buffered).toBe(720);
    expect(box.dropped).toBe(280);
    l.state.connected = true;
    await box.flush();
    const sent = l.state.sent.flatMap((m) => m.samples.map((s) => s.ts));
    expect(sent[0]).toBe(281);
    expect(sent.at(-1)).toBe(1000);
    expect(sent).toHaveLength(720);
  });

  it("keeps a batch whose publish failed and sends it on the next flush", async () => {
    const l = link();
    l.state.connected = true;
    l.state.failNext = true;
    const box = new TelemetryOutbox({ publish: l.publish, isConnected: l.isConnected, logger: silentLogger });
    box.add(sample(1));
    await box.flush();
    expect(box.buffered).toBe(1);
    box.add(sample(2));
    await box.flush();
    expect(l.state.sent.flatMap((m) => m.samples.map((s) => s.ts))).toEqual([1, 2]);
  });

  it("removes exactly the batch in flight, even when the full buffer dropped part of it meanwhile", async () => {
    let release!: () => void;
    const sent: number[][] = [];
    let connected = true;
    const box = new TelemetryOutbox({
      capacity: 3,
      batchSize: 2,
      isConnected: () => connected,
      logger: silentLogger,
      publish: async (m) => {
        sent.push(m.samples.map((s) => s.ts));
        if (sent.length === 1) await new Promise<void>((r) => (release = r));
      },
    });
    connected = false;
    [1, 2, 3].forEach((ts) => box.add(sample(ts)));
    connected = true;
    const flushing = box.flush(); // sends [1, 2] and waits
    box.add(sample(4)); // full: drops 1, which is in flight
    release();
    await flushing;
    expect(sent).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(box.buffered).toBe(0);
  });
});
