import { describe, expect, it } from "vitest";
import { doneStats, parseProcStatus, plannedKeep, TextHoldback } from "./plan.ts";

describe("plannedKeep", () => {
  it("keeps the common prefix of the same session, leaving one token to feed", () => {
    expect(plannedKeep([1, 2, 3], [1, 2, 3, 4, 5], true)).toBe(3);
    expect(plannedKeep([1, 2, 9, 9], [1, 2, 3, 4], true)).toBe(2);
    expect(plannedKeep([1, 2, 3], [1, 2, 3], true)).toBe(2);
    expect(plannedKeep([1, 2, 3, 4, 5], [1, 2, 3], true)).toBe(2);
  });

  it("keeps nothing for another session, no session or an empty cache", () => {
    expect(plannedKeep([1, 2, 3], [1, 2, 3, 4], false)).toBe(0);
    expect(plannedKeep([], [1, 2, 3], true)).toBe(0);
    expect(plannedKeep([7], [1, 2], true)).toBe(0);
  });
});

/** A byte-level fake engine: token n is the byte n, decoded lossily as llama.cpp's strings are. */
const bytesDetokenize = (tokens: readonly number[]) => Buffer.from(tokens).toString("utf8");

describe("TextHoldback", () => {
  it("holds back the bytes of an unfinished character until it completes", () => {
    const h = new TextHoldback(bytesDetokenize);
    const euro = [...Buffer.from("€", "utf8")];
    expect(h.push(0x61)).toBe("a");
    expect(h.push(euro[0]!)).toBe("");
    expect(h.push(euro[1]!)).toBe("");
    expect(h.heldTokens).toBe(2);
    expect(h.push(euro[2]!)).toBe("€");
    expect(h.heldTokens).toBe(0);
  });

  it("releases bytes that can never form a character as U+FFFD", () => {
    const h = new TextHoldback(bytesDetokenize);
    const out = [0xe2, 0xe2, 0xe2, 0xe2].map((b) => h.push(b));
    expect(out.slice(0, 3)).toEqual(["", "", ""]);
    expect(out[3]).toContain("\uFFFD");
    expect(h.heldTokens).toBe(0);
  });

  it("passes the emitted tokens as context to the detokenizer", () => {
    const seen: number[][] = [];
    const h = new TextHoldback((tokens, last) => {
      seen.push([...last]);
      return bytesDetokenize(tokens);
    });
    h.push(0x61);
    h.push(0x62);
    expect(seen).toEqual([[], [0x61]]);
  });
});

describe("doneStats", () => {
  it("derives the timings and rates as docs/runner.md defines them", () => {
    const stats = doneStats({ start: 100, prefillStart: 110, firstToken: 160, lastToken: 260, end: 261 }, 20, 11);
    expect(stats).toEqual({ ttft_ms: 60, prefill_ms: 50, decode_ms: 100, prefill_tok_s: 400, decode_tok_s: 100 });
  });

  it("reports zero rates when nothing was generated", () => {
    const stats = doneStats({ start: 0, prefillStart: 5, firstToken: null, lastToken: null, end: 30 }, 10, 0);
    expect(stats).toEqual({ ttft_ms: 0, prefill_ms: 25, decode_ms: 0, prefill_tok_s: 0, decode_tok_s: 0 });
  });
});

describe("parseProcStatus", () => {
  it("reads VmRSS and VmHWM in bytes", () => {
    expect(parseProcStatus("Name:\tnode\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")).toEqual({ rss: 1024 * 1024, peak: 2048 * 1024 });
    expect(parseProcStatus("Name:\tnode\n")).toEqual({ rss: null, peak: null });
  });
});
