/**
 * The bench runner with the real chat executor (its queue is what keeps a benchmark
 * from overlapping an answer) in front of a fake runner the test drives token by token,
 * under fake timers (power is sampled once a second). The last block runs it against
 * the real `orchard-runner --backend sim` through the real supervisor.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  BENCH_STANDARD_PROMPTS,
  type BenchBoardState,
  type BenchPrompt,
  type BenchRunCommand,
  type ChatStartCommand,
  ChatStreamMessage,
  DeviceEvent,
  type RunnerDone,
  type RunnerReady,
  type RunnerState,
  type RunnerStatus,
} from "@orchard/contracts";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ChatExecutor, type ChatRunner } from "../chat/executor.js";
import { SocReader } from "../chat/soc-reading.js";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import { Generation, type GenerationSink, RunnerRequestError, type RunnerRequestErrorCode } from "../runner/generation.js";
import { type GenerateOptions, RunnerSupervisor, type RunnerSupervisorEvents } from "../runner/supervisor.js";
import { Vcgencmd } from "../telemetry/vcgencmd.js";
import { type BenchEvent, BenchRunner, type BenchRunnerOptions, energyPerToken, textPreview } from "./bench-runner.js";
import { until } from "../../test/helpers/until.js";

const T0 = 1_700_000_000_000;
const SHA = "a".repeat(64);
const CAPITAL: BenchPrompt = { id: "capital-of-france", text: "The capital of France is" };
const SHORT: BenchPrompt = { id: "short-answer", text: "In one sentence, what is a Raspberry Pi?" };
const LONG: BenchPrompt = { id: "long-generation", text: "Write a short story about an orchard that is tended by robots." };

/** A runner the test drives: it records requests, streams the tokens it is told to, and refuses overlapping generations. */
class FakeRunner extends EventEmitter<RunnerSupervisorEvents> {
  state: RunnerState = "ready";
  readonly requests: GenerateOptions[] = [];
  /** Generations requested while another was running: the queue must keep this at 0. */
  overlaps = 0;
  /** A runner that does not stop when asked (for shutdown's grace period). */
  ignoreCancel = false;
  readonly #live = new Map<string, { sink: GenerationSink; ids: number[] }>();

  status(): RunnerStatus {
    return {
      state: this.state,
      backend: "sim",
      model: "sim (no model)",
      pid: 4242,
      rssBytes: 3_800_000,
      maxContext: 2048,
      loadMs: 201.5,
      restarts: 0,
      lastError: this.state === "crash_loop" ? "exited with code 1: load_failed: no such file" : null,
      version: "0.1.0",
    };
  }

  readyInfo(): RunnerReady | null {
    return this.state === "ready"
      ? {
          type: "ready",
          backend: "sim",
          model: "sim (no model)",
          max_context: 2048,
          load_ms: 201.5,
          rss_bytes: 3_800_000,
          version: "0.1.0",
        }
      : null;
  }

  setState(state: RunnerState): void {
    const previous = this.state;
    this.state = state;
    this.emit("state", this.status(), previous);
  }

  generate(request: GenerateOptions): Generation {
    if (this.state !== "ready") throw new RunnerRequestError("not_ready", `the runner is ${this.state}`);
    if (this.#live.size > 0) {
      this.overlaps += 1;
      throw new RunnerRequestError("busy", "a generation is already running");
    }
    this.requests.push(request);
    const { generation, sink } = Generation.create(request.id, () => {
      if (!this.ignoreCancel) queueMicrotask(() => this.finish({ finish_reason: "cancelled" }, request.id));
    });
    this.#live.set(request.id, { sink, ids: [] });
    return generation;
  }

  get running(): string | null {
    return [...this.#live.keys()][0] ?? null;
  }

  #current(id = this.running) {
    const live = id === null ? undefined : this.#live.get(id);
    if (!live || id === null) throw new Error("no generation is running");
    return { id, ...live };
  }

  tokens(...texts: string[]): void {
    const { id, sink, ids } = this.#current();
    for (const text of texts) {
      ids.push(1000 + ids.length);
      sink.token({ type: "token", id, text, token_id: ids.at(-1)! });
    }
  }

  finish(patch: Partial<RunnerDone> = {}, which?: string): void {
    const { id, sink, ids } = this.#current(which);
    this.#live.delete(id);
    sink.done({
      type: "done",
      id,
      finish_reason: "stop",
      prompt_tokens: 17,
      reused_tokens: 0,
      generated_tokens: ids.length,
      ttft_ms: 300,
      prefill_ms: 290,
      decode_ms: 1_000,
      prefill_tok_s: 58.6,
      decode_tok_s: 1.5,
      peak_rss_bytes: 6_400_000_000,
      token_ids: ids,
      ...patch,
    });
  }

  fail(code: RunnerRequestErrorCode, message: string): void {
    const { id, sink } = this.#current();
    this.#live.delete(id);
    sink.fail(new RunnerRequestError(code, message));
  }
}

const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

let commandCount = 0;
function benchRun(runId: string, patch: Partial<BenchRunCommand> = {}): BenchRunCommand {
  return { type: "bench.run", id: `bench-cmd-${++commandCount}`, ts: T0, runId, prompts: [CAPITAL], maxNewTokens: 8, ...patch };
}

function chatStart(requestId: string, session = "conv-1"): ChatStartCommand {
  return {
    type: "chat.start",
    id: `chat-cmd-${++commandCount}`,
    ts: T0,
    requestId,
    session,
    messages: [{ role: "user", content: "Hello there" }],
    maxNewTokens: 16,
    temperature: 0,
    topP: 1,
  };
}

interface Setup {
  queueLimit?: number;
  board?: Partial<BenchBoardState>;
  bench?: Partial<BenchRunnerOptions>;
}

function setup(options: Setup = {}) {
  const runner = new FakeRunner();
  const board: BenchBoardState = { socTempC: 48.5, throttleRaw: 0, cpuFreqHz: 2_400_000_000, boardPowerW: 5, ...options.board };
  /** When readBoard was called (ms after T0). */
  const boardReads: number[] = [];
  const chatSent: ChatStreamMessage[] = [];
  const events: BenchEvent[] = [];
  const chat = new ChatExecutor({
    // ChatRunner's on/off return the supervisor itself (EventEmitter's `this`); nothing uses that return value.
    runner: runner as unknown as ChatRunner,
    publish: (message) => chatSent.push(ChatStreamMessage.parse(message)),
    logger: silentLogger,
    queueLimit: options.queueLimit ?? 4,
    readyWaitMs: 30_000,
    deviceName: "pi-test",
  });
  const bench = new BenchRunner({
    runner,
    queue: chat,
    // Every event is checked against the contract, as the link would.
    publish: (event) => events.push(DeviceEvent.parse(event) as BenchEvent),
    readBoard: async () => {
      boardReads.push(Date.now() - T0);
      return { ...board };
    },
    modelSha256: () => SHA,
    logger: silentLogger,
    ...options.bench,
  });
  const results = () => events.filter((e): e is Extract<BenchEvent, { kind: "bench.result" }> => e.kind === "bench.result");
  const progress = (runId: string) =>
    events.flatMap((e) => (e.kind === "bench.progress" && e.runId === runId ? [`${e.completed}/${e.total}`] : []));
  const chatOf = (requestId: string) => chatSent.filter((m) => m.requestId === requestId);
  return { runner, board, boardReads, chat, bench, events, results, progress, chatOf };
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("BenchRunner (fake runner, fake clock)", () => {
  it("runs each prompt as a fresh greedy one-message chat and reports progress, then one result with the runner's stats", async () => {
    const { runner, board, bench, events, progress } = setup();
    bench.start(benchRun("run-1", { prompts: [CAPITAL, SHORT], maxNewTokens: 8 }));
    await tick();
    expect(progress("run-1")).toEqual(["0/2"]);
    expect(runner.requests).toEqual([
      { id: "bench-0-run-1", messages: [{ role: "user", content: "The capital of France is" }], max_new_tokens: 8, temperature: 0 },
    ]);
    expect(runner.requests[0]).not.toHaveProperty("session"); // no session: nothing reused from an earlier prompt or chat

    await tick(1_500);
    runner.tokens(" Paris", ".", "");
    runner.finish({ prompt_tokens: 17, ttft_ms: 310, prefill_tok_s: 54.8, decode_tok_s: 1.6, peak_rss_bytes: 6_400_000_000 });
    await tick();
    expect(progress("run-1")).toEqual(["0/2", "1/2"]);
    expect(runner.requests[1]).toMatchObject({ id: "bench-1-run-1", messages: [{ role: "user", content: SHORT.text }], max_new_tokens: 8 });

    await tick(500);
    Object.assign(board, { socTempC: 61.2, throttleRaw: 0x80008, cpuFreqHz: 1_500_000_000 });
    runner.tokens("A", " small", " computer");
    runner.finish({
      finish_reason: "length",
      prompt_tokens: 23,
      ttft_ms: 420,
      prefill_tok_s: 54.7,
      decode_tok_s: 1.4,
      peak_rss_bytes: 6_500_000_000,
    });
    await tick();

    expect(events.map((e) => e.kind)).toEqual(["bench.progress", "bench.progress", "bench.progress", "bench.result"]);
    expect(progress("run-1")).toEqual(["0/2", "1/2", "2/2"]);
    expect(events.at(-1)).toEqual({
      kind: "bench.result",
      ts: T0 + 2_000,
      runId: "run-1",
      ok: true,
      error: null,
      result: {
        backend: "sim",
        runnerVersion: "0.1.0",
        model: "sim (no model)",
        modelSha256: SHA,
        loadMs: 201.5,
        before: { socTempC: 48.5, throttleRaw: 0, cpuFreqHz: 2_400_000_000, boardPowerW: 5 },
        after: { socTempC: 61.2, throttleRaw: 0x80008, cpuFreqHz: 1_500_000_000, boardPowerW: 5 },
        prompts: [
          {
            promptId: "capital-of-france",
            promptTokens: 17,
            generatedTokens: 3,
            ttftMs: 310,
            prefillTokS: 54.8,
            decodeTokS: 1.6,
            totalMs: 1_500,
            peakRssBytes: 6_400_000_000,
            energyJPerToken: 2.5, // 5 W × 1.5 s ÷ 3 tokens
            finishReason: "stop",
            textPreview: " Paris.",
          },
          {
            promptId: "short-answer",
            promptTokens: 23,
            generatedTokens: 3,
            ttftMs: 420,
            prefillTokS: 54.7,
            decodeTokS: 1.4,
            totalMs: 500,
            peakRssBytes: 6_500_000_000,
            energyJPerToken: (5 * 0.5) / 3,
            finishReason: "length",
            textPreview: "A small computer",
          },
        ],
      },
    });
    expect(runner.overlaps).toBe(0);
    expect(bench.held()).toEqual([]);
  });

  it("computes energy per token from the power sampled about once a second while the prompt runs", async () => {
    const { runner, board, boardReads, bench, results } = setup({ board: { boardPowerW: 4 } });
    bench.start(benchRun("run-e"));
    await tick(); // before-reading, then the first sample as the prompt starts (4 W)
    board.boardPowerW = 6;
    await tick(1_000); // second sample
    board.boardPowerW = 8;
    await tick(1_000); // third sample
    runner.tokens("a", "b", "c", "d");
    runner.finish();
    await tick();
    board.boardPowerW = 20;
    await tick(5_000); // the sampler stopped with the prompt: no more readings
    expect(boardReads).toEqual([0, 0, 1_000, 2_000, 2_000]); // before, 3 samples, after
    const [result] = results();
    // mean(4, 6, 8) = 6 W × 2 s ÷ 4 tokens
    expect(result?.result?.prompts[0]).toMatchObject({ totalMs: 2_000, generatedTokens: 4, energyJPerToken: 3 });
    expect(result?.result?.after.boardPowerW).toBe(8);
  });

  it("reports energy as null where board power is unreadable, or when nothing was generated", async () => {
    const unreadable = setup({ board: { boardPowerW: null, cpuFreqHz: null } });
    unreadable.bench.start(benchRun("run-nopower"));
    await tick(2_000);
    unreadable.runner.tokens("x", "y");
    unreadable.runner.finish();
    await tick();
    const [result] = unreadable.results();
    expect(result).toMatchObject({ ok: true, result: { before: { boardPowerW: null, cpuFreqHz: null }, after: { boardPowerW: null } } });
    expect(result?.result?.prompts[0]).toMatchObject({ generatedTokens: 2, energyJPerToken: null });

    const silent = setup();
    silent.bench.start(benchRun("run-empty"));
    await tick(1_000);
    silent.runner.finish({ generated_tokens: 0 });
    await tick();
    expect(silent.results()[0]?.result?.prompts[0]).toMatchObject({ generatedTokens: 0, energyJPerToken: null, textPreview: "" });

    expect(energyPerToken([null, 4, null, 8], 3_000, 6)).toBe(3);
    expect(energyPerToken([null, null], 3_000, 6)).toBeNull();
    expect(energyPerToken([], 3_000, 6)).toBeNull();
    expect(energyPerToken([5], 3_000, 0)).toBeNull();
  });

  it("a runner that exits mid-run ends it with ok=false, the reason, and the prompts finished so far", async () => {
    const { runner, bench, results, progress } = setup();
    bench.start(benchRun("run-crash", { prompts: [CAPITAL, SHORT, LONG] }));
    await tick(1_000);
    runner.tokens(" Paris");
    runner.finish();
    await tick(700);
    runner.tokens("A");
    runner.fail("runner_exited", "the runner exited (SIGKILL)");
    runner.setState("crashed");
    await tick();

    expect(progress("run-crash")).toEqual(["0/3", "1/3"]);
    expect(runner.requests.map((r) => r.id)).toEqual(["bench-0-run-crash", "bench-1-run-crash"]); // the third never started
    const [result] = results();
    expect(result).toMatchObject({
      runId: "run-crash",
      ok: false,
      error: "the runner exited during prompt short-answer (2 of 3) (the runner exited (SIGKILL)); the agent is restarting it",
      result: { backend: "sim", before: { socTempC: 48.5 }, after: { socTempC: 48.5 } },
    });
    expect(result?.result?.prompts.map((p) => p.promptId)).toEqual(["capital-of-france"]);
    expect(bench.held()).toEqual([]);
  });

  it("engine errors end the run with the runner's reason", async () => {
    const { runner, bench, results } = setup();
    bench.start(benchRun("run-ctx", { prompts: [LONG], maxNewTokens: 2048 }));
    await tick();
    runner.fail("context_full", "prompt (31 tokens) + max_new_tokens (2048) exceeds the context of 511 tokens");
    bench.start(benchRun("run-model"));
    await tick();
    runner.fail("model_error", "XNNPACK delegate failed");
    await tick();
    expect(results().map(({ runId, ok, error, result }) => ({ runId, ok, error, prompts: result?.prompts.length }))).toEqual([
      {
        runId: "run-ctx",
        ok: false,
        error:
          "prompt long-generation (1 of 1) does not fit in the model's context with maxNewTokens 2048: prompt (31 tokens) + max_new_tokens (2048) exceeds the context of 511 tokens",
        prompts: 0,
      },
      {
        runId: "run-model",
        ok: false,
        error: "the runner failed on prompt capital-of-france (1 of 1): model_error: XNNPACK delegate failed",
        prompts: 0,
      },
    ]);
  });

  it("waits for a loading runner like a chat does, and does not run on a runner that keeps crashing", async () => {
    const { runner, bench, results, progress } = setup();
    runner.setState("starting");
    bench.start(benchRun("run-wait"));
    await tick(5_000);
    expect(runner.requests).toEqual([]);
    expect(progress("run-wait")).toEqual([]);
    runner.setState("ready");
    await tick();
    expect(progress("run-wait")).toEqual(["0/1"]);
    runner.finish();
    await tick();
    expect(results()[0]).toMatchObject({ runId: "run-wait", ok: true });

    runner.setState("crash_loop");
    bench.start(benchRun("run-loop"));
    await tick();
    expect(results()[1]).toEqual({
      kind: "bench.result",
      ts: expect.any(Number),
      runId: "run-loop",
      ok: false,
      error:
        "the benchmark did not run: the runner keeps crashing and is only retried every few minutes (exited with code 1: load_failed: no such file); an operator needs to look at this device",
      result: null,
    });
    expect(runner.requests).toHaveLength(1);
  });

  it("shares the chat queue: a benchmark waits for the running chat, and chats sent meanwhile wait for the benchmark", async () => {
    const { runner, chat, bench, progress, results, chatOf } = setup();
    chat.start(chatStart("chat-1"));
    await tick();
    expect(runner.running).toBe("chat-1");

    bench.start(benchRun("run-q", { prompts: [CAPITAL, SHORT] }));
    chat.start(chatStart("chat-2", "conv-2"));
    await tick(3_000);
    expect(progress("run-q")).toEqual([]); // the chat is still answering
    expect(chatOf("chat-2")[0]).toMatchObject({ type: "accepted", queuePosition: 2 }); // behind the chat and the benchmark
    expect(chat.info()).toEqual({ held: 3, running: "chat-1" });

    runner.tokens("Hi");
    runner.finish();
    await tick();
    expect(chatOf("chat-1").at(-1)).toMatchObject({ type: "done", text: "Hi" });
    expect(runner.running).toBe("bench-0-run-q");
    runner.tokens(" Paris");
    runner.finish();
    await tick();
    expect(runner.running).toBe("bench-1-run-q"); // the chat waits between the benchmark's prompts too
    runner.tokens("A");
    runner.finish();
    await tick();
    expect(results()).toEqual([expect.objectContaining({ runId: "run-q", ok: true })]);
    expect(runner.running).toBe("chat-2");
    runner.finish();
    await tick();

    expect(runner.requests.map((r) => r.id)).toEqual(["chat-1", "bench-0-run-q", "bench-1-run-q", "chat-2"]);
    expect(runner.overlaps).toBe(0);
    // The benchmark sends nothing on chat topics.
    expect(chatOf("bench:run-q")).toEqual([]);
    expect(chat.info()).toEqual({ held: 0, running: null });
  });

  it("is refused with a clear error when the queue is full", async () => {
    const { runner, chat, bench, results, chatOf } = setup({ queueLimit: 1 });
    chat.start(chatStart("chat-full"));
    await tick();
    bench.start(benchRun("run-full"));
    expect(results()).toEqual([
      {
        kind: "bench.result",
        ts: T0,
        runId: "run-full",
        ok: false,
        error: "the benchmark was not queued: pi-test is busy: 1 chat is already queued; try again shortly",
        result: null,
      },
    ]);
    runner.finish();
    await tick();
    expect(chatOf("chat-full").at(-1)).toMatchObject({ type: "done" });
    expect(runner.requests.map((r) => r.id)).toEqual(["chat-full"]);
  });

  it("ignores a repeated bench.run for a run it has (also under a new command id); another run queues behind it", async () => {
    const { runner, bench, events, results } = setup();
    const command = benchRun("run-dup");
    bench.start(command);
    bench.start(command);
    bench.start({ ...command, id: "another-command" });
    bench.start(benchRun("run-next"));
    await tick();
    expect(bench.held()).toEqual(["run-dup", "run-next"]);
    runner.finish();
    await tick();
    runner.finish();
    await tick();
    bench.start({ ...command, id: "late-command" }); // after it finished
    await tick();
    expect(runner.requests.map((r) => r.id)).toEqual(["bench-0-run-dup", "bench-0-run-next"]);
    expect(results().map((r) => [r.runId, r.ok])).toEqual([
      ["run-dup", true],
      ["run-next", true],
    ]);
    expect(events.filter((e) => e.runId === "run-dup")).toHaveLength(3); // 0/1, 1/1, result
  });

  it("answers an invalid bench.run once, with ok=false and the reason", () => {
    const { bench, results } = setup();
    bench.refuseInvalid("run-bad", "invalid command: maxNewTokens: Too big: expected number to be <=2048");
    bench.refuseInvalid("run-bad", "invalid command: maxNewTokens: Too big: expected number to be <=2048");
    expect(results()).toEqual([
      {
        kind: "bench.result",
        ts: T0,
        runId: "run-bad",
        ok: false,
        error: "the device refused the benchmark: invalid command: maxNewTokens: Too big: expected number to be <=2048",
        result: null,
      },
    ]);
  });

  it("shutdown: the prompt in flight is cancelled and the prompts finished so far are reported; queued runs fail at once", async () => {
    const { runner, chat, bench, results, progress } = setup();
    bench.start(benchRun("run-sd", { prompts: [CAPITAL, SHORT, LONG] }));
    bench.start(benchRun("run-queued"));
    await tick(1_000);
    runner.tokens(" Paris");
    runner.finish();
    await tick(500);
    runner.tokens("A", " small");
    const closing = Promise.all([bench.shutdown(), chat.shutdown()]);
    await tick();
    await closing;

    expect(progress("run-sd")).toEqual(["0/3", "1/3"]);
    expect(
      results().map(({ runId, ok, error, result }) => ({ runId, ok, error, prompts: result?.prompts.map((p) => p.promptId) })),
    ).toEqual([
      { runId: "run-queued", ok: false, error: "the benchmark did not run: the agent is shutting down", prompts: undefined },
      {
        runId: "run-sd",
        ok: false,
        error: "the benchmark stopped after 1 of 3 prompts: the agent is shutting down",
        prompts: ["capital-of-france"],
      },
    ]);
    expect(results()[1]?.result?.after).toEqual({ socTempC: 48.5, throttleRaw: 0, cpuFreqHz: 2_400_000_000, boardPowerW: 5 });

    bench.start(benchRun("run-late"));
    expect(results().at(-1)).toMatchObject({
      runId: "run-late",
      ok: false,
      error: "the benchmark did not run: the agent is shutting down",
    });
    expect(runner.requests).toHaveLength(2);
  });

  it("shutdown does not wait for a runner that ignores the cancel beyond its grace period", async () => {
    const { runner, chat, bench, results } = setup({ bench: { shutdownGraceMs: 2_000 } });
    runner.ignoreCancel = true;
    bench.start(benchRun("run-stuck", { prompts: [CAPITAL, SHORT] }));
    await tick();
    runner.finish();
    await tick();
    const closing = Promise.all([bench.shutdown(), chat.shutdown()]);
    await tick(2_000);
    await closing;
    expect(results()).toEqual([
      expect.objectContaining({
        runId: "run-stuck",
        ok: false,
        error: "the benchmark stopped after 1 of 2 prompts: the agent is shutting down",
        result: expect.objectContaining({ after: { socTempC: null, throttleRaw: null, cpuFreqHz: null, boardPowerW: null } }),
      }),
    ]);
    runner.finish({ finish_reason: "cancelled" }); // the runner's late answer changes nothing
    await tick();
    expect(results()).toHaveLength(1);
  });

  it("keeps implausible board readings out of the result, and survives a reader that throws or hangs", async () => {
    let calls = 0;
    const { runner, bench, results } = setup({
      bench: {
        readBoard: async () => {
          calls += 1;
          if (calls === 1) return { socTempC: 10_000, throttleRaw: -1, cpuFreqHz: 1.5, boardPowerW: Number.NaN };
          throw new Error("vcgencmd wedged");
        },
      },
    });
    bench.start(benchRun("run-odd"));
    await tick();
    runner.tokens("x");
    runner.finish();
    await tick();
    const nulls = { socTempC: null, throttleRaw: null, cpuFreqHz: null, boardPowerW: null };
    expect(results()[0]).toMatchObject({ ok: true, result: { before: nulls, after: nulls, prompts: [{ energyJPerToken: null }] } });

    // A reader that never answers counts as unreadable after readBoardTimeoutMs, so the queue moves on.
    const hung = setup({ bench: { readBoard: () => new Promise<never>(() => undefined), readBoardTimeoutMs: 1_000 } });
    hung.bench.start(benchRun("run-hung"));
    await tick(1_000);
    expect(hung.runner.running).toBe("bench-0-run-hung");
    hung.runner.finish();
    await tick(2_000); // the power reading in flight gives up, then the after-reading does
    expect(hung.results()[0]).toMatchObject({ ok: true, result: { before: nulls, after: nulls } });
  });

  it("cuts the text preview at 200 characters, never inside a surrogate pair", () => {
    expect(textPreview("x".repeat(300))).toBe("x".repeat(200));
    expect(textPreview(`${"x".repeat(199)}🍎`)).toBe("x".repeat(199));
    expect(textPreview("Paris")).toBe("Paris");
  });
});

// ------------------------------------------------------------------ the real sim runner

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const PI5 = fileURLToPath(new URL("../../test/fixtures/pi5", import.meta.url));

describe("BenchRunner with the real sim runner", () => {
  const cleanup: (() => Promise<void>)[] = [];
  beforeEach(() => {
    vi.useRealTimers();
    if (!existsSync(RUNNER)) throw new Error(`the runner binary ${RUNNER} is missing: build native/ first`);
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it("measures every standard prompt from the runner's own done statistics, with fresh sessions", async () => {
    const supervisor = new RunnerSupervisor({
      command: RUNNER,
      backend: "sim",
      extraArgs: ["--sim-load-ms=20", "--sim-prefill-tok-s=20000", "--sim-decode-tok-s=1000"],
      logger: silentLogger,
    });
    cleanup.push(() => supervisor.stop());
    const dones: RunnerDone[] = [];
    supervisor.on("message", (m) => {
      if (m.type === "done") dones.push(m);
    });
    const chatSent: ChatStreamMessage[] = [];
    const chat = new ChatExecutor({ runner: supervisor, publish: (m) => chatSent.push(ChatStreamMessage.parse(m)), logger: silentLogger });
    cleanup.push(() => chat.shutdown());
    // before/after come from the fixture however slowly a loaded machine spawns it (not at the mercy of a timeout).
    const vcgencmd = new Vcgencmd({ command: path.join(PI5, "bin/vcgencmd"), timeoutMs: 60_000 });
    const soc = new SocReader({ root: PI5, vcgencmd });
    const events: BenchEvent[] = [];
    const bench = new BenchRunner({
      runner: supervisor,
      queue: chat,
      publish: (event) => events.push(DeviceEvent.parse(event) as BenchEvent),
      readBoard: async () => ({ ...(await soc.read()), cpuFreqHz: await vcgencmd.armClockHz(), boardPowerW: await vcgencmd.boardPowerW() }),
      logger: silentLogger,
    });
    cleanup.push(() => bench.shutdown());
    supervisor.start();
    await until("runner ready", () => supervisor.status().state === "ready");

    // A conversation resident in the runner first: the benchmark must not reuse it.
    const conversation = chatStart("chat-before");
    conversation.messages = [{ role: "user", content: CAPITAL.text }];
    chat.start(conversation);
    const answer = await until("the chat's answer", () => chatSent.find((m) => m.type === "done" && m.requestId === "chat-before"));
    if (answer.type !== "done") throw new Error("unreachable");

    const prompts = [...BENCH_STANDARD_PROMPTS, { id: "capital-again", text: CAPITAL.text }];
    bench.start({ type: "bench.run", id: "real-1", ts: Date.now(), runId: "real-run", prompts, maxNewTokens: 16 });
    const result = await until("bench.result", () => events.find((e) => e.kind === "bench.result"));
    if (result.kind !== "bench.result") throw new Error("unreachable");

    expect(result).toMatchObject({ ok: true, error: null });
    const device = result.result!;
    const ready = supervisor.readyInfo()!;
    expect(device).toMatchObject({
      backend: "sim",
      runnerVersion: ready.version,
      model: ready.model,
      modelSha256: null,
      loadMs: ready.load_ms,
      before: { socTempC: 51.9, throttleRaw: 0x50005 }, // the Pi 5 fixture
      after: { socTempC: 51.9, throttleRaw: 0x50005 },
    });
    expect(device.prompts.map((p) => p.promptId)).toEqual(prompts.map((p) => p.id));
    const benchDones = dones.filter((d) => d.id.startsWith("bench-"));
    expect(benchDones).toHaveLength(prompts.length);
    device.prompts.forEach((p, i) => {
      const done = benchDones[i]!;
      expect(p).toMatchObject({
        promptTokens: done.prompt_tokens,
        generatedTokens: done.generated_tokens,
        ttftMs: done.ttft_ms,
        prefillTokS: done.prefill_tok_s,
        decodeTokS: done.decode_tok_s,
        peakRssBytes: done.peak_rss_bytes,
        finishReason: done.finish_reason,
      });
      expect(done.reused_tokens).toBe(0); // a fresh session every time
      expect(p.generatedTokens).toBeGreaterThan(0);
      expect(p.generatedTokens).toBeLessThanOrEqual(16);
      expect(p.decodeTokS).toBeGreaterThan(0);
      expect(p.peakRssBytes).toBeGreaterThan(1024 * 1024);
      expect(p.totalMs).toBeGreaterThanOrEqual(p.ttftMs);
      expect(p.textPreview.length).toBeGreaterThan(0);
    });
    // The same prompt as a chat (one user message, greedy) gives the same tokens and text.
    expect(device.prompts[0]).toMatchObject({ promptTokens: answer.stats.promptTokens, textPreview: textPreview(answer.text) });
    expect(device.prompts.at(-1)?.textPreview).toBe(device.prompts[0]?.textPreview);
    expect(events.filter((e) => e.kind === "bench.progress").map((e) => e.kind === "bench.progress" && e.completed)).toEqual(
      prompts.map((_, i) => i).concat(prompts.length),
    );
  });
});
