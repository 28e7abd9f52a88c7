/**
 * The chat executor against the real `orchard-runner --backend sim` through the real
 * supervisor. The publisher is a recorder that checks every message against the
 * contract: what is under test is what the executor would send, not the MQTT link
 * (that one runs against a real broker in link/ and agent/).
 */
import { existsSync } from "node:fs";
import { chmod } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ChatStartCommand, ChatStreamMessage } from "@orchard/contracts";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import { RunnerSupervisor, type RunnerSupervisorOptions } from "../runner/supervisor.js";
import { ChatExecutor, type ChatExecutorOptions } from "./executor.js";
import { Vcgencmd } from "../telemetry/vcgencmd.js";
import { SocReader } from "./soc-reading.js";
import { until } from "../../test/helpers/until.js";

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const CRASHING_TEST_DOUBLE = fileURLToPath(new URL("../../test/fixtures/crashing-runner.mjs", import.meta.url));
const PI5 = fileURLToPath(new URL("../../test/fixtures/pi5", import.meta.url));
const FAST = ["--sim-load-ms=20", "--sim-prefill-tok-s=50000", "--sim-decode-tok-s=2000"];
const SLOW = ["--sim-load-ms=20", "--sim-prefill-tok-s=50000", "--sim-decode-tok-s=20"];

type Msg = ChatStreamMessage;
type Of<T extends Msg["type"]> = Extract<Msg, { type: T }>;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

beforeAll(async () => {
  if (!existsSync(RUNNER)) throw new Error(`the runner binary ${RUNNER} is missing: build native/ first`);
  await chmod(CRASHING_TEST_DOUBLE, 0o755);
});

let commandCount = 0;
function chat(requestId: string, patch: Partial<ChatStartCommand> = {}): ChatStartCommand {
  return {
    type: "chat.start",
    id: `cmd-${++commandCount}`,
    ts: Date.now(),
    requestId,
    session: "conv-1",
    messages: [{ role: "user", content: "Hello there" }],
    maxNewTokens: 256,
    temperature: 0,
    topP: 1,
    ...patch,
  };
}

interface Setup {
  runner?: Partial<RunnerSupervisorOptions>;
  executor?: Partial<ChatExecutorOptions>;
  /** Wait for the runner to be ready before returning (default true). */
  ready?: boolean;
}

async function setup(options: Setup = {}) {
  const supervisor = new RunnerSupervisor({
    command: RUNNER,
    backend: "sim",
    extraArgs: FAST,
    logger: silentLogger,
    restartPolicy: { initialMs: 100 },
    ...options.runner,
  });
  cleanup.push(() => supervisor.stop());
  const sent: Msg[] = [];
  const soc = new SocReader({ root: PI5, vcgencmd: new Vcgencmd({ command: path.join(PI5, "bin/vcgencmd") }) });
  const executor = new ChatExecutor({
    runner: supervisor,
    publish: (message) => sent.push(ChatStreamMessage.parse(message)),
    readSoc: () => soc.read(),
    logger: silentLogger,
    deviceName: "pi-test",
    ...options.executor,
  });
  cleanup.push(() => executor.shutdown());
  supervisor.start();
  if (options.ready !== false) await until("runner ready", () => supervisor.status().state === "ready");

  const of = (requestId: string) => sent.filter((m) => m.requestId === requestId);
  const ofType = <T extends Msg["type"]>(requestId: string, type: T) => of(requestId).filter((m): m is Of<T> => m.type === type);
  const end = (requestId: string, timeoutMs?: number) =>
    until(
      `the end of ${requestId}`,
      () => of(requestId).find((m): m is Of<"done"> | Of<"error"> => m.type === "done" || m.type === "error"),
      timeoutMs,
    );
  const done = async (requestId: string) => {
    const last = await end(requestId);
    if (last.type !== "done") throw new Error(`${requestId} ended with ${last.code}: ${last.message}`);
    return last;
  };
  const tokensSoFar = (requestId: string) => ofType(requestId, "tokens").reduce((n, t) => n + t.count, 0);
  return { supervisor, executor, sent, of, ofType, end, done, tokensSoFar };
}

/** One request's stream obeys the contract's order: accepted first, seq without gaps, one final message, last. */
function expectWellFormed(stream: Msg[]) {
  expect(stream[0]?.type).toBe("accepted");
  const finals = stream.filter((m) => m.type === "done" || m.type === "error");
  expect(finals).toHaveLength(1);
  expect(stream.at(-1)).toBe(finals[0]);
  const seqs = stream.flatMap((m) => (m.type === "tokens" ? [m.seq] : []));
  expect(seqs).toEqual(seqs.map((_, i) => i));
}

describe("ChatExecutor with the real sim runner", () => {
  it("streams an answer: accepted, batched token chunks in order, done with the whole text and the stats", async () => {
    const { executor, of, ofType, done } = await setup();
    const before = Date.now();
    executor.start(chat("req-1"));
    const final = await done("req-1");

    const stream = of("req-1");
    expectWellFormed(stream);
    expect(stream[0]).toMatchObject({ type: "accepted", queuePosition: 0 });
    const chunks = ofType("req-1", "tokens");
    expect(chunks.map((c) => c.text).join("")).toBe(final.text);
    expect(final.text.length).toBeGreaterThan(10);
    expect(chunks.reduce((n, c) => n + c.count, 0)).toBe(final.stats.generatedTokens);
    // 2000 tok/s: tokens travel in a few chunks, not one message each.
    expect(chunks.length).toBeLessThan(final.stats.generatedTokens / 2);
    expect(chunks.every((c) => c.ts >= before && c.ts <= final.ts)).toBe(true);

    expect(final.stats).toMatchObject({
      backend: "sim",
      model: expect.stringMatching(/sim/),
      modelSha256: null,
      finishReason: "stop",
      reusedTokens: 0,
      socTempC: 51.9, // the Pi 5 fixture
      throttleRaw: 0x50005,
    });
    expect(final.stats.promptTokens).toBeGreaterThan(5);
    expect(final.stats.decodeTokS).toBeGreaterThan(100);
    expect(final.stats.peakRssBytes).toBeGreaterThan(1024 * 1024);
    expect(final.stats.queueMs).toBeLessThan(1_000);
    expect(executor.info()).toEqual({ held: 0, running: null });
  });

  it("a continued conversation reuses the runner's cache; another conversation starts afresh", async () => {
    const { executor, done } = await setup();
    const first = [{ role: "user" as const, content: "What grows in an orchard?" }];
    executor.start(chat("turn-1", { session: "conv-a", messages: first }));
    const one = await done("turn-1");
    expect(one.stats.reusedTokens).toBe(0);

    const second = [...first, { role: "assistant" as const, content: one.text }, { role: "user" as const, content: "And in winter?" }];
    executor.start(chat("turn-2", { session: "conv-a", messages: second }));
    const two = await done("turn-2");
    expect(two.stats.reusedTokens).toBeGreaterThan(one.stats.promptTokens - 1);
    expect(two.stats.promptTokens).toBeGreaterThan(two.stats.reusedTokens);

    executor.start(chat("other-1", { session: "conv-b", messages: first }));
    const other = await done("other-1");
    expect(other.stats.reusedTokens).toBe(0);
    expect(other.text).toBe(one.text); // greedy: same conversation, same answer
  });

  it("sends each token on its own when the runner is slower than the batching interval", async () => {
    // 5 tok/s: 200 ms between tokens, four times the batching interval (room for a busy CI machine).
    const { executor, ofType, done } = await setup({ runner: { extraArgs: ["--sim-load-ms=20", "--sim-decode-tok-s=5"] } });
    executor.start(chat("slow-1", { maxNewTokens: 4 }));
    const final = await done("slow-1");
    expect(final.stats).toMatchObject({ finishReason: "length", generatedTokens: 4 });
    expect(ofType("slow-1", "tokens").map((c) => c.count)).toEqual([1, 1, 1, 1]);
  });

  it("cancel stops a running answer within a token or two and sends the partial text", async () => {
    // 10 tok/s: a token every 100 ms, so "a token or two" is not at the mercy of a busy machine.
    const { executor, of, ofType, done, tokensSoFar } = await setup({
      runner: { extraArgs: ["--sim-load-ms=20", "--sim-prefill-tok-s=50000", "--sim-decode-tok-s=10"] },
    });
    executor.start(chat("long-1", { maxNewTokens: 1000 }));
    await until("three tokens", () => tokensSoFar("long-1") >= 3);
    const seen = tokensSoFar("long-1");
    executor.cancel({ type: "chat.cancel", id: "cancel-1", ts: Date.now(), requestId: "long-1" });
    const final = await done("long-1");
    expect(final.stats.finishReason).toBe("cancelled");
    expect(final.stats.generatedTokens).toBeGreaterThanOrEqual(seen);
    expect(final.stats.generatedTokens).toBeLessThanOrEqual(seen + 2);
    expect(
      ofType("long-1", "tokens")
        .map((c) => c.text)
        .join(""),
    ).toBe(final.text);
    expectWellFormed(of("long-1"));
  });

  it("holds at most --chat-queue chats, refuses the next as busy, runs them first come first served, cancels a queued one", async () => {
    const { executor, sent, of, end, done } = await setup({ runner: { extraArgs: SLOW }, executor: { queueLimit: 2 } });
    executor.start(chat("q-1", { maxNewTokens: 1000 }));
    executor.start(chat("q-2", { maxNewTokens: 3 }));
    executor.start(chat("q-3"));
    expect(of("q-1")[0]).toMatchObject({ type: "accepted", queuePosition: 0 });
    expect(of("q-2")[0]).toMatchObject({ type: "accepted", queuePosition: 1 });
    expect(of("q-3")).toEqual([
      {
        type: "error",
        requestId: "q-3",
        ts: expect.any(Number),
        code: "queue_full",
        message: "pi-test is busy: 2 chats are already queued; try again shortly",
      },
    ]);

    // Cancelling a queued chat answers it at once, with nothing generated.
    executor.cancel({ type: "chat.cancel", id: "cancel-q2", ts: Date.now(), requestId: "q-2" });
    const cancelled = await end("q-2");
    expect(cancelled).toMatchObject({ type: "done", text: "", stats: { finishReason: "cancelled", generatedTokens: 0, promptTokens: 0 } });
    expectWellFormed(of("q-2"));

    // Its place is free again; the newcomer waits behind the running one.
    executor.start(chat("q-4", { maxNewTokens: 3 }));
    expect(of("q-4")[0]).toMatchObject({ type: "accepted", queuePosition: 1 });
    executor.start(chat("q-5"));
    expect(of("q-5")[0]).toMatchObject({ type: "error", code: "queue_full" });

    executor.cancel({ type: "chat.cancel", id: "cancel-q1", ts: Date.now(), requestId: "q-1" });
    await done("q-1");
    const four = await done("q-4");
    expect(four.stats.generatedTokens).toBe(3);
    // FIFO: q-4 produced nothing before q-1's last token. (q-1's done may follow q-4's first
    // tokens: the runner starts the next chat while the finished one's SoC readings are taken.)
    const q1Last = sent.findLastIndex((m) => m.requestId === "q-1" && m.type === "tokens");
    const q4First = sent.findIndex((m) => m.requestId === "q-4" && m.type === "tokens");
    expect(q4First).toBeGreaterThan(q1Last);
    expect(four.stats.queueMs).toBeGreaterThan(0);
    // Unknown request ids are ignored.
    executor.cancel({ type: "chat.cancel", id: "cancel-x", ts: Date.now(), requestId: "nobody" });
    expect(of("nobody")).toEqual([]);
  });

  it("ignores a re-delivered chat.start and answers another command for the same request id with duplicate", async () => {
    const { executor, of, ofType } = await setup({ runner: { extraArgs: SLOW } });
    const command = chat("dup-1", { maxNewTokens: 4 });
    executor.start(command);
    executor.start(command); // the same command again (QoS 1 re-delivery)
    expect(of("dup-1")).toHaveLength(1);
    executor.start({ ...command, id: "another-command" });
    expect(ofType("dup-1", "error")).toEqual([
      expect.objectContaining({ code: "duplicate", message: "request dup-1 is already being answered on this device" }),
    ]);
    // The duplicate error refuses the second command only: the first one's answer goes on.
    const final = await until("done", () => ofType("dup-1", "done")[0]);
    expect(final.stats.generatedTokens).toBe(4); // the first one ran, once
    expect(
      ofType("dup-1", "tokens")
        .map((c) => c.text)
        .join(""),
    ).toBe(final.text);
    expect(ofType("dup-1", "accepted")).toHaveLength(1);

    executor.start(command);
    executor.start({ ...command, id: "third-command" });
    expect(ofType("dup-1", "accepted")).toHaveLength(1);
    expect(ofType("dup-1", "error").at(-1)).toMatchObject({
      code: "duplicate",
      message: "request dup-1 was already answered on this device",
    });
  });

  it("heartbeats: queued chats with their position, the running one in prefill and then decoding", async () => {
    const { executor, ofType, done } = await setup({
      runner: { extraArgs: ["--sim-load-ms=20", "--sim-prefill-tok-s=60", "--sim-decode-tok-s=10"] },
      executor: { heartbeatMs: 80 },
    });
    executor.start(chat("hb-1", { maxNewTokens: 5 }));
    // Another conversation, so its whole prompt is fed (the same one would reuse all of hb-1's cache).
    executor.start(chat("hb-2", { maxNewTokens: 1, session: "conv-2" }));
    await done("hb-1");
    await done("hb-2");
    const one = ofType("hb-1", "progress");
    const two = ofType("hb-2", "progress");
    expect(one.some((p) => p.phase === "prefill" && p.generatedTokens === 0 && p.queuePosition === 0)).toBe(true);
    expect(one.some((p) => p.phase === "decoding" && p.generatedTokens > 0)).toBe(true);
    const counts = one.map((p) => p.generatedTokens);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(two.some((p) => p.phase === "queued" && p.queuePosition === 1)).toBe(true);
    expect(two.some((p) => p.phase === "prefill" && p.queuePosition === 0)).toBe(true);
  });

  it("a runner killed mid-answer fails that chat with runner_exited; the next one runs after the restart", async () => {
    const { supervisor, executor, of, end, done, tokensSoFar } = await setup({ runner: { extraArgs: SLOW } });
    executor.start(chat("kill-1", { maxNewTokens: 1000 }));
    executor.start(chat("kill-2", { maxNewTokens: 5 }));
    await until("tokens", () => tokensSoFar("kill-1") >= 2);
    const pid = supervisor.status().pid!;
    process.kill(pid, "SIGKILL");
    expect(await end("kill-1")).toMatchObject({
      type: "error",
      code: "runner_exited",
      message: "the runner stopped during the answer; it is being restarted — send your message again",
    });
    expectWellFormed(of("kill-1"));
    const next = await done("kill-2");
    expect(next.stats.generatedTokens).toBe(5);
    expect(supervisor.status()).toMatchObject({ state: "ready", restarts: 1 });
    expect(supervisor.status().pid).not.toBe(pid);
    expectWellFormed(of("kill-2"));
  });

  it("waits for a loading runner, and answers not_ready when it takes too long or keeps crashing", async () => {
    // Loading: the chat waits at the front and then runs.
    const loading = await setup({ runner: { extraArgs: ["--sim-load-ms=400", "--sim-decode-tok-s=2000"] }, ready: false });
    expect(loading.supervisor.status().state).toBe("starting");
    loading.executor.start(chat("load-1", { maxNewTokens: 3 }));
    expect(loading.of("load-1")[0]).toMatchObject({ type: "accepted", queuePosition: 0 });
    expect((await loading.done("load-1")).stats.generatedTokens).toBe(3);

    // Loading for longer than the executor waits.
    const slowLoad = await setup({
      runner: { extraArgs: ["--sim-load-ms=5000"], shutdownGraceMs: 100 },
      executor: { readyWaitMs: 150 },
      ready: false,
    });
    slowLoad.executor.start(chat("load-2"));
    expect(await slowLoad.end("load-2")).toMatchObject({
      type: "error",
      code: "not_ready",
      message: "the model is still loading; try again in a moment",
    });

    // A crash loop is not worth waiting for.
    const crashing = await setup({
      runner: { command: CRASHING_TEST_DOUBLE, restartPolicy: { initialMs: 60_000, crashLoopCount: 1, crashLoopRetryMs: 60_000 } },
      ready: false,
    });
    await until("crash_loop", () => crashing.supervisor.status().state === "crash_loop");
    const started = Date.now();
    crashing.executor.start(chat("loop-1"));
    expect(await crashing.end("loop-1")).toMatchObject({
      type: "error",
      code: "not_ready",
      message: expect.stringMatching(/keeps crashing/),
    });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("maps the runner's refusals: context_full, bad_request", async () => {
    const { executor, end, done } = await setup({ runner: { extraArgs: [...FAST, "--max-context=64"] } });
    executor.start(chat("ctx-1", { messages: [{ role: "user", content: "tell me everything ".repeat(10) }], maxNewTokens: 16 }));
    expect(await end("ctx-1")).toMatchObject({
      type: "error",
      code: "context_full",
      message: "this conversation no longer fits in the model's context (64 tokens); start a new conversation",
    });
    executor.start(
      chat("bad-1", {
        messages: [
          { role: "user", content: "a" },
          { role: "user", content: "b" },
        ],
        maxNewTokens: 4,
      }),
    );
    expect(await end("bad-1")).toMatchObject({ type: "error", code: "bad_request", message: expect.stringMatching(/^the device refused/) });
    // The runner is fine afterwards.
    executor.start(chat("ok-1", { messages: [{ role: "user", content: "hi" }], maxNewTokens: 4 }));
    expect((await done("ok-1")).stats.generatedTokens).toBe(4);
  });

  it("shutdown: the running chat is cancelled with its partial answer, queued ones get not_ready, new ones are refused", async () => {
    const { executor, of, end, tokensSoFar } = await setup({ runner: { extraArgs: SLOW } });
    executor.start(chat("sd-1", { maxNewTokens: 1000 }));
    executor.start(chat("sd-2"));
    await until("tokens", () => tokensSoFar("sd-1") >= 2);
    await executor.shutdown();
    const one = await end("sd-1", 1);
    expect(one).toMatchObject({ type: "done", stats: { finishReason: "cancelled" } });
    expect(one.type === "done" && one.text.length).toBeGreaterThan(0);
    expect(await end("sd-2", 1)).toMatchObject({ type: "error", code: "not_ready", message: expect.stringMatching(/shutting down/) });
    expectWellFormed(of("sd-1"));
    expectWellFormed(of("sd-2"));
    executor.start(chat("sd-3"));
    expect(of("sd-3")).toEqual([expect.objectContaining({ type: "error", code: "not_ready" })]);
  });
});
