import { describe, expect, it } from "vitest";
import { CoalescedAnnouncer, KeyedSerial } from "./keyed-work.ts";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("KeyedSerial", () => {
  it("runs one key's work in order, other keys alongside, and carries on after a failure", async () => {
    const errors: string[] = [];
    const q = new KeyedSerial((key, err) => errors.push(`${key}: ${err.message}`));
    const log: string[] = [];
    const step = (name: string, ms: number) => async () => {
      log.push(`${name} start`);
      await tick(ms);
      log.push(`${name} end`);
    };
    q.enqueue("a", step("a1", 20));
    q.enqueue("a", async () => {
      throw new Error("boom");
    });
    q.enqueue("a", step("a2", 0));
    q.enqueue("b", step("b1", 0));
    await q.idle();
    expect(log.indexOf("a1 end")).toBeLessThan(log.indexOf("a2 start"));
    expect(log.indexOf("b1 end")).toBeLessThan(log.indexOf("a1 end")); // b did not wait for a
    expect(errors).toEqual(["a: boom"]);
  });

  it("settle waits for work queued while it waits; then runs after each piece", async () => {
    const q = new KeyedSerial(() => undefined);
    const done: string[] = [];
    q.enqueue("k", async () => {
      await tick(5);
      q.enqueue("k", async () => void done.push("second"), { then: () => done.push("then") });
      done.push("first");
    });
    await q.settle("k");
    expect(done).toEqual(["first", "second", "then"]);
  });
});

describe("CoalescedAnnouncer", () => {
  it("announces each changed key once per window, and not a cancelled one", async () => {
    const announced: string[] = [];
    const a = new CoalescedAnnouncer(
      20,
      async (key) => void announced.push(key),
      () => undefined,
    );
    for (let i = 0; i < 10; i++) a.schedule("run-1");
    a.schedule("run-2");
    a.schedule("run-3");
    a.cancel("run-3");
    await tick(60);
    expect(announced).toEqual(["run-1", "run-2"]);
    a.schedule("run-1");
    await a.flush();
    expect(announced).toEqual(["run-1", "run-2", "run-1"]);
    a.close();
  });
});
