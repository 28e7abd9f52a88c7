/**
 * Download progress for rollout.progress: bytes done of the artifact's total, the
 * rate over the last few seconds and the ETA, reported about every 1 % or 2 s
 * (whichever comes first, at most 4 times a second), plus once at the start and the end.
 */
import type { Clock } from "../lib/clock.js";

export interface ProgressSnapshot {
  bytesDone: number;
  bytesTotal: number;
  rateBps: number | null;
  etaSeconds: number | null;
}

export interface ProgressMeterOptions {
  total: number;
  /** Bytes already on disk (a resumed download). */
  done: number;
  clock: Clock;
  emit: (snapshot: ProgressSnapshot) => void;
  /** Report at least this often while bytes arrive. */
  intervalMs?: number;
  /** …and at most this often. */
  minIntervalMs?: number;
  /** Fraction of the total that triggers a report. */
  step?: number;
  /** Window the rate is measured over. */
  rateWindowMs?: number;
}

export class ProgressMeter {
  readonly #opts: ProgressMeterOptions;
  #done: number;
  #lastEmitAt = -Infinity;
  #lastEmitBytes = -1;
  readonly #samples: { at: number; bytes: number }[] = [];

  constructor(options: ProgressMeterOptions) {
    this.#opts = options;
    this.#done = Math.min(options.done, options.total);
    this.#samples.push({ at: options.clock.now(), bytes: this.#done });
    this.#emit();
  }

  get done(): number {
    return this.#done;
  }

  add(delta: number): void {
    this.#done = Math.max(0, Math.min(this.#opts.total, this.#done + delta));
    const now = this.#opts.clock.now();
    this.#samples.push({ at: now, bytes: this.#done });
    const windowMs = this.#opts.rateWindowMs ?? 5_000;
    while (this.#samples.length > 2 && this.#samples[1]!.at <= now - windowMs) this.#samples.shift();
    const since = now - this.#lastEmitAt;
    const step = Math.max(1, Math.floor(this.#opts.total * (this.#opts.step ?? 0.01)));
    if (since < (this.#opts.minIntervalMs ?? 250)) return;
    if (Math.abs(this.#done - this.#lastEmitBytes) >= step || since >= (this.#opts.intervalMs ?? 2_000)) this.#emit();
  }

  /** The final report (skipped when the last one said the same). */
  finish(): void {
    if (this.#lastEmitBytes !== this.#done) this.#emit();
  }

  snapshot(): ProgressSnapshot {
    const first = this.#samples[0]!;
    const last = this.#samples.at(-1)!;
    const elapsed = (last.at - first.at) / 1000;
    const rate = elapsed > 0 ? Math.max(0, (last.bytes - first.bytes) / elapsed) : null;
    const left = this.#opts.total - this.#done;
    return {
      bytesDone: this.#done,
      bytesTotal: this.#opts.total,
      rateBps: rate,
      etaSeconds: left === 0 ? 0 : rate !== null && rate > 0 ? left / rate : null,
    };
  }

  #emit(): void {
    this.#lastEmitAt = this.#opts.clock.now();
    this.#lastEmitBytes = this.#done;
    this.#opts.emit(this.snapshot());
  }
}
