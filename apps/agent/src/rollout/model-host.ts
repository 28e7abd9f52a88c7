/**
 * What the rollout runner needs of the runner: hold it exclusively, stop it, start it
 * on another model, wait for it to load, and generate the health gate's reference
 * prompt. `SupervisorModelHost` does this with the real supervisor, holding the runner
 * as one entry of the chat queue (like a benchmark): the chat that is running ends
 * first, chats that arrive meanwhile wait in the queue behind the activation, and the
 * health gate's generation never meets a chat's (the runner would answer `busy`).
 */
import type { RunnerStatus } from "@orchard/contracts";
import type { ChatExecutor } from "../chat/executor.js";
import { sleep } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { Generation } from "../runner/generation.js";
import type { GenerateOptions, RunnerLaunch, RunnerSupervisor } from "../runner/supervisor.js";

export type ReadyOutcome = { ok: true } | { ok: false; message: string };

export interface ModelHost {
  /** Runs `fn` while nothing else uses the runner; rejects with the signal's reason when it aborts while waiting. */
  exclusive<T>(key: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T>;
  /** Stops the runner and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts the runner on `launch`; with a null model for executorch there is nothing to run and it stays stopped. */
  start(launch: RunnerLaunch): Promise<void>;
  /** Waits for the runner to be ready; not ok when it exits, stops or does not load in time. */
  waitReady(timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome>;
  generate(request: GenerateOptions): Generation;
}

/** True when a launch has something to run (the sim backend runs without a model file). */
export function canRun(launch: RunnerLaunch): boolean {
  return launch.backend === "sim" || launch.model !== null;
}

export interface SupervisorModelHostOptions {
  supervisor: RunnerSupervisor;
  queue: Pick<ChatExecutor, "enqueue">;
  logger: Logger;
  /** How often a full chat queue is asked again for a place. */
  queueRetryMs?: number;
}

export class SupervisorModelHost implements ModelHost {
  readonly #opts: SupervisorModelHostOptions;
  readonly #log: Logger;
  #seq = 0;

  constructor(options: SupervisorModelHostOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: "rollout" });
  }

  async exclusive<T>(key: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (;;) {
      signal.throwIfAborted();
      let entered!: () => void;
      let refused!: (error: Error) => void;
      let release!: () => void;
      let gaveUp = false;
      const turn = new Promise<void>((resolve, reject) => {
        entered = resolve;
        refused = reject;
      });
      const finished = new Promise<void>((resolve) => {
        release = resolve;
      });
      // The key cannot be a chat request id (they have no colon).
      const queued = this.#opts.queue.enqueue(`${key}:${++this.#seq}`, key.slice(0, 64), {
        needsReadyRunner: false,
        run: async () => {
          if (gaveUp) return;
          entered();
          await finished;
        },
        abort: (failure) => refused(new Error(`the chat queue dropped the rollout's turn: ${failure.message}`)),
      });
      if ("refused" in queued) {
        if (queued.refused.code === "queue_full") {
          this.#log.info("chat queue full; the rollout waits for a place", { key });
          await sleep(this.#opts.queueRetryMs ?? 1_000, signal);
          continue;
        }
        throw new Error(`the rollout cannot take the runner: ${queued.refused.message}`);
      }
      const onAbort = () => {
        gaveUp = true;
        refused(signal.reason as Error);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        await turn;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
      try {
        return await fn();
      } finally {
        release();
      }
    }
  }

  stop(): Promise<void> {
    return this.#opts.supervisor.stop();
  }

  async start(launch: RunnerLaunch): Promise<void> {
    const { supervisor } = this.#opts;
    supervisor.setLaunch(launch);
    if (!canRun(launch)) {
      await supervisor.stop();
      return;
    }
    // restart(): a fresh start that forgets the crashes of the model before.
    await supervisor.restart();
  }

  waitReady(timeoutMs: number, signal: AbortSignal): Promise<ReadyOutcome> {
    const { supervisor } = this.#opts;
    return new Promise<ReadyOutcome>((resolve, reject) => {
      const finish = (outcome: ReadyOutcome | null, error?: unknown) => {
        clearTimeout(timer);
        supervisor.off("state", onState);
        supervisor.off("exit", onExit);
        signal.removeEventListener("abort", onAbort);
        if (outcome) resolve(outcome);
        else reject(error);
      };
      const check = (status: RunnerStatus): boolean => {
        if (status.state === "ready") {
          finish({ ok: true });
          return true;
        }
        if (status.state === "stopped") {
          finish({ ok: false, message: `the runner is not running${status.lastError ? ` (${status.lastError})` : ""}` });
          return true;
        }
        if (status.state === "crashed" || status.state === "crash_loop") {
          finish({ ok: false, message: `the runner did not load the model: ${status.lastError ?? status.state}` });
          return true;
        }
        return false;
      };
      const onState = (status: RunnerStatus) => void check(status);
      const onExit = (exit: { expected: boolean; code: number | null; signal: string | null; stderrTail: string }) => {
        if (exit.expected) return;
        const status = supervisor.status();
        const why = status.lastError ?? (exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`);
        finish({ ok: false, message: `the runner did not load the model: ${why}` });
      };
      const onAbort = () => finish(null, signal.reason);
      const timer = setTimeout(
        () => finish({ ok: false, message: `the runner was not ready within ${Math.round(timeoutMs / 1000)} s` }),
        timeoutMs,
      );
      supervisor.on("state", onState);
      supervisor.on("exit", onExit);
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) onAbort();
      else check(supervisor.status());
    });
  }

  generate(request: GenerateOptions): Generation {
    return this.#opts.supervisor.generate(request);
  }
}
