import { describe, expect, it } from "vitest";
import { MQTT_RECONNECT_BACKOFF, backoffDelay } from "./backoff.js";

describe("backoffDelay", () => {
  it("doubles from 1 s and stays at the 30 s cap (MQTT reconnects, no jitter drawn)", () => {
    const delays = Array.from({ length: 9 }, (_, i) => backoffDelay(i, MQTT_RECONNECT_BACKOFF, () => 0));
    expect(delays).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it("jitter only shortens a delay, by at most the jitter fraction", () => {
    expect(backoffDelay(0, MQTT_RECONNECT_BACKOFF, () => 0.999999)).toBe(700);
    expect(backoffDelay(10, MQTT_RECONNECT_BACKOFF, () => 0.5)).toBe(25_500);
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const d = backoffDelay(attempt, MQTT_RECONNECT_BACKOFF);
      const full = Math.min(30_000, 1_000 * 2 ** attempt);
      expect(d).toBeGreaterThanOrEqual(full * 0.7 - 1);
      expect(d).toBeLessThanOrEqual(full);
    }
  });

  it("runner restarts: 1 s, 2 s, 4 s … capped at 60 s without jitter", () => {
    const opts = { initialMs: 1_000, maxMs: 60_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map((a) => backoffDelay(a, opts))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000,
    ]);
  });

  it("rejects a negative or fractional attempt", () => {
    expect(() => backoffDelay(-1, MQTT_RECONNECT_BACKOFF)).toThrow(RangeError);
    expect(() => backoffDelay(1.5, MQTT_RECONNECT_BACKOFF)).toThrow(RangeError);
  });
});
