/**
 * The runner protocol loop of the llama.cpp runner: NDJSON requests on stdin,
 * protocol lines on stdout (nothing else is written there), one generation at a
 * time. Requests other than generate and reset are answered at once, also while a
 * generation runs. docs/runner.md describes the protocol.
 */
import { RUNNER_MAX_LINE_BYTES, type RunnerMessage } from "@orchard/contracts";
import { LineSplitter } from "../runner/line-splitter.ts";
import { readMemory, RequestError, type LlamaEngine, type Log } from "./engine.ts";
import { parseRequestLine, type ParsedRequest } from "./requests.ts";

type GenerateRequest = Extract<ParsedRequest, { type: "generate" }>;

export class RunnerServer {
  #running: { id: string; abort: AbortController; finished: Promise<void> } | null = null;
  /** Engine work (generations, resets) runs one after another on this chain. */
  #queue: Promise<void> = Promise.resolve();
  #shuttingDown: Promise<void> | null = null;
  readonly #splitter: LineSplitter;

  constructor(
    private readonly engine: LlamaEngine,
    private readonly write: (message: RunnerMessage) => void,
    private readonly log: Log,
    private readonly exit: (code: number) => void,
  ) {
    this.#splitter = new LineSplitter(
      RUNNER_MAX_LINE_BYTES,
      (line) => this.#onLine(line),
      (bytes) =>
        this.write({
          type: "error",
          code: "bad_request",
          message: `request line longer than ${RUNNER_MAX_LINE_BYTES} bytes (${bytes} so far)`,
        }),
    );
  }

  /** Feeds bytes read from stdin. */
  push(chunk: Buffer): void {
    this.#splitter.push(chunk);
  }

  /** stdin ended: behaves like shutdown. */
  end(): void {
    this.#splitter.end();
    void this.shutdown();
  }

  #onLine(line: string): void {
    if (line.trim() === "") return;
    const parsed = parseRequestLine(line);
    if (!parsed.ok) {
      this.write({ type: "error", ...(parsed.id !== undefined ? { id: parsed.id } : {}), code: "bad_request", message: parsed.message });
      return;
    }
    const request = parsed.request;
    switch (request.type) {
      case "generate":
        return this.#generate(request);
      case "cancel":
        if (this.#running?.id === request.id) this.#running.abort.abort();
        else this.write({ type: "error", id: request.id, code: "not_found", message: `no generation with id ${request.id} is running` });
        return;
      case "reset":
        return this.#reset(request.session);
      case "stats":
        void this.#stats();
        return;
      case "shutdown":
        void this.shutdown();
        return;
    }
  }

  #generate(request: GenerateRequest): void {
    if (this.#shuttingDown) {
      this.write({ type: "error", id: request.id, code: "busy", message: "the runner is shutting down" });
      return;
    }
    if (this.#running) {
      this.write({ type: "error", id: request.id, code: "busy", message: `generation ${this.#running.id} is running` });
      return;
    }
    const abort = new AbortController();
    const run = this.#queue.then(async () => {
      try {
        const done = await this.engine.generate(request, abort.signal, (t) =>
          this.write({ type: "token", id: request.id, text: t.text, token_id: t.token_id }),
        );
        this.write({ type: "done", id: request.id, ...done });
      } catch (error) {
        const code = error instanceof RequestError ? error.code : "model_error";
        this.write({ type: "error", id: request.id, code, message: (error as Error).message });
      } finally {
        this.#running = null;
      }
    });
    this.#running = { id: request.id, abort, finished: run };
    this.#queue = run;
  }

  #reset(session: string | undefined): void {
    if (this.#running) {
      this.write({ type: "error", code: "busy", message: `generation ${this.#running.id} is running` });
      return;
    }
    const applies = session === undefined || session === this.engine.session;
    this.#queue = this.#queue.then(async () => {
      try {
        if (applies) await this.engine.reset();
        this.write({ type: "reset_done", session: session ?? null });
      } catch (error) {
        this.write({ type: "error", code: "model_error", message: `reset failed: ${(error as Error).message}` });
      }
    });
  }

  async #stats(): Promise<void> {
    const memory = await readMemory();
    this.write({
      type: "stats",
      rss_bytes: memory.rss,
      peak_rss_bytes: memory.peak,
      busy: this.#running !== null,
      session: this.engine.session,
      resident_tokens: this.engine.residentTokens,
      max_context: this.engine.maxContext,
    });
  }

  /** Cancels a running generation (its done is still written), disposes the engine, exits 0. */
  shutdown(): Promise<void> {
    this.#shuttingDown ??= (async () => {
      this.#running?.abort.abort();
      await this.#queue;
      try {
        await this.engine.dispose();
      } catch (error) {
        this.log(`dispose failed: ${(error as Error).message}`);
      }
      this.exit(0);
    })();
    return this.#shuttingDown;
  }
}
