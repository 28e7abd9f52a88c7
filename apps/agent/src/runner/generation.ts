/**
 * One `generate` request in flight: its tokens as an async iterator and its
 * final stats as a promise. This is what the chat executor consumes:
 *
 *   const gen = supervisor.generate({ id, messages, max_new_tokens: 256 });
 *   for await (const token of gen) send(token.text);   // breaking out cancels
 *   const done = await gen.result;                      // RunnerDone stats
 *
 * Errors (the runner refused the request, or exited during it) reject `result`
 * and are thrown from the loop as a RunnerRequestError with a code.
 */
import type { RunnerDone, RunnerErrorCode, RunnerToken } from "@orchard/contracts";
import type { z } from "zod";

/** The runner's own error codes, plus what the supervisor adds on its side. */
export type RunnerRequestErrorCode = z.infer<typeof RunnerErrorCode> | "not_ready" | "runner_exited" | "timeout";

export class RunnerRequestError extends Error {
  override readonly name = "RunnerRequestError";
  constructor(
    readonly code: RunnerRequestErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The supervisor's side of a generation: where it delivers what the runner says. */
export interface GenerationSink {
  token(token: RunnerToken): void;
  done(done: RunnerDone): void;
  fail(error: RunnerRequestError): void;
  /** True once done or failed: later deliveries are ignored. */
  settled(): boolean;
}

export class Generation implements AsyncIterable<RunnerToken> {
  readonly result: Promise<RunnerDone>;
  #tokens: RunnerToken[] = [];
  #wake: (() => void) | null = null;
  #outcome: { done: RunnerDone } | { error: RunnerRequestError } | null = null;
  #resolve!: (done: RunnerDone) => void;
  #reject!: (error: RunnerRequestError) => void;
  #cancelRequested = false;

  private constructor(
    readonly id: string,
    private readonly requestCancel: () => void,
  ) {
    this.result = new Promise<RunnerDone>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // A caller that only iterates must not get an unhandled rejection from `result`.
    this.result.catch(() => undefined);
  }

  static create(id: string, requestCancel: () => void): { generation: Generation; sink: GenerationSink } {
    const generation = new Generation(id, requestCancel);
    return { generation, sink: generation.#sink() };
  }

  /** Asks the runner to stop; the generation then ends with finish_reason "cancelled". */
  cancel(): void {
    if (this.#outcome || this.#cancelRequested) return;
    this.#cancelRequested = true;
    this.requestCancel();
  }

  get finished(): boolean {
    return this.#outcome !== null;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RunnerToken, void, undefined> {
    try {
      for (;;) {
        const token = this.#tokens.shift();
        if (token) {
          yield token;
          continue;
        }
        const outcome = this.#outcome;
        if (outcome) {
          if ("error" in outcome) throw outcome.error;
          return;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    } finally {
      // Leaving the loop early (break, return, throw in the body) means nobody wants the rest.
      if (!this.#outcome) this.cancel();
    }
  }

  #sink(): GenerationSink {
    const wake = () => {
      const w = this.#wake;
      this.#wake = null;
      w?.();
    };
    return {
      token: (token) => {
        if (this.#outcome) return;
        this.#tokens.push(token);
        wake();
      },
      done: (done) => {
        if (this.#outcome) return;
        this.#outcome = { done };
        this.#resolve(done);
        wake();
      },
      fail: (error) => {
        if (this.#outcome) return;
        this.#outcome = { error };
        this.#reject(error);
        wake();
      },
      settled: () => this.#outcome !== null,
    };
  }
}
