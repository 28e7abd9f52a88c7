import { describe, expect, it } from "vitest";
import { RingBuffer } from "./ring-buffer.js";

describe("RingBuffer", () => {
  it("keeps items in insertion order", () => {
    const b = new RingBuffer<number>(5);
    [1, 2, 3].forEach((n) => b.push(n));
    expect(b.toArray()).toEqual([1, 2, 3]);
    expect(b.size).toBe(3);
    expect(b.dropped).toBe(0);
  });

  it("is bounded: drops the oldest and counts every drop", () => {
    const b = new RingBuffer<number>(3);
    const evicted = [1, 2, 3, 4, 5, 6, 7].map((n) => b.push(n));
    expect(evicted).toEqual([undefined, undefined, undefined, 1, 2, 3, 4]);
    expect(b.toArray()).toEqual([5, 6, 7]);
    expect(b.size).toBe(3);
    expect(b.dropped).toBe(4);
  });

  it("peeks without removing and discards from the oldest end, across the wrap-around", () => {
    const b = new RingBuffer<number>(4);
    for (let n = 1; n <= 6; n += 1) b.push(n); // wraps: holds 3,4,5,6
    expect(b.peek(2)).toEqual([3, 4]);
    expect(b.size).toBe(4);
    b.discard(3);
    expect(b.toArray()).toEqual([6]);
    b.push(7);
    b.push(8);
    expect(b.peek(10)).toEqual([6, 7, 8]);
    b.discard(99);
    expect(b.size).toBe(0);
    expect(b.peek(1)).toEqual([]);
    expect(b.dropped).toBe(2);
  });

  it("holds 720 samples in order and drops only the excess", () => {
    const b = new RingBuffer<number>(720);
    for (let n = 0; n < 1000; n += 1) b.push(n);
    const all = b.toArray();
    expect(all).toHaveLength(720);
    expect(all[0]).toBe(280);
    expect(all.at(-1)).toBe(999);
    expect(all.every((v, i) => i === 0 || v === all[i - 1]! + 1)).toBe(true);
    expect(b.dropped).toBe(280);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
    expect(() => new RingBuffer(2.5)).toThrow(RangeError);
  });
});
