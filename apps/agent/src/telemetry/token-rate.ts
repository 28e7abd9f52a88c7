/**
 * Decode throughput over a sliding window, for the `tokensPerSecond` telemetry field.
 *
 * The chat executor (src/chat/executor.ts) feeds it: after each runner `done` it
 * calls `recordDecode(done.generated_tokens, done.decode_ms)`. While nothing was
 * generated in the window, telemetry reports null.
 */
import { type Clock, systemClock } from "../lib/clock.js";

export class DecodeRateWindow {
  #entries: { at: number; tokens: number; ms: number }[] = [];

  constructor(
    readonly windowMs = 60_000,
    private readonly clock: Clock = systemClock,
  ) {}

  /** One finished generation: how many tokens it decoded and how long decoding took. */
  recordDecode(tokens: number, decodeMs: number): void {
    if (!(tokens > 0) || !(decodeMs > 0)) return;
    this.#entries.push({ at: this.clock.now(), tokens, ms: decodeMs });
  }

  /** Tokens per second of decode time over the window; null when nothing was decoded in it. */
  tokensPerSecond(): number | null {
    const cutoff = this.clock.now() - this.windowMs;
    this.#entries = this.#entries.filter((e) => e.at > cutoff);
    let tokens = 0;
    let ms = 0;
    for (const e of this.#entries) {
      tokens += e.tokens;
      ms += e.ms;
    }
    if (tokens === 0 || ms === 0) return null;
    return Math.round((tokens / (ms / 1000)) * 100) / 100;
  }
}
