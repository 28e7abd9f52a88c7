/**
 * The batching policy for a chat's token stream (pure: no timers, an injected clock).
 *
 * A token goes out at once when the previous chunk left at least `intervalMs` ago;
 * otherwise it waits with any others until `intervalMs` after the previous chunk.
 * A slow runner (0.8 tok/s on a Pi) therefore sends every token the moment it has
 * it, and a fast one sends at most one chunk per interval. The executor owns the
 * timer: after `push` returns null it flushes at `dueAt()`, and always before `done`.
 */
import type { Clock } from "../lib/clock.js";

/** Interval between chunks when tokens come faster than this. */
export const TOKEN_BATCH_MS = 50;
/** A chunk is cut at this many characters even inside an interval (the contract allows 64 Ki). */
export const TOKEN_CHUNK_MAX_CHARS = 16 * 1024;

export interface TokenChunk {
  /** Chunks of one request count from 0, without gaps. */
  seq: number;
  /** When the chunk's first token was read from the runner. */
  ts: number;
  text: string;
  /** Tokens in the chunk (control tokens such as the stop token have empty text but still count). */
  count: number;
}

export class TokenBatcher {
  readonly #clock: Clock;
  readonly #intervalMs: number;
  readonly #maxChars: number;
  #pending: { ts: number; text: string; count: number } | null = null;
  #lastSentAt: number | null = null;
  #seq = 0;
  #tokens = 0;

  constructor(clock: Clock, intervalMs = TOKEN_BATCH_MS, maxChars = TOKEN_CHUNK_MAX_CHARS) {
    this.#clock = clock;
    this.#intervalMs = intervalMs;
    this.#maxChars = maxChars;
  }

  /** Adds one token. Returns the chunk to send now, or null when it is held until `dueAt()`. */
  push(text: string): TokenChunk | null {
    const now = this.#clock.now();
    this.#tokens += 1;
    if (this.#pending) {
      this.#pending.text += text;
      this.#pending.count += 1;
    } else {
      this.#pending = { ts: now, text, count: 1 };
    }
    if (this.#intervalElapsed(now) || this.#pending.text.length >= this.#maxChars) return this.flush();
    return null;
  }

  /** When held tokens are due (ms since the epoch); null when nothing is held. */
  dueAt(): number | null {
    if (!this.#pending) return null;
    return this.#lastSentAt === null ? this.#pending.ts : this.#lastSentAt + this.#intervalMs;
  }

  /** How long until held tokens are due, within [0, intervalMs] even if the wall clock jumped; null when nothing is held. */
  delayMs(): number | null {
    const due = this.dueAt();
    if (due === null) return null;
    return Math.min(Math.max(due - this.#clock.now(), 0), this.#intervalMs);
  }

  /** Takes the held tokens as a chunk (the timer fired, or the answer is complete); null when nothing is held. */
  flush(): TokenChunk | null {
    const pending = this.#pending;
    if (!pending) return null;
    this.#pending = null;
    this.#lastSentAt = this.#clock.now();
    return { seq: this.#seq++, ts: pending.ts, text: pending.text, count: pending.count };
  }

  /** Chunks handed out so far. */
  get chunks(): number {
    return this.#seq;
  }

  /** Tokens pushed so far (sent or held). */
  get tokens(): number {
    return this.#tokens;
  }

  #intervalElapsed(now: number): boolean {
    if (this.#lastSentAt === null) return true;
    const elapsed = now - this.#lastSentAt;
    // A wall clock that went backwards (NTP on a Pi without RTC) must not hold tokens back.
    return elapsed >= this.#intervalMs || elapsed < 0;
  }
}
