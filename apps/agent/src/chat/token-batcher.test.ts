import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { TokenBatcher } from "./token-batcher.js";

const T0 = 1_700_000_000_000;

describe("TokenBatcher (50 ms policy, manual clock)", () => {
  it("sends every token at once when they come slower than the interval", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    expect(b.push("Hel")).toEqual({ seq: 0, ts: T0, text: "Hel", count: 1 });
    clock.advance(1250); // 0.8 tok/s on a Pi
    expect(b.push("lo")).toEqual({ seq: 1, ts: T0 + 1250, text: "lo", count: 1 });
    clock.advance(50); // exactly the interval counts as elapsed
    expect(b.push("!")).toEqual({ seq: 2, ts: T0 + 1300, text: "!", count: 1 });
    expect(b.dueAt()).toBeNull();
    expect(b.flush()).toBeNull();
  });

  it("holds tokens that come within the interval and releases them 50 ms after the previous chunk", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    expect(b.push("a")).toMatchObject({ seq: 0, text: "a" }); // the first token never waits
    clock.advance(5);
    expect(b.push("b")).toBeNull();
    expect(b.dueAt()).toBe(T0 + 50);
    expect(b.delayMs()).toBe(45);
    clock.advance(10);
    expect(b.push("c")).toBeNull();
    expect(b.dueAt()).toBe(T0 + 50);
    clock.advance(35); // the timer fires
    expect(b.flush()).toEqual({ seq: 1, ts: T0 + 5, text: "bc", count: 2 });
    // The next token within 50 ms of that flush waits again.
    clock.advance(20);
    expect(b.push("d")).toBeNull();
    expect(b.dueAt()).toBe(T0 + 100);
  });

  it("a token arriving after the due time takes the held ones with it (no timer needed)", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    b.push("a");
    clock.advance(10);
    expect(b.push("b")).toBeNull();
    clock.advance(60); // the timer was late
    expect(b.push("c")).toEqual({ seq: 1, ts: T0 + 10, text: "bc", count: 2 });
  });

  it("counts tokens with empty text (stop and control tokens, held-back UTF-8 bytes)", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    b.push("x");
    b.push("");
    b.push("é");
    b.push("");
    expect(b.flush()).toEqual({ seq: 1, ts: T0, text: "é", count: 3 });
    expect(b.tokens).toBe(4);
    expect(b.chunks).toBe(2);
  });

  it("flush before done sends what is held; seq has no gaps", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    const sent = [b.push("a")];
    for (const t of ["b", "c", "d"]) {
      clock.advance(1);
      sent.push(b.push(t));
    }
    sent.push(b.flush());
    const chunks = sent.filter((c) => c !== null);
    expect(chunks.map((c) => c.seq)).toEqual([0, 1]);
    expect(chunks.map((c) => c.text).join("")).toBe("abcd");
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(4);
  });

  it("cuts a chunk at the size cap even inside the interval", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50, 10);
    b.push("first");
    expect(b.push("12345")).toBeNull();
    expect(b.push("67890")).toEqual({ seq: 1, ts: T0, text: "1234567890", count: 2 });
  });

  it("a wall clock that jumps backwards does not hold tokens, and the timer delay stays within the interval", () => {
    const clock = new ManualClock(T0);
    const b = new TokenBatcher(clock, 50);
    b.push("a");
    clock.advance(-3_600_000);
    expect(b.push("b")).toMatchObject({ seq: 1, text: "b" });
    clock.advance(10);
    expect(b.push("c")).toBeNull();
    clock.advance(-3_600_000);
    expect(b.delayMs()).toBe(50);
    clock.advance(3_600_000_000);
    expect(b.delayMs()).toBe(0);
  });
});
