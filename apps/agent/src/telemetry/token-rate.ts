/**
 * Token rates and counts for telemetry, fed from every generation the runner
 * finishes (chats and benchmarks alike; agent.ts subscribes to the supervisor):
 *
 * - `tokensPerSecond` / `prefillTokensPerSecond`: decode and prompt-feed speed over a
 *   sliding window — tokens ÷ time spent decoding (or prefilling) by the generations
 *   that finished in it; null while nothing finished in the window.
 * - `generatedTokens`: tokens streamed since the previous sample (counted per token as
 *   they arrive, so a long answer shows up while it runs), for fleet throughput.
 */
import { type Clock, systemClock } from "../lib/clock.js";

interface Entry {
  at: number;
  tokens: number;
  ms: number;
}

class RateWindow {
  #entries: Entry[] = [];

  constructor(
    private readonly windowMs: number,
    private readonly clock: Clock,
  ) {}

  record(tokens: number, ms: number): void {
    if (!(tokens > 0) || !(ms > 0)) return;
    this.#entries.push({ at: this.clock.now(), tokens, ms });
  }

  perSecond(): number | null {
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

export class TokenRates {
  readonly #decode: RateWindow;
  readonly #prefill: RateWindow;
  #generated = 0;

  constructor(windowMs = 60_000, clock: Clock = systemClock) {
    this.#decode = new RateWindow(windowMs, clock);
    this.#prefill = new RateWindow(windowMs, clock);
  }

  /** One streamed token. */
  countToken(): void {
    this.#generated++;
  }

  /** A finished generation, from the runner's `done`. */
  recordDone(done: {
    prompt_tokens: number;
    reused_tokens: number;
    prefill_ms: number;
    generated_tokens: number;
    decode_ms: number;
  }): void {
    this.#decode.record(done.generated_tokens, done.decode_ms);
    this.#prefill.record(done.prompt_tokens - done.reused_tokens, done.prefill_ms);
  }

  decodeTokensPerSecond(): number | null {
    return this.#decode.perSecond();
  }

  prefillTokensPerSecond(): number | null {
    return this.#prefill.perSecond();
  }

  /** Tokens streamed since the previous call. */
  takeGeneratedTokens(): number {
    const n = this.#generated;
    this.#generated = 0;
    return n;
  }
}
