/**
 * The real native/build/orchard-runner as a child process, spoken to with the
 * protocol from @orchard/contracts. Every stdout line is decoded as strict
 * UTF-8 and parsed with parseRunnerLine; anything that fails is recorded in
 * `streamProblems`, so a test can assert that stdout carried nothing but
 * protocol lines.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  encodeRunnerRequest,
  parseRunnerLine,
  type RunnerDone,
  type RunnerMessage,
  type RunnerRequest,
  type RunnerToken,
} from "@orchard/contracts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const RUNNER_BIN = path.join(ROOT, "native/build/orchard-runner");

/** Fast sim rates: a whole generation takes a fraction of a second. */
export const FAST_SIM = ["--backend", "sim", "--sim-load-ms", "10", "--sim-prefill-tok-s", "20000", "--sim-decode-tok-s", "2000"];
/** Slow decoding, so a test can act while a generation is still running. */
export const SLOW_SIM = ["--backend", "sim", "--sim-load-ms", "10", "--sim-prefill-tok-s", "20000", "--sim-decode-tok-s", "10"];

/** Upper bound on waiting for the runner; a safety net against hangs, not a speed check. */
const WAIT_MS = 30_000;

export function assertRunnerBuilt(): void {
  if (!existsSync(RUNNER_BIN)) {
    throw new Error(
      `${RUNNER_BIN} is missing: build it with\n` +
        "  cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release && cmake --build native/build -j2",
    );
  }
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

export class RunnerProcess {
  readonly messages: RunnerMessage[] = [];
  readonly streamProblems: string[] = [];
  stderr = "";
  stdoutBytes = 0;
  readonly exited: Promise<Exit>;

  readonly #child: ChildProcessWithoutNullStreams;
  #pending = Buffer.alloc(0);
  #cursor = 0;
  #listeners = new Set<() => void>();
  #exit: Exit | null = null;
  #decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(args: string[], bin: string = RUNNER_BIN) {
    this.#child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.#child.stdout.on("data", (chunk: Buffer) => this.#onStdout(chunk));
    this.#child.stderr.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString("utf8");
      if (process.env.ORCHARD_TEST_VERBOSE) process.stderr.write(`[runner] ${chunk.toString("utf8")}`);
    });
    this.#child.stdin.on("error", () => {}); // EPIPE after the runner exits is expected in EOF tests
    this.exited = new Promise((resolve) => {
      this.#child.on("close", (code, signal) => {
        if (this.#pending.length > 0) {
          this.streamProblems.push(`stdout ended without a newline: ${this.#pending.toString("utf8").slice(0, 200)}`);
        }
        this.#exit = { code, signal };
        this.#notify();
        resolve(this.#exit);
      });
    });
  }

  /** Starts a runner and waits for its first line. */
  static async start(args: string[], bin: string = RUNNER_BIN): Promise<{ runner: RunnerProcess; first: RunnerMessage }> {
    const runner = new RunnerProcess(args, bin);
    const first = await runner.next();
    return { runner, first };
  }

  send(request: RunnerRequest): void {
    this.#child.stdin.write(encodeRunnerRequest(request));
  }

  sendRaw(text: string): void {
    this.#child.stdin.write(text);
  }

  /** Closes stdin (EOF) and waits for the process to exit. */
  async close(): Promise<Exit> {
    this.#child.stdin.end();
    return this.exited;
  }

  kill(): void {
    if (!this.#exit) this.#child.kill("SIGKILL");
  }

  /** The next message in stream order. */
  async next(): Promise<RunnerMessage> {
    return (await this.until(() => true)).at(-1)!;
  }

  /**
   * Waits until the runner's stderr matches (stderr and stdout are separate pipes, so a
   * log line written before `ready` may still arrive after it). Returns the stderr so far.
   */
  async untilStderr(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    while (!pattern.test(this.stderr)) {
      if (Date.now() > deadline)
        throw new Error(`stderr did not match ${pattern} within ${WAIT_MS} ms; stderr:\n${this.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.stderr;
  }

  /**
   * Consumes messages in stream order until one matches; returns all consumed,
   * the match last. Fails when the runner exits first or nothing comes.
   */
  async until(match: (m: RunnerMessage) => boolean, what = "a matching runner message"): Promise<RunnerMessage[]> {
    const consumed: RunnerMessage[] = [];
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      while (this.#cursor < this.messages.length) {
        const m = this.messages[this.#cursor++]!;
        consumed.push(m);
        if (match(m)) return consumed;
      }
      if (this.#exit) {
        throw new Error(`runner exited (${JSON.stringify(this.#exit)}) before ${what}; stderr:\n${this.stderr.slice(-2000)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${WAIT_MS} ms; stderr:\n${this.stderr.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        const listeners = this.#listeners;
        function done() {
          clearTimeout(timer);
          listeners.delete(done);
          resolve();
        }
        listeners.add(done);
      });
    }
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #onStdout(chunk: Buffer): void {
    this.stdoutBytes += chunk.length;
    this.#pending = Buffer.concat([this.#pending, chunk]);
    for (;;) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline < 0) break;
      const bytes = this.#pending.subarray(0, newline);
      this.#pending = this.#pending.subarray(newline + 1);
      let line: string;
      try {
        line = this.#decoder.decode(bytes);
      } catch {
        this.streamProblems.push(`a stdout line is not valid UTF-8: ${bytes.toString("hex").slice(0, 200)}`);
        continue;
      }
      try {
        this.messages.push(parseRunnerLine(line));
      } catch (error) {
        this.streamProblems.push((error as Error).message);
      }
    }
    this.#notify();
  }
}

/** Runs the binary to completion with stdin closed; for flag checks. */
export async function runOnce(args: string[], bin: string = RUNNER_BIN): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  child.stdin.on("error", () => {});
  child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** Sends a generate and collects its token lines and its done line. */
export async function generate(
  runner: RunnerProcess,
  request: {
    id: string;
    session?: string;
    messages?: { role: "system" | "user" | "assistant"; content: string }[];
    prompt?: string;
    rendered?: string;
    max_new_tokens?: number;
    temperature?: number;
    top_p?: number;
    seed?: number;
  },
): Promise<{ tokens: RunnerToken[]; done: RunnerDone; text: string }> {
  runner.send({ type: "generate", ...request });
  const consumed = await runner.until(
    (m) => (m.type === "done" || m.type === "error") && "id" in m && m.id === request.id,
    `done for ${request.id}`,
  );
  const last = consumed.at(-1)!;
  if (last.type !== "done") throw new Error(`generate ${request.id} failed: ${JSON.stringify(last)}`);
  const tokens = consumed.filter((m): m is RunnerToken => m.type === "token" && m.id === request.id);
  return { tokens, done: last, text: tokens.map((t) => t.text).join("") };
}
