/**
 * When to restart a runner that died, as plain arithmetic over timestamps (no
 * timers), so the whole schedule is unit-tested with an injected clock.
 *
 * - Restarts back off 1 s, 2 s, 4 s … up to 60 s.
 * - A run that lasted 60 s counts as stable: the next crash starts again at 1 s.
 * - 5 crashes within 2 minutes is a crash loop: the runner is reported as
 *   `crash_loop` and retried only every 5 minutes, until a run is stable again
 *   or an operator asks for a restart.
 */
import { backoffDelay } from "../lib/backoff.js";

export interface RestartPolicyOptions {
  initialMs: number;
  maxMs: number;
  stableAfterMs: number;
  crashLoopCount: number;
  crashLoopWindowMs: number;
  crashLoopRetryMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  initialMs: 1_000,
  maxMs: 60_000,
  stableAfterMs: 60_000,
  crashLoopCount: 5,
  crashLoopWindowMs: 120_000,
  crashLoopRetryMs: 300_000,
};

export interface RestartDecision {
  /** Wait this long before starting the runner again. */
  delayMs: number;
  crashLoop: boolean;
  /** Crashes within the crash-loop window, this one included. */
  recentCrashes: number;
}

export class RestartPolicy {
  readonly options: RestartPolicyOptions;
  #attempt = 0;
  #crashes: number[] = [];
  #crashLoop = false;

  constructor(options: Partial<RestartPolicyOptions> = {}) {
    this.options = { ...DEFAULT_RESTART_POLICY, ...options };
  }

  get inCrashLoop(): boolean {
    return this.#crashLoop;
  }

  /** The runner started at `startedAt` exited unexpectedly at `now`. */
  onCrash(now: number, startedAt: number): RestartDecision {
    const o = this.options;
    if (now - startedAt >= o.stableAfterMs) {
      this.#attempt = 0;
      this.#crashLoop = false;
    }
    this.#crashes = this.#crashes.filter((t) => now - t <= o.crashLoopWindowMs);
    this.#crashes.push(now);
    if (this.#crashes.length >= o.crashLoopCount) this.#crashLoop = true;
    const delayMs = this.#crashLoop
      ? o.crashLoopRetryMs
      : backoffDelay(this.#attempt, { initialMs: o.initialMs, maxMs: o.maxMs, factor: 2, jitter: 0 });
    this.#attempt += 1;
    return { delayMs, crashLoop: this.#crashLoop, recentCrashes: this.#crashes.length };
  }

  /** An operator asked for a restart: give the runner a fresh start. */
  reset(): void {
    this.#attempt = 0;
    this.#crashes = [];
    this.#crashLoop = false;
  }
}
