/**
 * Chat end to end with real processes: the server (embedded broker, PGlite), two
 * agents with real `orchard-runner --backend sim` runners, a browser's socket.io
 * channel, and the dashboard's tRPC API. The sim runner decodes at a fixed rate, so
 * "stop within one token" and "error within a few seconds" are about behaviour,
 * measured in tokens and bounded waits, not speed.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { ChatTokensEvent, ConversationMessageDto } from "@orchard/contracts";
import {
  connectSocket,
  enrollAgent,
  login,
  removeDir,
  startServer,
  waitFor,
  type FleetSocket,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";

let server: TestServer;
let fast: TestAgent; // 400 tok/s, default queue
let slow: TestAgent; // 20 tok/s, queue of 1
let socket: FleetSocket;

interface Watched {
  tokens: ChatTokensEvent[];
  done: ConversationMessageDto[];
  errors: { code: string; message: string }[];
}

function watch(s: FleetSocket, conversationId: string): Watched {
  const w: Watched = { tokens: [], done: [], errors: [] };
  s.emit("chat:watch", conversationId);
  s.on("chat:tokens", (e) => e.conversationId === conversationId && w.tokens.push(e));
  s.on("chat:done", (e) => e.conversationId === conversationId && w.done.push(e.message));
  s.on("chat:error", (e) => e.conversationId === conversationId && w.errors.push(e));
  return w;
}

async function ready(agent: TestAgent) {
  await waitFor(`${agent.name} ready`, async () => {
    const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
    return d?.online && d.runner?.state === "ready";
  });
}

beforeAll(async () => {
  server = await startServer();
  fast = await enrollAgent(server, "chat-fast");
  slow = await enrollAgent(server, "chat-slow");
  fast.start(["--runner-arg=--sim-decode-tok-s=400", "--runner-arg=--sim-prefill-tok-s=2000"]);
  slow.start(["--runner-arg=--sim-decode-tok-s=20", "--runner-arg=--sim-prefill-tok-s=2000", "--chat-queue", "1"]);
  await ready(fast);
  await ready(slow);
  socket = await connectSocket(server, await login(server));
});

afterAll(async () => {
  socket?.disconnect();
  for (const a of [fast, slow]) await a?.proc?.stop();
  await server?.stop();
  for (const a of [fast, slow]) if (a) await removeDir(a.dataDir);
  if (server) await removeDir(server.dataDir);
});

describe("chat through the dashboard API", () => {
  it("streams tokens complete and in order, and keeps the conversation", async () => {
    // A second browser on the same conversation sees the same answer. It signs in before the question
    // is sent: signing in after it raced the fast sim's answer (a finished answer is not replayed to a
    // socket that starts watching after its `done`).
    const second = await connectSocket(server, await login(server));
    const sent = await server.client.chat.send.mutate({ deviceId: fast.deviceId, content: "Tell me about apples." });
    const w = watch(socket, sent.conversationId);
    const w2 = watch(second, sent.conversationId);
    await waitFor("the answer", () => w.done.length === 1);
    await waitFor("the answer in the second browser", () => w2.done.length === 1);
    second.disconnect();

    const done = w.done[0]!;
    expect(done.status).toBe("complete");
    expect(done.content.length).toBeGreaterThan(0);
    // Joining the room happened after send returned, so the earliest chunks may have gone by:
    // what was seen must be contiguous and end exactly where the answer ends.
    const seqs = w.tokens.map((t) => t.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
    expect(done.content.endsWith(w.tokens.map((t) => t.text).join(""))).toBe(true);
    expect(done.stats).toMatchObject({ backend: "sim", finishReason: "stop", reusedTokens: 0 });
    expect(done.stats!.generatedTokens).toBe(w.tokens.at(-1)!.tokens);

    const stored = await server.client.chat.get.query({ id: sent.conversationId });
    expect(stored.messages.map((m) => [m.role, m.status])).toEqual([
      ["user", "complete"],
      ["assistant", "complete"],
    ]);
    expect(stored.messages[1]!.content).toBe(done.content);
  });

  it("reuses the device's KV cache when a conversation continues", async () => {
    const first = await server.client.chat.send.mutate({ deviceId: fast.deviceId, content: "First question." });
    const w = watch(socket, first.conversationId);
    await waitFor("first answer", () => w.done.length === 1);
    await server.client.chat.send.mutate({ conversationId: first.conversationId, content: "And a follow-up?" });
    await waitFor("second answer", () => w.done.length === 2);
    const [a, b] = w.done;
    expect(a!.stats!.reusedTokens).toBe(0);
    expect(b!.stats!.reusedTokens).toBeGreaterThan(0);
    expect(b!.stats!.promptTokens).toBeGreaterThan(a!.stats!.promptTokens);
  });

  it("stops an answer within a token or two and keeps what was said", async () => {
    const sent = await server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "Write a long story.", maxNewTokens: 2000 });
    const w = watch(socket, sent.conversationId);
    await waitFor("a few tokens", () => (w.tokens.at(-1)?.tokens ?? 0) >= 5);
    const seenAtStop = w.tokens.at(-1)!.tokens;
    // The sim decodes at a fixed pace (20 tok/s) whatever the load, while the stop travels
    // server → broker → agent → runner: on a busy machine that can take longer than a token or
    // two. So the runner is frozen (SIGSTOP) from before the stop is sent until the agent has
    // passed it on, and the count is taken where the agent acknowledged the stop: its log line
    // says how many tokens it had then. From there the runner may finish the token it is on.
    const runnerPid = z
      .object({ runner: z.object({ pid: z.number().int().positive() }) })
      .parse(JSON.parse(await readFile(path.join(slow.dataDir, "state.json"), "utf8"))).runner.pid;
    const logFrom = slow.proc!.output.length;
    process.kill(runnerPid, "SIGSTOP");
    let atCancel: number;
    try {
      await server.client.chat.stop.mutate({ id: sent.conversationId });
      const line = await waitFor("the agent to pass the stop on", () =>
        slow.proc!.output.slice(logFrom).match(/cancelling the running chat .*generatedTokens=(\d+)/),
      );
      atCancel = Number(line[1]);
    } finally {
      process.kill(runnerPid, "SIGCONT");
    }
    await waitFor("the stopped answer", () => w.done.length === 1);
    const done = w.done[0]!;
    expect(done.status).toBe("cancelled");
    expect(done.stats!.finishReason).toBe("cancelled");
    expect(atCancel).toBeGreaterThanOrEqual(seenAtStop);
    expect(done.stats!.generatedTokens - atCancel).toBeLessThanOrEqual(2);
    expect(done.content.length).toBeGreaterThan(0);
  });

  it("refuses a chat beyond the device's queue limit, politely", async () => {
    const first = await server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "Keep talking.", maxNewTokens: 2000 });
    const w1 = watch(socket, first.conversationId);
    await waitFor("the first answer to start", () => w1.tokens.length > 0);
    const second = await server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "Me too?" });
    const w2 = watch(socket, second.conversationId);
    await waitFor(
      "the refusal",
      async () => (await server.client.chat.get.query({ id: second.conversationId })).messages[1]?.status === "error",
    );
    const refused = (await server.client.chat.get.query({ id: second.conversationId })).messages;
    expect(refused[0]).toMatchObject({ role: "user", content: "Me too?", status: "complete" }); // what was typed is kept
    expect(refused[1]).toMatchObject({ role: "assistant", status: "error", errorCode: "queue_full" });
    expect(refused[1]!.error).toMatch(/busy|queue/i);
    expect(w2.done).toEqual([]);
    // Mid-answer, a reload (chat.get) shows the text so far.
    const midway = (await server.client.chat.get.query({ id: first.conversationId })).messages[1]!;
    expect(midway.status).toBe("streaming");
    expect(midway.content.length).toBeGreaterThan(0);
    await server.client.chat.stop.mutate({ id: first.conversationId });
    await waitFor("the first answer to stop", () => w1.done.length === 1);

    // The refused conversation carries on once the device is free (the failed turn is not sent again).
    await server.client.chat.send.mutate({ conversationId: second.conversationId, content: "Me too, now?", maxNewTokens: 8 });
    await waitFor("the retried answer", () => w2.done.length === 1, 20_000);
    expect(w2.done[0]!.status).toBe("complete");
  });

  it("refuses a message to a conversation that is still answering, and empty messages", async () => {
    const sent = await server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "Go on.", maxNewTokens: 2000 });
    const w = watch(socket, sent.conversationId);
    await expect(server.client.chat.send.mutate({ conversationId: sent.conversationId, content: "Wait" })).rejects.toThrow(
      /still answering/,
    );
    await expect(server.client.chat.send.mutate({ deviceId: fast.deviceId, content: "   " })).rejects.toThrow(/empty/);
    await server.client.chat.stop.mutate({ id: sent.conversationId });
    await waitFor("stopped", () => w.done.length === 1);
  });

  it("tells the user within seconds when the device dies mid-answer, and refuses new chats to it", async () => {
    const sent = await server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "One more long answer.", maxNewTokens: 2000 });
    const w = watch(socket, sent.conversationId);
    await waitFor("tokens", () => w.tokens.length > 0);
    const killedAt = Date.now();
    await slow.proc!.stop("SIGKILL");
    await waitFor("the error", () => w.errors.length === 1, 10_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(w.errors[0]).toMatchObject({ code: "device_offline" });
    expect(w.errors[0]!.message).toMatch(/offline/);
    const stored = (await server.client.chat.get.query({ id: sent.conversationId })).messages[1]!;
    expect(stored.status).toBe("error");
    expect(stored.content.length).toBeGreaterThan(0); // the partial answer is kept
    // Nothing is stored for a message the offline device cannot take.
    const before = (await server.client.chat.list.query()).length;
    await expect(server.client.chat.send.mutate({ deviceId: slow.deviceId, content: "Hello?" })).rejects.toThrow(/offline/);
    expect((await server.client.chat.list.query()).length).toBe(before);
  });
});
