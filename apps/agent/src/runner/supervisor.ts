/**
 * Supervises the native `orchard-runner` process: spawns it, speaks the NDJSON
 * protocol of contracts/runner.ts over its stdin/stdout, restarts it with backoff
 * when it dies (crash-loop aware, see restart-policy.ts), and reports its state,
 * its RSS and why it last failed.
 *
 * It is also the one door to the runner for the rest of the agent: the chat
 * executor sends `generate` through `generate()` and reads tokens from the
 * returned Generation; `cancel`, `reset` and `stats` are methods too. Every
 * protocol message is also emitted as a `message` event.
 *
 * When the model folder (`tokenizer`) carries a chat template, conversations are
 * rendered with it here (chat-template.ts) and sent as `rendered` text, so every
 * caller (chat, health gate, bench) prompts the model in its own format.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import {
  type GenerateRequest,
  RUNNER_MAX_LINE_BYTES,
  type RunnerBackend,
  type RunnerMessage,
  type RunnerReady,
  type RunnerRequest,
  type RunnerState,
  type RunnerStats,
  type RunnerStatus,
  encodeRunnerRequest,
  parseRunnerLine,
  withoutNul,
} from "@orchard/contracts";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { RingBuffer } from "../lib/ring-buffer.js";
import { type ChatTemplate, loadChatTemplate } from "./chat-template.js";
import { Generation, type GenerationSink, RunnerRequestError } from "./generation.js";
import { LineSplitter } from "./line-splitter.js";
import { readProcessRss } from "./proc-rss.js";
import { type LlamaRunnerProgram, defaultLlamaRunner, runnerCommandLine } from "./programs.js";
import { type RestartPolicyOptions, RestartPolicy } from "./restart-policy.js";
import { type RunnerLifecycleEvent, nextRunnerState } from "./state-machine.js";

export interface RunnerSupervisorOptions {
  /** Path of the orchard-runner binary (or a name looked up on PATH): the sim and executorch backends. */
  command: string;
  /** The llama.cpp runner (the llamacpp backend); default: this checkout's script with 1 thread. */
  llamaRunner?: LlamaRunnerProgram;
  backend: RunnerBackend;
  /** For the executorch backend. */
  model?: string | null;
  tokenizer?: string | null;
  /** executorch `--profile` of the command line's model. */
  profile?: string | null;
  /** More flags for the runner, after the ones above (e.g. the sim backend's rates). */
  extraArgs?: readonly string[];
  logger: Logger;
  clock?: Clock;
  restartPolicy?: Partial<RestartPolicyOptions>;
  /** How long a runner gets to exit after `shutdown` before it is killed. */
  shutdownGraceMs?: number;
  /** How long `stats`/`reset` wait for their answer. */
  requestTimeoutMs?: number;
  /** Where /proc is looked for (the RSS fallback). */
  procRoot?: string;
  env?: NodeJS.ProcessEnv;
}

/** One exit of the runner process. */
export interface RunnerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the agent asked it to stop (shutdown, restart). */
  expected: boolean;
  /** Its last lines of stderr. */
  stderrTail: string;
  /** When it will be started again; null when it will not be (a requested stop). */
  restartInMs: number | null;
  pid: number | null;
}

export interface RunnerSupervisorEvents {
  /** The lifecycle state changed (starting, ready, crashed, crash_loop, stopped). */
  state: [status: RunnerStatus, previous: RunnerState];
  /** The runner printed its `ready` line. */
  ready: [ready: RunnerReady];
  /** The runner process exited. */
  exit: [exit: RunnerExit];
  /** Every protocol message from the runner, in order. */
  message: [message: RunnerMessage];
}

export type GenerateOptions = Omit<GenerateRequest, "type">;

/** What the runner is started with: backend, model and flags (a rollout points it at another model). */
export interface RunnerLaunch {
  backend: RunnerBackend;
  model: string | null;
  tokenizer: string | null;
  /** executorch model profile (`--profile`); null = the runner's default. */
  profile: string | null;
  extraArgs: readonly string[];
}

const STDERR_TAIL_LINES = 20;
const STDERR_LINE_CHARS = 400;
const STDERR_TAIL_CHARS = 4000; // DeviceEvent runner.exit stderrTail bound
const LAST_ERROR_CHARS = 2000; // RunnerStatus.lastError bound
const MAX_OUTSTANDING_STATS = 2;
/** How orchard-runner (native/src/log.cpp) and the llama.cpp runner prefix their log lines on stderr. */
const RUNNER_LOG_PREFIXES = ["orchard-runner: ", "orchard-llama-runner: "];

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: RunnerRequestError) => void;
  timer: NodeJS.Timeout;
  /** Timed out already; its late answer is consumed and dropped, keeping answers in step. */
  expired: boolean;
}

export class RunnerSupervisor extends EventEmitter<RunnerSupervisorEvents> {
  readonly #opts: RunnerSupervisorOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #policy: RestartPolicy;
  #launch: RunnerLaunch;

  #state: RunnerState = "stopped";
  #child: ChildProcessWithoutNullStreams | null = null;
  #closed: Promise<void> = Promise.resolve();
  #startedAt = 0;
  #ready: RunnerReady | null = null;
  #rssBytes: number | null = null;
  #restarts = 0;
  #spawns = 0;
  #lastError: string | null = null;
  /** An error line without id in the current run (e.g. load_failed): the best explanation of an exit. */
  #runError: string | null = null;
  #stopping = false;
  #wanted = false;
  #restartTimer: NodeJS.Timeout | null = null;
  #stderrTail = new RingBuffer<string>(STDERR_TAIL_LINES);
  /** The runner's own last log line ("orchard-runner: …"), which says why better than e.g. a usage dump after it. */
  #lastLogLine: string | null = null;
  #badLines = 0;
  #generations = new Map<string, GenerationSink>();
  #statsWaiters: Waiter<RunnerStats>[] = [];
  #resetWaiters: Waiter<void>[] = [];
  #op: Promise<void> = Promise.resolve();
  /** The current run's model chat template (null: the runner's own), or why it could not be loaded. */
  #template: { template: ChatTemplate | null } | { error: string } = { template: null };

  constructor(options: RunnerSupervisorOptions) {
    super();
    this.#opts = options;
    this.#log = options.logger.child({ component: "runner" });
    this.#clock = options.clock ?? systemClock;
    this.#policy = new RestartPolicy(options.restartPolicy);
    this.#launch = {
      backend: options.backend,
      model: options.model ?? null,
      tokenizer: options.tokenizer ?? null,
      profile: options.profile ?? null,
      extraArgs: options.extraArgs ?? [],
    };
  }

  /** What the next spawn runs; the running process (if any) is not touched until it is restarted. */
  setLaunch(launch: RunnerLaunch): void {
    this.#launch = { ...launch, extraArgs: [...launch.extraArgs] };
  }

  launch(): RunnerLaunch {
    return this.#launch;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Starts the runner and keeps it running until `stop()`. */
  start(): void {
    if (this.#wanted) return;
    this.#wanted = true;
    if (!this.#child && this.#restartTimer === null) this.#spawn();
  }

  /** Stops the runner: `shutdown` on its stdin, SIGKILL when it has not exited after the grace period. */
  stop(): Promise<void> {
    return this.#exclusive(async () => {
      this.#wanted = false;
      this.#clearRestartTimer();
      if (this.#child) await this.#terminate(this.#child);
      else if (this.#state !== "stopped") this.#transition("stopped");
    });
  }

  /** An operator's restart: stop the current runner (if any) and start a fresh one, forgetting past crashes. */
  restart(): Promise<void> {
    return this.#exclusive(async () => {
      this.#wanted = true;
      this.#clearRestartTimer();
      this.#policy.reset();
      if (this.#child) await this.#terminate(this.#child);
      if (this.#wanted && !this.#child) this.#spawn();
    });
  }

  status(): RunnerStatus {
    return {
      state: this.#state,
      backend: this.#launch.backend,
      model: this.#ready ? withoutNul(this.#ready.model.slice(0, 256)) : null,
      pid: this.#child?.pid ?? null,
      rssBytes: this.#rssBytes,
      maxContext: this.#ready?.max_context ?? null,
      loadMs: this.#ready?.load_ms ?? null,
      restarts: this.#restarts,
      lastError: this.#lastError,
      version: this.#ready ? withoutNul(this.#ready.version.slice(0, 64)) : null,
    };
  }

  /** The runner's `ready` line of the current run, if it printed one. */
  readyInfo(): RunnerReady | null {
    return this.#ready;
  }

  /** Protocol lines the runner wrote that were not protocol messages. */
  get badLines(): number {
    return this.#badLines;
  }

  // ------------------------------------------------------------------ requests

  /**
   * Starts a generation. Throws RunnerRequestError("not_ready") unless the runner
   * is ready, ("bad_request") for an invalid request or an id already in flight.
   * The runner itself answers `busy` when another generation is running.
   */
  generate(request: GenerateOptions): Generation {
    const child = this.#requireReady();
    if (this.#generations.has(request.id)) {
      throw new RunnerRequestError("bad_request", `a generation with id ${request.id} is already running`);
    }
    let line: string;
    try {
      line = encodeRunnerRequest({ ...this.#render(request), type: "generate" });
    } catch (error) {
      throw new RunnerRequestError("bad_request", `invalid generate request: ${(error as Error).message}`);
    }
    const { generation, sink } = Generation.create(request.id, () => this.cancel(request.id));
    this.#generations.set(request.id, sink);
    child.stdin.write(line);
    return generation;
  }

  /** `request` with its conversation rendered by the model's chat template, when it has one. */
  #render(request: GenerateOptions): GenerateOptions {
    if (request.messages === undefined) return request;
    if ("error" in this.#template) throw new RunnerRequestError("bad_request", this.#template.error);
    const { template } = this.#template;
    if (template === null) return request;
    const { messages, ...rest } = request;
    try {
      return { ...rest, rendered: template.render(messages) };
    } catch (error) {
      throw new RunnerRequestError("bad_request", (error as Error).message);
    }
  }

  /** Asks the runner to stop generation `id` between tokens. */
  cancel(id: string): void {
    if (!this.#generations.has(id) || !this.#child) return;
    this.#write({ type: "cancel", id });
  }

  /** Drops the runner's KV cache (of `session`, or whatever it holds). */
  reset(session?: string): Promise<void> {
    const child = this.#requireReady();
    const answer = this.#wait(this.#resetWaiters, "reset");
    child.stdin.write(encodeRunnerRequest(session === undefined ? { type: "reset" } : { type: "reset", session }));
    return answer;
  }

  /** The runner's own view of its memory and cache. */
  stats(): Promise<RunnerStats> {
    const child = this.#requireReady();
    const answer = this.#wait(this.#statsWaiters, "stats");
    child.stdin.write(encodeRunnerRequest({ type: "stats" }));
    return answer;
  }

  /**
   * Refreshes the runner's RSS (called every telemetry tick): asks the runner with
   * `stats` when it is ready, else — loading, or not answering — reads
   * /proc/<pid>/status. Null when no runner process exists.
   */
  async pollRss(): Promise<number | null> {
    const pid = this.#child?.pid;
    if (pid === undefined) {
      this.#rssBytes = null;
      return null;
    }
    let rss: number | null = null;
    if (this.#state === "ready" && this.#statsWaiters.length < MAX_OUTSTANDING_STATS) {
      rss = await this.stats().then(
        (s) => s.rss_bytes,
        () => null,
      );
    }
    rss ??= await readProcessRss(pid, this.#opts.procRoot);
    if (this.#child?.pid === pid) this.#rssBytes = rss;
    return rss;
  }

  // ------------------------------------------------------------------ internals

  #exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.#op.then(fn, fn);
    this.#op = run.catch(() => undefined);
    return run;
  }

  #requireReady(): ChildProcessWithoutNullStreams {
    if (this.#state !== "ready" || !this.#child) {
      throw new RunnerRequestError("not_ready", `the runner is ${this.#state}${this.#lastError ? ` (${this.#lastError})` : ""}`);
    }
    return this.#child;
  }

  #write(request: RunnerRequest): void {
    const child = this.#child;
    if (!child || child.stdin.destroyed || !child.stdin.writable) return;
    child.stdin.write(encodeRunnerRequest(request));
  }

  #wait<T>(queue: Waiter<T>[], what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        expired: false,
        timer: setTimeout(() => {
          waiter.expired = true;
          reject(new RunnerRequestError("timeout", `the runner did not answer ${what} within ${this.#requestTimeoutMs()} ms`));
        }, this.#requestTimeoutMs()),
      };
      queue.push(waiter);
    });
  }

  #requestTimeoutMs(): number {
    return this.#opts.requestTimeoutMs ?? 2_000;
  }

  #answer<T>(queue: Waiter<T>[], value: T, what: string): void {
    const waiter = queue.shift();
    if (!waiter) {
      this.#log.debug(`unrequested ${what} answer from the runner`);
      return;
    }
    clearTimeout(waiter.timer);
    if (!waiter.expired) waiter.resolve(value);
  }

  #clearRestartTimer(): void {
    if (this.#restartTimer !== null) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = null;
    }
  }

  #transition(event: RunnerLifecycleEvent): void {
    const previous = this.#state;
    this.#state = nextRunnerState(previous, event);
    if (this.#state !== previous) this.emit("state", this.status(), previous);
  }

  #commandLine(): { command: string; args: string[] } {
    return runnerCommandLine(this.#launch, {
      orchardRunner: this.#opts.command,
      llamaRunner: this.#opts.llamaRunner ?? defaultLlamaRunner(1),
    });
  }

  #loadTemplate(): { template: ChatTemplate | null } | { error: string } {
    const dir = this.#launch.tokenizer;
    if (dir === null || this.#launch.backend === "llamacpp") return { template: null };
    try {
      const template = loadChatTemplate(dir);
      if (template) this.#log.info("prompts rendered with the model's chat template", { file: template.origin });
      return { template };
    } catch (error) {
      const message = (error as Error).message;
      this.#log.warn("the model's chat template cannot be used; chats are refused", { error: message });
      return { error: message };
    }
  }

  #spawn(): void {
    this.#ready = null;
    this.#rssBytes = null;
    this.#runError = null;
    this.#lastLogLine = null;
    this.#stderrTail.clear();
    this.#stopping = false;
    if (this.#spawns > 0) this.#restarts += 1;
    this.#spawns += 1;

    this.#template = this.#loadTemplate();
    const { command, args } = this.#commandLine();
    // Own process group: a Ctrl-C in the agent's terminal reaches the agent, which
    // then shuts the runner down in order, instead of reaching both at once.
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], detached: true, env: this.#opts.env ?? process.env });
    this.#child = child;
    this.#startedAt = this.#clock.now();
    let spawnError: Error | null = null;
    let resolveClosed!: () => void;
    this.#closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });

    child.on("error", (error) => {
      // Spawn failures (ENOENT, EACCES) arrive here, followed by `close`.
      if (child.pid === undefined) spawnError = error;
      else this.#log.warn("runner process error", { error });
    });
    child.stdin.on("error", (error) => this.#log.debug("runner stdin closed", { error }));

    const stdout = new LineSplitter(
      RUNNER_MAX_LINE_BYTES,
      (line) => this.#onLine(line),
      (bytes) => this.#onBadLine(`a line longer than ${RUNNER_MAX_LINE_BYTES} bytes (${bytes} so far)`),
    );
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stdout.on("end", () => stdout.end());

    const stderr = new LineSplitter(64 * 1024, (raw) => {
      // A NUL would make the exit event and the status fail the contract (the server cannot store it).
      const line = withoutNul(raw);
      if (line.trim() === "") return;
      const short = line.length > STDERR_LINE_CHARS ? `${line.slice(0, STDERR_LINE_CHARS)}…` : line;
      this.#stderrTail.push(short);
      if (RUNNER_LOG_PREFIXES.some((prefix) => short.startsWith(prefix))) this.#lastLogLine = short;
      this.#log.debug("runner stderr", { line: short });
    });
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.stderr.on("end", () => stderr.end());

    child.on("close", (code, signal) => {
      resolveClosed();
      this.#onClose(child, spawnError ? null : code, signal, spawnError);
    });

    this.#log.info("runner starting", { command, args: args.join(" "), pid: child.pid ?? null, restarts: this.#restarts });
    this.#transition("spawn");
  }

  #onBadLine(what: string): void {
    this.#badLines += 1;
    // The first few and then every 100th: enough to diagnose, not enough to flood the journal.
    if (this.#badLines <= 5 || this.#badLines % 100 === 0) {
      this.#log.warn("runner wrote a line that is not a protocol message; ignored", { what, badLines: this.#badLines });
    }
  }

  #onLine(line: string): void {
    if (line.trim() === "") return;
    let message: RunnerMessage;
    try {
      message = parseRunnerLine(line);
    } catch (error) {
      this.#onBadLine((error as Error).message);
      return;
    }
    this.emit("message", message);
    switch (message.type) {
      case "ready":
        if (this.#state !== "starting") {
          this.#log.warn("runner sent a second ready line; ignored");
          return;
        }
        this.#ready = message;
        this.#rssBytes = message.rss_bytes;
        this.#log.info("runner ready", {
          backend: message.backend,
          model: message.model,
          maxContext: message.max_context,
          loadMs: message.load_ms,
          rssBytes: message.rss_bytes,
          runnerVersion: message.version,
          pid: this.#child?.pid,
        });
        this.#transition("ready");
        this.emit("ready", message);
        return;
      case "token":
        this.#generations.get(message.id)?.token(message);
        return;
      case "done": {
        const sink = this.#generations.get(message.id);
        this.#generations.delete(message.id);
        sink?.done(message);
        return;
      }
      case "stats":
        this.#rssBytes = message.rss_bytes;
        this.#answer(this.#statsWaiters, message, "stats");
        return;
      case "reset_done":
        this.#answer(this.#resetWaiters, undefined, "reset");
        return;
      case "error": {
        const sink = message.id === undefined ? undefined : this.#generations.get(message.id);
        if (sink && message.id !== undefined) {
          this.#generations.delete(message.id);
          sink.fail(new RunnerRequestError(message.code, message.message));
          return;
        }
        if (message.code === "load_failed" || message.code === "unsupported" || message.code === "model_error") {
          this.#runError = withoutNul(`${message.code}: ${message.message}`);
        }
        this.#log.warn("runner reported an error", { code: message.code, message: message.message, id: message.id });
        return;
      }
    }
  }

  #describeExit(code: number | null, signal: NodeJS.Signals | null, spawnError: Error | null): string {
    if (spawnError) {
      const errno = (spawnError as NodeJS.ErrnoException).code;
      const hint =
        errno === "ENOENT"
          ? " (not found: build it with `npm run build`, which needs `sudo apt-get install cmake g++ nlohmann-json3-dev`, or pass --runner-bin / ORCHARD_RUNNER_BIN)"
          : errno === "EACCES"
            ? " (not executable)"
            : "";
      return `cannot start ${this.#commandLine().command}: ${spawnError.message}${hint}`;
    }
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    // A runner that exits by itself has usually just said why on stderr; one killed by a
    // signal has not (its last line is whatever it was doing), so only a protocol error counts.
    const why = signal ? this.#runError : (this.#runError ?? this.#lastLogLine ?? this.#stderrTail.toArray().at(-1) ?? null);
    return (why ? `${how}: ${why}` : how).slice(0, LAST_ERROR_CHARS);
  }

  /** The last stderr lines; the runner's last log line leads them when later output pushed it out. */
  #stderrTailText(): string {
    const lines = this.#stderrTail.toArray();
    if (this.#lastLogLine !== null && !lines.includes(this.#lastLogLine)) lines.unshift(this.#lastLogLine, "…");
    const text = lines.join("\n");
    return text.length > STDERR_TAIL_CHARS ? `…${text.slice(-(STDERR_TAIL_CHARS - 1))}` : text;
  }

  #onClose(child: ChildProcessWithoutNullStreams, code: number | null, signal: NodeJS.Signals | null, spawnError: Error | null): void {
    if (child !== this.#child) return;
    this.#child = null;
    this.#rssBytes = null;
    const pid = child.pid ?? null;
    const stderrTail = this.#stderrTailText();
    this.#failPending(`the runner exited (${signal ?? `code ${code}`})`);

    if (this.#stopping || !this.#wanted) {
      this.#log.info("runner stopped", { pid, code, signal });
      this.emit("exit", { code, signal, expected: true, stderrTail, restartInMs: null, pid });
      this.#transition("stopped");
      return;
    }

    const decision = this.#policy.onCrash(this.#clock.now(), this.#startedAt);
    this.#lastError = this.#describeExit(code, signal, spawnError);
    const fields = { pid, code, signal, restartInMs: decision.delayMs, recentCrashes: decision.recentCrashes, lastError: this.#lastError };
    if (decision.crashLoop) this.#log.error("runner is crash-looping; retrying only every few minutes", fields);
    else this.#log.warn("runner exited unexpectedly; restarting", fields);

    this.emit("exit", { code, signal, expected: false, stderrTail, restartInMs: decision.delayMs, pid });
    this.#transition(decision.crashLoop ? "crash_loop" : "crash");
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#wanted && !this.#child) this.#spawn();
    }, decision.delayMs);
  }

  #failPending(why: string): void {
    for (const sink of this.#generations.values()) sink.fail(new RunnerRequestError("runner_exited", why));
    this.#generations.clear();
    for (const queue of [this.#statsWaiters, this.#resetWaiters] as Waiter<unknown>[][]) {
      for (const waiter of queue.splice(0)) {
        clearTimeout(waiter.timer);
        if (!waiter.expired) waiter.reject(new RunnerRequestError("runner_exited", why));
      }
    }
  }

  async #terminate(child: ChildProcessWithoutNullStreams): Promise<void> {
    this.#stopping = true;
    const closed = this.#closed;
    this.#write({ type: "shutdown" });
    child.stdin.end();
    const grace = this.#opts.shutdownGraceMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const exitedInTime = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), grace);
      }),
    ]);
    clearTimeout(timer);
    if (!exitedInTime) {
      this.#log.warn("runner did not exit after shutdown; killing it", { pid: child.pid, graceMs: grace });
      child.kill("SIGKILL");
      await closed;
    }
  }
}
