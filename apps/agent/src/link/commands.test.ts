import { DeviceEvent, MAX_DEVICE_PAYLOAD_BYTES } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { silentLogger } from "../lib/logger.js";
import { CommandDispatcher } from "./commands.js";
import { RecentIds } from "./recent-ids.js";

function setup() {
  const replies: DeviceEvent[] = [];
  const calls: string[] = [];
  const invalid: { json: unknown; reason: string }[] = [];
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
      // Chat commands answer on their chat topic: no command.result.
      "chat.start": async (c) => {
        calls.push(`chat.start:${c.requestId}`);
        return null;
      },
      "chat.cancel": async (c) => {
        calls.push(`chat.cancel:${c.requestId}`);
        return null;
      },
      "bench.run": async (c) => {
        calls.push(`bench.run:${c.runId}`);
        return null;
      },
      "rollout.apply": async (c) => {
        calls.push(`rollout.apply:${c.rolloutId}`);
        return null;
      },
      "rollout.abort": async (c) => {
        calls.push(`rollout.abort:${c.rolloutId}`);
        return { ok: true, message: "aborted" };
      },
      "rollout.rollback": async (c) => {
        calls.push(`rollout.rollback:${c.rolloutId}`);
        return { ok: true, message: "rolled back" };
      },
      "credentials.rotate": async (c) => {
        calls.push(`credentials.rotate:${c.id}`);
        return { ok: true, message: "new password stored" };
      },
    },
    invalid: (json, reason) => {
      const type = (json as { type?: unknown }).type;
      if (type !== "chat.start") return false;
      invalid.push({ json, reason });
      return true;
    },
    reply: (e) => replies.push(DeviceEvent.parse(e)),
    logger: silentLogger,
    clock: new ManualClock(1_700_000_000_000),
  });
  const send = (payload: unknown) => dispatcher.handle(Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)));
  return { replies, calls, invalid, send };
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
    await send({ type: "model.delete", id: "c3", ts: 1 });
    expect(calls).toEqual([]);
    expect(replies[0]).toMatchObject({ commandId: "c2", ok: false });
    expect(replies[0]!.kind === "command.result" && replies[0]!.message).toMatch(/^invalid command: ts: /);
    expect(replies[1]).toMatchObject({
      commandId: "c3",
      ok: false,
      message:
        'unsupported command type "model.delete" (this agent handles: ping, runner.restart, chat.start, chat.cancel, bench.run, rollout.apply, rollout.abort, rollout.rollback, credentials.rotate)',
    });
  });

  const chatStart = (id: string, requestId: string) => ({
    type: "chat.start",
    id,
    ts: 1,
    requestId,
    session: "conv-1",
    messages: [{ role: "user", content: "Hi" }],
    maxNewTokens: 16,
    temperature: 0,
    topP: 1,
  });

  it("hands chat commands to their handlers without a command.result, once per command id", async () => {
    const { replies, calls, send } = setup();
    await send(chatStart("c1", "req-1"));
    await send(chatStart("c1", "req-1")); // re-delivered
    await send({ type: "chat.cancel", id: "c2", ts: 1, requestId: "req-1" });
    expect(calls).toEqual(["chat.start:req-1", "chat.cancel:req-1"]);
    expect(replies).toEqual([]);
  });

  it("hands bench.run to its handler without a command.result, once per command id", async () => {
    const { replies, calls, send } = setup();
    const run = {
      type: "bench.run",
      id: "b1",
      ts: 1,
      runId: "run-1",
      prompts: [{ id: "capital-of-france", text: "The capital of France is" }],
    };
    await send(run);
    await send(run); // re-delivered
    expect(calls).toEqual(["bench.run:run-1"]);
    expect(replies).toEqual([]);
  });

  it("lets the invalid hook answer a malformed command; others still get ok:false", async () => {
    const { replies, calls, invalid, send } = setup();
    await send({ ...chatStart("c1", "req-1"), maxNewTokens: 0 });
    await send({ ...chatStart("c2", "req-2"), topP: undefined, messages: [] });
    await send({ type: "chat.cancel", id: "c3", ts: 1 }); // no requestId: not the hook's
    expect(calls).toEqual([]);
    expect(invalid.map((i) => (i.json as { requestId: string }).requestId)).toEqual(["req-1", "req-2"]);
    expect(invalid[0]!.reason).toMatch(/^invalid command: maxNewTokens: /);
    expect(replies).toEqual([expect.objectContaining({ commandId: "c3", ok: false })]);
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
