/**
 * The chat executor: runs `chat.start` commands on the runner, one generation at a
 * time, and streams each answer back as contract ChatStreamMessages.
 *
 * - A bounded FIFO (chat-queue.ts) holds at most `queueLimit` chats, the running one
 *   included; beyond that a chat is refused at once with `queue_full`.
 * - Every held chat gets `accepted` (QoS 1), then `progress` heartbeats every
 *   `heartbeatMs`, token chunks (token-batcher.ts), and exactly one `done` or `error`.
 * - The conversation id is the runner session, so a continued conversation extends
 *   the runner's KV cache and another one resets it.
 * - The front chat waits for a runner that is loading or restarting (bounded by
 *   `readyWaitMs`), then runs; a runner that dies mid-answer fails that chat with
 *   `runner_exited` and the queue goes on once the supervisor has restarted it.
 *
 * Nothing here talks to MQTT: `publish` is the link's publishChat (or a test's recorder).
 */
import {
  CHAT_DEFAULT_QUEUE_LIMIT,
  CHAT_HEARTBEAT_MS,
  type ChatCancelCommand,
  type ChatStartCommand,
  ChatStreamMessage,
  type GenerationStats,
  MAX_DEVICE_PAYLOAD_BYTES,
  type RunnerDone,
} from "@orchard/contracts";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Generation } from "../runner/generation.js";
import type { RunnerSupervisor } from "../runner/supervisor.js";
import { ChatQueue } from "./chat-queue.js";
import { type ChatFailure, chatErrorFor, duplicate, notReady, queueFull, shuttingDown } from "./errors.js";
import type { SocReading } from "./soc-reading.js";
import { TOKEN_BATCH_MS, type TokenChunk, TokenBatcher } from "./token-batcher.js";

/** What the executor needs of the runner supervisor. */
export type ChatRunner = Pick<RunnerSupervisor, "generate" | "status" | "on" | "off">;

export interface ChatExecutorOptions {
  runner: ChatRunner;
  /** Sends one message on the request's chat topic (QoS by type is the link's business). Must not throw. */
  publish: (message: ChatStreamMessage) => void;
  logger: Logger;
  /** SoC temperature and throttle bits for an answer's stats. */
  readSoc?: () => Promise<SocReading>;
  clock?: Clock;
  /** Chats held at once, running + waiting. */
  queueLimit?: number;
  heartbeatMs?: number;
  batchMs?: number;
  /** How long the front chat waits for a loading or restarting runner before `not_ready`. */
  readyWaitMs?: number;
  /** How long shutdown waits for the running chat to end after cancelling it. */
  shutdownGraceMs?: number;
  /** Names the device in sentences for a person ("pi-kitchen is busy: …"). */
  deviceName?: string;
  /** Finished request ids remembered to answer a repeated chat.start with `duplicate`. */
  rememberFinished?: number;
  /** sha256 of the model file the runner has loaded (a rolled-out model), for an answer's stats. */
  modelSha256?: () => string | null;
}

export const CHAT_READY_WAIT_MS = 120_000;

/** done.text bounds: the contract's 200,000 characters, and a payload the broker accepts. */
const ANSWER_MAX_CHARS = 200_000;
const ANSWER_MAX_JSON_BYTES = MAX_DEVICE_PAYLOAD_BYTES - 8 * 1024;

interface ChatJob {
  readonly requestId: string;
  readonly commandId: string;
  readonly command: ChatStartCommand;
  readonly acceptedAt: number;
  /** Set once it is generating; phase prefill until its first token. */
  generation: Generation | null;
  phase: "queued" | "prefill" | "decoding";
  generatedTokens: number;
  /** Its final message (done or error) is decided: nothing more may be sent for it. */
  settled: boolean;
  /** Wakes the front chat's wait for a ready runner (on cancel or shutdown). */
  wake: (() => void) | null;
}

/**
 * Work that is not a chat (a benchmark), held as one entry of the same queue so it never
 * overlaps an answer: it runs once it reaches the front and the runner is ready.
 */
export interface QueuedWork {
  /** False for work that manages the runner itself (a rollout's activation): it runs at the front whatever the runner's state. */
  readonly needsReadyRunner?: boolean;
  /** Runs it; the entry behind it starts when this resolves. */
  run(): Promise<void>;
  /** It will not run, or must stop now (the runner never became ready, the agent is shutting down). */
  abort(failure: ChatFailure): void;
}

interface WorkJob {
  readonly requestId: string;
  readonly commandId: string;
  readonly work: QueuedWork;
  readonly generation: null;
  settled: boolean;
  wake: (() => void) | null;
}

type HeldJob = ChatJob | WorkJob;

type Terminal = Extract<ChatStreamMessage, { type: "done" | "error" }>;

export class ChatExecutor {
  readonly #opts: ChatExecutorOptions;
  readonly #runner: ChatRunner;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #queue: ChatQueue<HeldJob>;
  /** requestId → command id of chats that ended lately (insertion order = age). */
  readonly #finished = new Map<string, string>();
  readonly #completing = new Set<Promise<void>>();
  #heartbeat: NodeJS.Timeout | null = null;
  #pumping: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  #shuttingDown = false;

  constructor(options: ChatExecutorOptions) {
    this.#opts = options;
    this.#runner = options.runner;
    this.#log = options.logger.child({ component: "chat" });
    this.#clock = options.clock ?? systemClock;
    this.#queue = new ChatQueue(options.queueLimit ?? CHAT_DEFAULT_QUEUE_LIMIT);
  }

  get queueLimit(): number {
    return this.#queue.limit;
  }

  /** Chats held (running + waiting), and the one generating now. */
  info(): { held: number; running: string | null } {
    const front = this.#queue.front();
    return { held: this.#queue.size, running: front?.generation ? front.requestId : null };
  }

  // ---------------------------------------------------------------- commands

  /** A `chat.start` command: accepted (and queued) or refused, answered on the request's chat topic. */
  start(command: ChatStartCommand): void {
    const { requestId, id: commandId } = command;
    const held = this.#queue.get(requestId);
    const knownCommand = held?.commandId ?? this.#finished.get(requestId);
    if (knownCommand !== undefined) {
      if (knownCommand === commandId) {
        this.#log.debug("chat.start delivered again; ignored", { requestId, commandId });
        return;
      }
      this.#log.warn("chat.start for a request id this device already has; refused", {
        requestId,
        commandId,
        firstCommandId: knownCommand,
      });
      this.#refuse(requestId, duplicate(requestId, held ? "held" : "finished"));
      return;
    }
    if (this.#shuttingDown) {
      this.#refuse(requestId, shuttingDown());
      return;
    }
    if (this.#queue.full) {
      this.#log.info("chat refused: queue full", { requestId, held: this.#queue.size, limit: this.#queue.limit });
      this.#refuse(requestId, queueFull(this.#opts.deviceName ?? "this device", this.#queue.size));
      return;
    }

    const job: ChatJob = {
      requestId,
      commandId,
      command,
      acceptedAt: this.#clock.now(),
      generation: null,
      phase: "queued",
      generatedTokens: 0,
      settled: false,
      wake: null,
    };
    const position = this.#queue.add(job)!;
    this.#send({ type: "accepted", requestId, ts: this.#clock.now(), queuePosition: position });
    this.#log.info("chat accepted", { requestId, session: command.session, messages: command.messages.length, queuePosition: position });
    this.#startHeartbeat();
    this.#pump();
  }

  /** A `chat.cancel` command: a queued chat ends at once, a running one after the runner stops it. */
  cancel(command: ChatCancelCommand): void {
    const { requestId } = command;
    const job = this.#queue.get(requestId);
    if (!job || job.settled || "work" in job) {
      this.#log.debug("chat.cancel for a request this device does not hold; ignored", { requestId, commandId: command.id });
      return;
    }
    if (job.generation) {
      this.#log.info("cancelling the running chat", { requestId, generatedTokens: job.generatedTokens });
      job.generation.cancel(); // the runner answers done {finish_reason: cancelled}; the answer so far goes out with it
      return;
    }
    this.#log.info("cancelled a queued chat", { requestId, queuePosition: this.#queue.position(requestId) });
    this.#settle(job);
    this.#send({ type: "done", requestId, ts: this.#clock.now(), text: "", stats: this.#emptyStats(job) });
  }

  /** Answers a chat.start that is not valid (its request id is) with an error on its chat topic. */
  refuseInvalid(requestId: string, failure: ChatFailure): void {
    this.#refuse(requestId, failure);
  }

  /**
   * Queues work that is not a chat (a benchmark) behind the chats held now, under a `key`
   * no chat request id can take (e.g. with a colon): its position (0 = runs now), or why not.
   */
  enqueue(key: string, commandId: string, work: QueuedWork): { position: number } | { refused: ChatFailure } {
    if (this.#shuttingDown) return { refused: shuttingDown() };
    if (this.#queue.has(key)) return { refused: duplicate(key, "held") };
    if (this.#queue.full) return { refused: queueFull(this.#opts.deviceName ?? "this device", this.#queue.size) };
    const position = this.#queue.add({ requestId: key, commandId, work, generation: null, settled: false, wake: null })!;
    this.#log.info("work queued", { key, queuePosition: position });
    this.#pump();
    return { position };
  }

  /**
   * Shutdown: no new chats; queued ones get `not_ready`; the running one is cancelled
   * and its partial answer sent (or `not_ready` if the runner does not stop in time).
   */
  shutdown(): Promise<void> {
    this.#shuttingDown = true;
    this.#closing ??= (async () => {
      const front = this.#queue.front();
      const running = front?.generation ? front : null;
      for (const [, job] of this.#queue.entries()) {
        if (job === running) continue;
        this.#fail(job, shuttingDown());
      }
      if (running) {
        this.#log.info("cancelling the running chat: the agent is shutting down", { requestId: running.requestId });
        running.generation?.cancel();
        const grace = this.#opts.shutdownGraceMs ?? 5_000;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          this.#pumping ?? Promise.resolve(),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, grace);
          }),
        ]);
        clearTimeout(timer);
        this.#fail(running, shuttingDown()); // a no-op when it ended in time
      }
      await Promise.allSettled([...this.#completing]);
      this.#stopHeartbeat();
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------- the queue

  #pump(): void {
    if (this.#pumping) return;
    const loop = async () => {
      for (let job = this.#queue.front(); job && !this.#shuttingDown; job = this.#queue.front()) {
        await this.#run(job);
      }
    };
    // .finally runs as a microtask, after the assignment, even when the loop has nothing to do.
    this.#pumping = loop().finally(() => {
      this.#pumping = null;
    });
  }

  async #run(job: HeldJob): Promise<void> {
    try {
      const waits = !("work" in job) || job.work.needsReadyRunner !== false;
      if (waits && !(await this.#waitForRunner(job))) return;
      if ("work" in job) await this.#runWork(job);
      else await this.#generate(job);
    } catch (error) {
      // #generate handles the runner's errors; this is a bug of ours, and the chat must still end.
      this.#log.error("chat failed unexpectedly", { requestId: job.requestId, error });
      this.#fail(job, chatErrorFor(error, this.#runner.status()));
    }
    // Whatever happened, the front must move on, and the chat must have had its answer.
    if (!job.settled && !this.#shuttingDown) {
      this.#log.error("chat left without an answer; ending it", { requestId: job.requestId });
      this.#fail(job, { code: "model_error", message: "the device lost track of this answer; send your message again" });
    }
  }

  /** True when the runner is ready for `job`; false when the job ended meanwhile (cancelled, not_ready, shutdown). */
  async #waitForRunner(job: HeldJob): Promise<boolean> {
    const deadline = this.#clock.now() + (this.#opts.readyWaitMs ?? CHAT_READY_WAIT_MS);
    let logged = false;
    for (;;) {
      if (job.settled || this.#shuttingDown) return false;
      const status = this.#runner.status();
      if (status.state === "ready") return true;
      // crash_loop is retried only every few minutes: not worth waiting for. Everything else
      // (starting, crashed with a restart scheduled, stopped for an operator's restart) is.
      const remaining = deadline - this.#clock.now();
      if (status.state === "crash_loop" || remaining <= 0) {
        this.#log.warn("chat refused: the runner is not ready", { requestId: job.requestId, runner: status.state });
        this.#fail(job, notReady(status));
        return false;
      }
      if (!logged) {
        this.#log.info("chat waiting for the runner", { requestId: job.requestId, runner: status.state });
        logged = true;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#runner.off("state", done);
          job.wake = null;
          resolve();
        };
        const timer = setTimeout(done, remaining);
        this.#runner.on("state", done);
        job.wake = done;
      });
    }
  }

  async #runWork(job: WorkJob): Promise<void> {
    await job.work.run();
    this.#settle(job);
  }

  async #generate(job: ChatJob): Promise<void> {
    const { command, requestId } = job;
    const startedAt = this.#clock.now();
    let generation: Generation;
    try {
      generation = this.#runner.generate({
        id: requestId,
        session: command.session,
        messages: command.messages,
        max_new_tokens: command.maxNewTokens,
        temperature: command.temperature,
        top_p: command.topP,
        ...(command.seed === undefined ? {} : { seed: command.seed }),
      });
    } catch (error) {
      this.#fail(job, chatErrorFor(error, this.#runner.status()));
      return;
    }
    job.generation = generation;
    job.phase = "prefill";
    this.#log.debug("chat generating", { requestId, session: command.session, queueMs: startedAt - job.acceptedAt });

    const batcher = new TokenBatcher(this.#clock, this.#opts.batchMs ?? TOKEN_BATCH_MS);
    let timer: NodeJS.Timeout | null = null;
    const clearTimer = () => {
      if (timer) clearTimeout(timer);
      timer = null;
    };
    const sendChunk = (chunk: TokenChunk | null) => {
      if (chunk && !job.settled) this.#send({ type: "tokens", requestId, ...chunk });
    };
    let text = "";
    let done: RunnerDone;
    try {
      for await (const token of generation) {
        job.phase = "decoding";
        job.generatedTokens += 1;
        text += token.text;
        const chunk = batcher.push(token.text);
        if (chunk) {
          clearTimer();
          sendChunk(chunk);
        } else if (!timer) {
          timer = setTimeout(() => {
            timer = null;
            sendChunk(batcher.flush());
          }, batcher.delayMs() ?? 0);
        }
      }
      done = await generation.result;
    } catch (error) {
      clearTimer();
      const failure = chatErrorFor(error, this.#runner.status());
      this.#log.warn("chat failed", {
        requestId,
        code: failure.code,
        reason: (error as Error).message,
        generatedTokens: job.generatedTokens,
      });
      this.#fail(job, failure);
      return;
    }
    clearTimer();
    sendChunk(batcher.flush());
    if (job.settled) return; // shutdown gave up waiting for it and already answered
    // The runner is free: the next chat starts while this one's stats are read and sent.
    this.#settle(job);
    const completion = this.#complete(job, text, done, startedAt - job.acceptedAt).finally(() => this.#completing.delete(completion));
    this.#completing.add(completion);
  }

  async #complete(job: ChatJob, text: string, done: RunnerDone, queueMs: number): Promise<void> {
    const runner = this.#runner.status();
    const soc = await this.#readSoc();
    const stats: GenerationStats = {
      backend: runner.backend,
      model: runner.model,
      modelSha256: this.#opts.modelSha256?.() ?? null,
      finishReason: done.finish_reason,
      promptTokens: done.prompt_tokens,
      reusedTokens: done.reused_tokens,
      generatedTokens: done.generated_tokens,
      queueMs: Math.max(0, queueMs),
      ttftMs: done.ttft_ms,
      prefillMs: done.prefill_ms,
      decodeMs: done.decode_ms,
      prefillTokS: done.prefill_tok_s,
      decodeTokS: done.decode_tok_s,
      peakRssBytes: done.peak_rss_bytes,
      socTempC: soc.socTempC,
      throttleRaw: soc.throttleRaw,
    };
    const answer = fitAnswer(text);
    if (answer.length < text.length) {
      this.#log.warn("answer too long for one message; truncated", { requestId: job.requestId, chars: text.length, sent: answer.length });
    }
    this.#log.info("chat answered", {
      requestId: job.requestId,
      finishReason: stats.finishReason,
      generatedTokens: stats.generatedTokens,
      reusedTokens: stats.reusedTokens,
      queueMs: stats.queueMs,
      ttftMs: stats.ttftMs,
      decodeTokS: stats.decodeTokS,
    });
    this.#sendTerminal({ type: "done", requestId: job.requestId, ts: this.#clock.now(), text: answer, stats });
  }

  async #readSoc(): Promise<SocReading> {
    if (!this.#opts.readSoc) return { socTempC: null, throttleRaw: null };
    try {
      return await this.#opts.readSoc();
    } catch (error) {
      this.#log.debug("could not read SoC temperature or throttling", { error });
      return { socTempC: null, throttleRaw: null };
    }
  }

  #emptyStats(job: ChatJob): GenerationStats {
    const runner = this.#runner.status();
    return {
      backend: runner.backend,
      model: runner.model,
      modelSha256: this.#opts.modelSha256?.() ?? null,
      finishReason: "cancelled",
      promptTokens: 0,
      reusedTokens: 0,
      generatedTokens: 0,
      queueMs: Math.max(0, this.#clock.now() - job.acceptedAt),
      ttftMs: 0,
      prefillMs: 0,
      decodeMs: 0,
      prefillTokS: 0,
      decodeTokS: 0,
      peakRssBytes: 0,
      socTempC: null,
      throttleRaw: null,
    };
  }

  // ---------------------------------------------------------------- endings

  /** Takes the chat out of the queue for good; false when it had ended already. */
  #settle(job: HeldJob): boolean {
    if (job.settled) return false;
    job.settled = true;
    this.#queue.remove(job.requestId);
    job.wake?.();
    this.#finished.set(job.requestId, job.commandId);
    const keep = this.#opts.rememberFinished ?? 200;
    while (this.#finished.size > keep) this.#finished.delete(this.#finished.keys().next().value!);
    if (this.#queue.size === 0) this.#stopHeartbeat();
    return true;
  }

  /** Ends a held chat with an error (nothing when it has ended already). */
  #fail(job: HeldJob, failure: ChatFailure): void {
    if (!this.#settle(job)) return;
    if ("work" in job) {
      job.work.abort(failure);
      return;
    }
    this.#sendTerminal({ type: "error", requestId: job.requestId, ts: this.#clock.now(), ...failure });
  }

  /** Refuses a chat this executor does not hold (it never was, or is another command's). */
  #refuse(requestId: string, failure: ChatFailure): void {
    this.#sendTerminal({ type: "error", requestId, ts: this.#clock.now(), ...failure });
  }

  /** A done or error, checked against the contract first: a done that does not fit becomes an error, never silence. */
  #sendTerminal(message: Terminal): void {
    const parsed = ChatStreamMessage.safeParse(message);
    if (parsed.success) {
      this.#send(parsed.data);
      return;
    }
    const issue = parsed.error.issues[0];
    const why = `${issue?.path.join(".")}: ${issue?.message}`;
    this.#log.error("chat message does not match the contract", { requestId: message.requestId, type: message.type, issue: why });
    this.#send({
      type: "error",
      requestId: message.requestId,
      ts: this.#clock.now(),
      code: "model_error",
      message: `the device could not report this answer (${why})`.slice(0, 2000),
    });
  }

  #send(message: ChatStreamMessage): void {
    try {
      this.#opts.publish(message);
    } catch (error) {
      this.#log.error("chat message could not be published", { requestId: message.requestId, type: message.type, error });
    }
  }

  // ---------------------------------------------------------------- heartbeats

  #startHeartbeat(): void {
    if (this.#heartbeat) return;
    this.#heartbeat = setInterval(() => this.#beat(), this.#opts.heartbeatMs ?? CHAT_HEARTBEAT_MS);
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  #beat(): void {
    if (this.#queue.size === 0) {
      this.#stopHeartbeat();
      return;
    }
    const ts = this.#clock.now();
    for (const [position, job] of this.#queue.entries()) {
      if (job.settled || "work" in job) continue;
      this.#send({
        type: "progress",
        requestId: job.requestId,
        ts,
        phase: job.generation ? job.phase : "queued",
        queuePosition: position,
        generatedTokens: job.generatedTokens,
      });
    }
  }
}

/**
 * The answer as `done` carries it: within the contract's 200,000 characters and, as
 * JSON, well inside the broker's payload limit (never split inside a surrogate pair).
 */
export function fitAnswer(text: string, maxChars = ANSWER_MAX_CHARS, maxJsonBytes = ANSWER_MAX_JSON_BYTES): string {
  const fits = (s: string) => Buffer.byteLength(JSON.stringify(s)) <= maxJsonBytes;
  if (text.length <= maxChars && fits(text)) return text;
  let end = Math.min(text.length, maxChars);
  while (end > 0 && !fits(text.slice(0, end))) end = Math.floor(end * 0.9);
  const last = text.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}
