import { DeviceEvent, MAX_DEVICE_PAYLOAD_BYTES } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { silentLogger } from "../lib/logger.js";
import { CommandDispatcher } from "./commands.js";
import { RecentIds } from "./recent-ids.js";

function setup() {
  const replies: DeviceEvent[] = [];
  const calls: string[] = [];
  const dispatcher = new CommandDispatcher({
    handlers: {
      ping: async (c) => {
        calls.push(`ping:${c.id}`);
        return { ok: true, message: "pong" };
      },
      "runner.restart": async (c) => {
        calls.push(`restart:${c.id}`);
        throw new Error("runner binary missing");
      },
    },
    reply: (e) => replies.push(DeviceEvent.parse(e)),
    logger: silentLogger,
    clock: new ManualClock(1_700_000_000_000),
  });
  const send = (payload: unknown) => dispatcher.handle(Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)));
  return { replies, calls, send };
}

describe("CommandDispatcher", () => {
  it("answers ping with a command.result", async () => {
    const { replies, send } = setup();
    await send({ type: "ping", id: "c1", ts: 1 });
    expect(replies).toEqual([{ kind: "command.result", ts: 1_700_000_000_000, commandId: "c1", ok: true, message: "pong" }]);
  });

  it("runs a re-delivered command id only once", async () => {
    const { replies, calls, send } = setup();
    await send({ type: "ping", id: "c1", ts: 1 });
    await send({ type: "ping", id: "c1", ts: 1 });
    expect(calls).toEqual(["ping:c1"]);
    expect(replies).toHaveLength(1);
  });

  it("answers a handler failure with ok:false and its reason", async () => {
    const { replies, send } = setup();
    await send({ type: "runner.restart", id: "r1", ts: 1 });
    expect(replies[0]).toMatchObject({ commandId: "r1", ok: false, message: "runner.restart failed: runner binary missing" });
  });

  it("answers an invalid command that carries an id with ok:false", async () => {
    const { replies, calls, send } = setup();
    await send({ type: "ping", id: "c2" }); // no ts
    await send({ type: "rollout.apply", id: "c3", ts: 1 });
    expect(calls).toEqual([]);
    expect(replies[0]).toMatchObject({ commandId: "c2", ok: false });
    expect(replies[0]!.kind === "command.result" && replies[0]!.message).toMatch(/^invalid command: ts: /);
    expect(replies[1]).toMatchObject({
      commandId: "c3",
      ok: false,
      message: 'unsupported command type "rollout.apply" (this agent handles: ping, runner.restart)',
    });
  });

  it("logs and drops what cannot be answered: not JSON, no id, unusable id, too large", async () => {
    const { replies, calls, send } = setup();
    await send("{not json");
    await send({ type: "ping", ts: 1 });
    await send({ type: "ping", id: "x".repeat(65), ts: 1 });
    await send({ type: "ping", id: 42, ts: 1 });
    await send({ type: "ping", id: "big", ts: 1, pad: "x".repeat(MAX_DEVICE_PAYLOAD_BYTES) });
    expect(calls).toEqual([]);
    expect(replies).toEqual([]);
  });
});

describe("RecentIds", () => {
  it("remembers the last N ids only", () => {
    const ids = new RecentIds(3);
    expect(["a", "b", "c", "a"].map((id) => ids.add(id))).toEqual([true, true, true, false]);
    ids.add("d"); // forgets a
    expect(ids.has("a")).toBe(false);
    expect(ids.add("a")).toBe(true);
    expect(ids.size).toBe(3);
  });
});
