import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { parseRetryAfter } from "./download.js";
import { ProgressMeter, type ProgressSnapshot } from "./progress.js";

const MB = 1_000_000;

describe("ProgressMeter", () => {
  it("reports at the start, about every 1 %, and at the end, with rate and ETA", () => {
    const clock = new ManualClock();
    const seen: ProgressSnapshot[] = [];
    const meter = new ProgressMeter({ total: 100 * MB, done: 0, clock, emit: (p) => seen.push(p) });
    expect(seen).toEqual([{ bytesDone: 0, bytesTotal: 100 * MB, rateBps: null, etaSeconds: null }]);
    // 100 KB steps every 25 ms (4 MB/s): a report per 1 MB (1 %), not per step.
    for (let i = 0; i < 100; i += 1) {
      clock.advance(25);
      meter.add(100_000);
    }
    expect(seen.map((p) => p.bytesDone)).toEqual([0, 1 * MB, 2 * MB, 3 * MB, 4 * MB, 5 * MB, 6 * MB, 7 * MB, 8 * MB, 9 * MB, 10 * MB]);
    expect(seen.at(-1)!.rateBps).toBeCloseTo(4 * MB, -3);
    expect(seen.at(-1)!.etaSeconds).toBeCloseTo(22.5, 1);
  });

  it("reports every 2 s when the bytes trickle, and never more often than the minimum interval", () => {
    const clock = new ManualClock();
    const seen: ProgressSnapshot[] = [];
    const meter = new ProgressMeter({ total: 1_000 * MB, done: 200 * MB, clock, emit: (p) => seen.push(p) });
    for (let i = 0; i < 10; i += 1) {
      clock.advance(500);
      meter.add(1_000); // far under 1 %
    }
    expect(seen.map((p) => p.bytesDone)).toEqual([200 * MB, 200 * MB + 4_000, 200 * MB + 8_000]);
    const fast = new ProgressMeter({ total: 100, done: 0, clock, emit: (p) => seen.push(p), minIntervalMs: 250 });
    seen.length = 0;
    for (let i = 0; i < 50; i += 1) fast.add(2); // 2 % each, all at the same instant
    expect(seen).toEqual([]);
    fast.finish();
    expect(seen.map((p) => p.bytesDone)).toEqual([100]);
    expect(seen[0]!.etaSeconds).toBe(0);
  });

  it("a restarted file takes its bytes back", () => {
    const clock = new ManualClock();
    const seen: ProgressSnapshot[] = [];
    const meter = new ProgressMeter({ total: 10, done: 6, clock, emit: (p) => seen.push(p), minIntervalMs: 0 });
    meter.add(-6);
    expect(meter.done).toBe(0);
    meter.add(50);
    expect(meter.done).toBe(10);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates; null for anything else", () => {
    expect(parseRetryAfter("5")).toBe(5000);
    expect(parseRetryAfter(" 0 ")).toBe(0);
    const now = Date.parse("2025-01-01T00:00:00Z");
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:00:07 GMT", now)).toBe(7000);
    expect(parseRetryAfter("Tue, 31 Dec 2024 00:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
  });
});
