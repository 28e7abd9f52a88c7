/**
 * Benchmarks on the device: a `bench.run` command runs its prompts on the runner one
 * after another, as ONE entry of the chat executor's queue (so a benchmark never
 * overlaps an answer: it waits for the running chat, and chats arriving meanwhile wait
 * for it), and reports on the `events` topic: `bench.progress` when it starts
 * (completed 0) and after each prompt, then exactly one `bench.result`.
 *
 * - Each prompt is one user message (the runner renders the chat template, as the
 *   reference check "The capital of France is" does), greedy, `maxNewTokens`, and no
 *   runner session, so nothing is reused from an earlier prompt or chat.
 * - The measurements are the runner's own `done` statistics plus the wall time around
 *   the request; energy per token is the mean board power sampled about once a second
 *   while the prompt runs × its wall time ÷ generated tokens (null where power is unreadable).
 * - The board (SoC temperature, throttle bits, ARM clock, power) is read before the
 *   first prompt and after the last, through `readBoard`.
 * - A failure (runner not ready, runner exited, engine error, agent shutdown) ends the
 *   run with ok=false, a sentence saying why and the prompts finished so far.
 * - A bench.run for a run id this device already holds or answered is ignored (a QoS 1
 *   re-delivery, or the same run sent again under another command id).
 *
 * Nothing here talks to MQTT: `publish` is the link's publishEvent (or a test's recorder).
 */
import {
  BenchBoardState,
  type BenchDeviceResult,
  type BenchPrompt,
  type BenchPromptResult,
  BenchResultEvent,
  type BenchRunCommand,
  type DeviceEvent,
  type RunnerDone,
} from "@orchard/contracts";
import type { ChatExecutor } from "../chat/executor.js";
import { notReadyMessage } from "../chat/errors.js";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { RecentIds } from "../link/recent-ids.js";
import { type Generation, RunnerRequestError } from "../runner/generation.js";
import type { RunnerSupervisor } from "../runner/supervisor.js";

/** What a benchmark needs of the runner supervisor. */
export type BenchRunnerApi = Pick<RunnerSupervisor, "generate" | "status" | "readyInfo">;
/** Where a benchmark waits its turn: the chat executor's queue. */
export type BenchQueue = Pick<ChatExecutor, "enqueue">;

export type BenchEvent = Extract<DeviceEvent, { kind: "bench.progress" | "bench.result" }>;

export interface BenchRunnerOptions {
  runner: BenchRunnerApi;
  queue: BenchQueue;
  /** Sends one event on the device's `events` topic (QoS 1). Must not throw. */
  publish: (event: BenchEvent) => void;
  /** The board's state now; fields it cannot read are null. Also sampled for power while a prompt runs. */
  readBoard: () => Promise<BenchBoardState>;
  /** The sha256 of the model the agent has active, when it knows it. */
  modelSha256?: () => string | null;
  logger: Logger;
  clock?: Clock;
  /** How often board power is sampled while a prompt runs. */
  powerSampleMs?: number;
  /** Run ids remembered, so a repeated bench.run is ignored. */
  rememberRuns?: number;
  /** How long shutdown waits for a running benchmark to stop and report. */
  shutdownGraceMs?: number;
  /** A board reading that takes longer counts as unreadable (the queue must never hang on it). */
  readBoardTimeoutMs?: number;
}

export const BENCH_POWER_SAMPLE_MS = 1_000;
/** BenchPromptResult.textPreview's bound. */
const PREVIEW_CHARS = 200;
const ERROR_CHARS = 2_000;
const UNREADABLE: BenchBoardState = { socTempC: null, throttleRaw: null, cpuFreqHz: null, boardPowerW: null };
const SHUTTING_DOWN = "the agent is shutting down";

interface Run {
  readonly command: BenchRunCommand;
  state: "queued" | "running" | "finished";
  /** Why it must stop while running (shutdown); the prompt in flight is cancelled. */
  stopReason: string | null;
  /** The prompt in flight. */
  generation: Generation | null;
  /** What has been measured so far, once it runs. */
  partial: BenchDeviceResult | null;
  /** Resolves once its bench.result has been handed to `publish`. */
  readonly finished: Promise<void>;
  resolveFinished: () => void;
}

export class BenchRunner {
  readonly #opts: BenchRunnerOptions;
  readonly #runner: BenchRunnerApi;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #seen: RecentIds;
  /** Runs held (queued or running), by run id. */
  readonly #active = new Map<string, Run>();
  #closing: Promise<void> | null = null;

  constructor(options: BenchRunnerOptions) {
    this.#opts = options;
    this.#runner = options.runner;
    this.#log = options.logger.child({ component: "bench" });
    this.#clock = options.clock ?? systemClock;
    this.#seen = new RecentIds(options.rememberRuns ?? 100);
  }

  /** Run ids held now (queued or running), oldest first. */
  held(): string[] {
    return [...this.#active.keys()];
  }

  // ---------------------------------------------------------------- commands

  /** A `bench.run` command: queued behind the chats held now, or refused with a bench.result. */
  start(command: BenchRunCommand): void {
    const { runId } = command;
    if (!this.#seen.add(runId)) {
      this.#log.info("bench.run for a run this device already has; ignored", { runId, commandId: command.id });
      return;
    }
    const run = newRun(command);
    if (this.#closing) {
      this.#finish(run, `the benchmark did not run: ${SHUTTING_DOWN}`);
      return;
    }
    this.#active.set(runId, run);
    const queued = this.#opts.queue.enqueue(`bench:${runId}`, command.id, {
      run: () => this.#execute(run),
      abort: (failure) => this.#abort(run, this.#closing ? SHUTTING_DOWN : failure.message),
    });
    if ("refused" in queued) {
      this.#log.info("benchmark refused", { runId, reason: queued.refused.message });
      this.#finish(run, `the benchmark was not queued: ${queued.refused.message}`);
      return;
    }
    this.#log.info("benchmark queued", {
      runId,
      prompts: command.prompts.length,
      maxNewTokens: command.maxNewTokens,
      queuePosition: queued.position,
    });
  }

  /** Answers a bench.run that is not valid (its run id is) with a failed bench.result. */
  refuseInvalid(runId: string, reason: string): void {
    if (!this.#seen.add(runId)) return;
    this.#publishResult(runId, `the device refused the benchmark: ${reason}`, null);
  }

  /**
   * Shutdown: no new runs; queued ones end with ok=false at once; the running one has
   * its prompt cancelled and reports the prompts it finished (waiting `shutdownGraceMs` at most).
   */
  shutdown(): Promise<void> {
    this.#closing ??= (async () => {
      const running: Run[] = [];
      for (const run of [...this.#active.values()]) {
        if (run.state === "running") running.push(run);
        this.#abort(run, SHUTTING_DOWN);
      }
      if (running.length === 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(running.map((run) => run.finished)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#opts.shutdownGraceMs ?? 5_000);
        }),
      ]);
      clearTimeout(timer);
      for (const run of running) {
        // The runner did not stop in time: report what was measured, without an after-reading.
        if (run.state !== "finished") this.#finish(run, this.#stoppedMessage(run), run.partial && { ...run.partial, after: UNREADABLE });
      }
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------- a run

  #abort(run: Run, why: string): void {
    if (run.state === "queued") {
      this.#log.info("benchmark dropped before it ran", { runId: run.command.runId, why });
      this.#finish(run, `the benchmark did not run: ${why}`);
    } else if (run.state === "running") {
      run.stopReason ??= why;
      run.generation?.cancel();
    }
  }

  /** Runs at the front of the queue with the runner ready; resolves once the result is sent. */
  async #execute(run: Run): Promise<void> {
    if (run.state !== "queued") return;
    run.state = "running";
    const { command } = run;
    const total = command.prompts.length;
    const ready = this.#runner.readyInfo();
    const status = this.#runner.status();
    this.#log.info("benchmark started", { runId: command.runId, prompts: total, backend: status.backend, model: status.model });
    const before = await this.#readBoard();
    const result: BenchDeviceResult = {
      backend: (ready?.backend ?? status.backend).slice(0, 32),
      runnerVersion: ready?.version.slice(0, 64) ?? status.version ?? null,
      model: ready?.model.slice(0, 256) ?? status.model,
      modelSha256: this.#modelSha256(),
      loadMs: ready?.load_ms ?? status.loadMs,
      before,
      after: UNREADABLE,
      prompts: [],
    };
    run.partial = result;
    this.#publish({ kind: "bench.progress", ts: this.#clock.now(), runId: command.runId, completed: 0, total });

    let error: string | null = null;
    for (const [index, prompt] of command.prompts.entries()) {
      if (run.stopReason) break;
      try {
        const measured = await this.#prompt(run, prompt, index);
        if (!measured) {
          error = run.stopReason ? null : `prompt ${prompt.id} (${index + 1} of ${total}) was cancelled on the device`;
          break;
        }
        result.prompts.push(measured);
      } catch (failure) {
        error = this.#describe(failure, run, prompt, index);
        break;
      }
      this.#publish({ kind: "bench.progress", ts: this.#clock.now(), runId: command.runId, completed: result.prompts.length, total });
    }
    if (run.stopReason) error = this.#stoppedMessage(run);
    result.after = await this.#readBoard();
    this.#finish(run, error, result);
  }

  /** One prompt, measured; null when it was cancelled. Throws what the runner threw. */
  async #prompt(run: Run, prompt: BenchPrompt, index: number): Promise<BenchPromptResult | null> {
    const { command } = run;
    const startedAt = this.#clock.now();
    // No session: the runner resets its cache and feeds the whole prompt (no reuse from an earlier prompt or chat).
    const generation = this.#runner.generate({
      id: `bench-${index}-${command.runId}`.slice(0, 64),
      messages: [{ role: "user", content: prompt.text }],
      max_new_tokens: command.maxNewTokens,
      temperature: 0,
    });
    run.generation = generation;
    const power = this.#samplePower();
    let preview = "";
    let watts: (number | null)[] = [];
    let done: RunnerDone;
    let endedAt: number;
    try {
      for await (const token of generation) {
        if (preview.length < PREVIEW_CHARS) preview += token.text;
      }
      done = await generation.result;
      endedAt = this.#clock.now();
    } finally {
      run.generation = null;
      // Stops the sampler whatever happened; a reading in flight is waited for.
      watts = await power.stop();
    }
    if (done.finish_reason === "cancelled") return null;
    const totalMs = Math.max(0, endedAt - startedAt);
    return {
      promptId: prompt.id,
      promptTokens: done.prompt_tokens,
      generatedTokens: done.generated_tokens,
      ttftMs: done.ttft_ms,
      prefillTokS: done.prefill_tok_s,
      decodeTokS: done.decode_tok_s,
      totalMs,
      peakRssBytes: done.peak_rss_bytes,
      energyJPerToken: energyPerToken(watts, totalMs, done.generated_tokens),
      finishReason: done.finish_reason,
      textPreview: textPreview(preview),
    };
  }

  /** Reads board power now and then every `powerSampleMs` until stopped; stop() gives the readings (null = unreadable). */
  #samplePower(): { stop: () => Promise<(number | null)[]> } {
    const watts: (number | null)[] = [];
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    const interval = this.#opts.powerSampleMs ?? BENCH_POWER_SAMPLE_MS;
    const loop = (async () => {
      while (!stopped) {
        watts.push((await this.#readBoard()).boardPowerW);
        if (stopped) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, interval);
        });
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(timer);
        wake?.();
        await loop;
        return watts;
      },
    };
  }

  /** The board through `readBoard`, each field checked against the contract (an implausible value is null). */
  async #readBoard(): Promise<BenchBoardState> {
    const timeoutMs = this.#opts.readBoardTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    let raw: BenchBoardState;
    try {
      raw = await Promise.race([
        this.#opts.readBoard(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no reading within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      this.#log.debug("could not read the board's state", { error });
      return UNREADABLE;
    } finally {
      clearTimeout(timer);
    }
    const field = <K extends keyof BenchBoardState>(key: K): BenchBoardState[K] => {
      const parsed = BenchBoardState.shape[key].safeParse(raw?.[key] ?? null);
      return (parsed.success ? parsed.data : null) as BenchBoardState[K];
    };
    return {
      socTempC: field("socTempC"),
      throttleRaw: field("throttleRaw"),
      cpuFreqHz: field("cpuFreqHz"),
      boardPowerW: field("boardPowerW"),
    };
  }

  #modelSha256(): string | null {
    try {
      return this.#opts.modelSha256?.() ?? null;
    } catch {
      return null;
    }
  }

  /** Why a prompt failed, for a person reading the results table. */
  #describe(error: unknown, run: Run, prompt: BenchPrompt, index: number): string {
    const where = `prompt ${prompt.id} (${index + 1} of ${run.command.prompts.length})`;
    if (!(error instanceof RunnerRequestError)) {
      return `the benchmark failed on ${where}: ${error instanceof Error ? error.message : String(error)}`;
    }
    switch (error.code) {
      case "not_ready":
        return `the runner was not ready for ${where}: ${notReadyMessage(this.#runner.status())}`;
      case "runner_exited":
        return `the runner exited during ${where} (${error.message}); the agent is restarting it`;
      case "context_full":
        return `${where} does not fit in the model's context with maxNewTokens ${run.command.maxNewTokens}: ${error.message}`;
      default:
        return `the runner failed on ${where}: ${error.code}: ${error.message}`;
    }
  }

  #stoppedMessage(run: Run): string {
    const done = run.partial?.prompts.length ?? 0;
    return `the benchmark stopped after ${done} of ${run.command.prompts.length} prompts: ${run.stopReason ?? SHUTTING_DOWN}`;
  }

  // ---------------------------------------------------------------- reporting

  /** Ends a run with its one bench.result (nothing when it has ended already). */
  #finish(run: Run, error: string | null, result: BenchDeviceResult | null = null): void {
    if (run.state === "finished") return;
    run.state = "finished";
    this.#active.delete(run.command.runId);
    this.#log.info(error === null ? "benchmark finished" : "benchmark failed", {
      runId: run.command.runId,
      prompts: result?.prompts.length ?? 0,
      error,
    });
    this.#publishResult(run.command.runId, error, result);
    run.resolveFinished();
  }

  /** A bench.result, checked against the contract first: one that does not fit becomes ok=false, never silence. */
  #publishResult(runId: string, error: string | null, result: BenchDeviceResult | null): void {
    const event: Extract<BenchEvent, { kind: "bench.result" }> = {
      kind: "bench.result",
      ts: this.#clock.now(),
      runId,
      ok: error === null,
      error: error === null ? null : error.slice(0, ERROR_CHARS),
      result,
    };
    const parsed = BenchResultEvent.safeParse(event);
    if (parsed.success) {
      this.#publish(parsed.data);
      return;
    }
    const issue = parsed.error.issues[0];
    const why = `${issue?.path.join(".")}: ${issue?.message}`;
    this.#log.error("bench.result does not match the contract", { runId, issue: why });
    this.#publish({
      kind: "bench.result",
      ts: this.#clock.now(),
      runId,
      ok: false,
      error: `the device could not report this benchmark (${why})`.slice(0, ERROR_CHARS),
      result: null,
    });
  }

  #publish(event: BenchEvent): void {
    try {
      this.#opts.publish(event);
    } catch (error) {
      this.#log.error("bench event could not be published", { runId: event.runId, kind: event.kind, error });
    }
  }
}

function newRun(command: BenchRunCommand): Run {
  let resolveFinished!: () => void;
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });
  return { command, state: "queued", stopReason: null, generation: null, partial: null, finished, resolveFinished };
}

/**
 * Joules per generated token: mean board power over the readings × the prompt's wall
 * time ÷ generated tokens. null when no reading was possible or nothing was generated.
 */
export function energyPerToken(watts: readonly (number | null)[], totalMs: number, generatedTokens: number): number | null {
  const readable = watts.filter((w): w is number => w !== null && Number.isFinite(w) && w >= 0);
  if (readable.length === 0 || generatedTokens <= 0) return null;
  const meanW = readable.reduce((sum, w) => sum + w, 0) / readable.length;
  return (meanW * (Math.max(0, totalMs) / 1000)) / generatedTokens;
}

/** The first characters of an answer, never ending inside a surrogate pair. */
export function textPreview(text: string, maxChars = PREVIEW_CHARS): string {
  let end = Math.min(text.length, maxChars);
  const last = text.charCodeAt(end - 1);
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end -= 1;
  return text.slice(0, end);
}
