import { describe, expect, it } from "vitest";
import { ChatQueue } from "./chat-queue.js";

const job = (requestId: string) => ({ requestId });

describe("ChatQueue", () => {
  it("holds up to its limit, running one included, and says each one's position", () => {
    const q = new ChatQueue(3);
    expect(q.add(job("a"))).toBe(0); // runs now
    expect(q.add(job("b"))).toBe(1);
    expect(q.add(job("c"))).toBe(2);
    expect(q.full).toBe(true);
    expect(q.add(job("d"))).toBeNull();
    expect(q.size).toBe(3);
    expect(q.position("c")).toBe(2);
    expect(q.position("d")).toBeNull();
  });

  it("is first in, first out; those behind move up when one leaves", () => {
    const q = new ChatQueue(4);
    for (const id of ["a", "b", "c", "d"]) q.add(job(id));
    expect(q.front()?.requestId).toBe("a");
    q.remove("a"); // finished
    expect(q.front()?.requestId).toBe("b");
    expect(q.entries().map(([p, j]) => `${p}:${j.requestId}`)).toEqual(["0:b", "1:c", "2:d"]);
    expect(q.add(job("e"))).toBe(3);
  });

  it("cancelling a queued chat removes it from the middle", () => {
    const q = new ChatQueue(4);
    for (const id of ["a", "b", "c"]) q.add(job(id));
    expect(q.remove("b")).toEqual({ requestId: "b" });
    expect(q.remove("b")).toBeUndefined();
    expect(q.position("c")).toBe(1);
    expect(q.has("b")).toBe(false);
  });

  it("drains front first, refuses a request id it already holds, and a limit below 1", () => {
    const q = new ChatQueue(2);
    q.add(job("a"));
    expect(() => q.add(job("a"))).toThrow(/already queued/);
    q.add(job("b"));
    expect(q.drain().map((j) => j.requestId)).toEqual(["a", "b"]);
    expect(q.size).toBe(0);
    expect(() => new ChatQueue(0)).toThrow(RangeError);
  });
});
