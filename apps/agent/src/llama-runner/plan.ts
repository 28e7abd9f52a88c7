/**
 * Pure pieces of the llama.cpp runner: the KV-reuse plan, the UTF-8 holdback and
 * the done-line statistics. engine.ts applies them to node-llama-cpp.
 */
import type { RunnerDone } from "@orchard/contracts";

/**
 * How many of the tokens resident in the context sequence a new prompt can keep:
 * the common prefix, only within the same named session, and always leaving at
 * least one prompt token to feed (the engine needs logits for the first new token).
 */
export function plannedKeep(resident: readonly number[], prompt: readonly number[], sameSession: boolean): number {
  if (!sameSession) return 0;
  const limit = Math.min(resident.length, prompt.length - 1);
  let keep = 0;
  while (keep < limit && resident[keep] === prompt[keep]) keep++;
  return keep;
}

/** Holding a few tokens back is enough for any UTF-8 character (at most 4 bytes). */
const MAX_HELD_TOKENS = 4;

/**
 * Turns generated tokens into complete UTF-8 text. `detokenize(tokens, lastTokens)`
 * decodes tokens the way the engine does (lossily: bytes of an unfinished character
 * become U+FFFD); while the decoded text of the held tokens ends with U+FFFD, they
 * are held back (that token's text is "") and released with the token that
 * completes the character. After MAX_HELD_TOKENS the replacement character is real.
 */
export class TextHoldback {
  #held: number[] = [];
  #emitted: number[] = [];

  constructor(private readonly detokenize: (tokens: readonly number[], lastTokens: readonly number[]) => string) {}

  push(token: number): string {
    this.#held.push(token);
    const text = this.detokenize(this.#held, this.#emitted.slice(-MAX_HELD_TOKENS));
    if (text.endsWith("\uFFFD") && this.#held.length < MAX_HELD_TOKENS) return "";
    this.#emitted.push(...this.#held);
    this.#held = [];
    return text;
  }

  /** Tokens whose bytes never completed a character (dropped at the end of a generation). */
  get heldTokens(): number {
    return this.#held.length;
  }
}

export type GenerationTiming = {
  /** Request start, before rendering and tokenizing (performance.now()). */
  start: number;
  /** Just before the prompt suffix is fed. */
  prefillStart: number;
  /** When the first token arrived, or null when none did. */
  firstToken: number | null;
  /** When the last token arrived. */
  lastToken: number | null;
  /** When the generation ended (used when no token came). */
  end: number;
};

const rate = (count: number, ms: number) => (count > 0 && ms > 0 ? (count * 1000) / ms : 0);

/** The timing fields of a done line, as docs/runner.md defines them. */
export function doneStats(
  timing: GenerationTiming,
  fed: number,
  generated: number,
): Pick<RunnerDone, "ttft_ms" | "prefill_ms" | "decode_ms" | "prefill_tok_s" | "decode_tok_s"> {
  const prefillEnd = timing.firstToken ?? timing.end;
  const prefill_ms = Math.max(0, prefillEnd - timing.prefillStart);
  const ttft_ms = timing.firstToken === null ? 0 : Math.max(0, timing.firstToken - timing.start);
  const decode_ms = timing.firstToken === null || timing.lastToken === null ? 0 : Math.max(0, timing.lastToken - timing.firstToken);
  return {
    ttft_ms,
    prefill_ms,
    decode_ms,
    prefill_tok_s: timing.firstToken === null ? 0 : rate(fed, prefill_ms),
    decode_tok_s: rate(generated - 1, decode_ms),
  };
}

/** VmHWM (peak resident set) and VmRSS from /proc/self/status text, in bytes. */
export function parseProcStatus(status: string): { rss: number | null; peak: number | null } {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB\\s*$`, "m").exec(status);
    return m ? Number(m[1]) * 1024 : null;
  };
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}
