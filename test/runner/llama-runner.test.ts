/**
 * Black-box tests of the llama.cpp runner: the real apps/agent/bin/orchard-llama-runner.mjs
 * on a generated tiny GGUF (random weights: gibberish text, real llama.cpp compute),
 * one thread, spoken to over stdin/stdout with the protocol from @orchard/contracts.
 * One runner serves most tests (loading takes about a second); each runner must exit 0
 * and must have written nothing but protocol lines.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnerDone, RunnerMessage, RunnerToken } from "@orchard/contracts";
import { writeTinyGguf, TINY_GGUF_NAME } from "../../scripts/tiny-gguf.ts";
import { ROOT, RunnerProcess, runOnce } from "./runner-process.ts";

const LLAMA_RUNNER_BIN = path.join(ROOT, "apps/agent/bin/orchard-llama-runner.mjs");

let dir: string;
let modelFile: string;
let runner: RunnerProcess;

const tokensOf = (messages: RunnerMessage[], id: string) => messages.filter((m): m is RunnerToken => m.type === "token" && m.id === id);
const endOf = (id: string) => (m: RunnerMessage) => (m.type === "done" || m.type === "error") && "id" in m && m.id === id;

async function start(extra: string[] = []): Promise<{ runner: RunnerProcess; first: RunnerMessage }> {
  return RunnerProcess.start(["--model", modelFile, "--threads", "1", ...extra], LLAMA_RUNNER_BIN);
}

async function closeCleanly(r: RunnerProcess): Promise<void> {
  const exit = await r.close();
  expect(exit, `runner exit; stderr:\n${r.stderr.slice(-2000)}`).toEqual({ code: 0, signal: null });
  expect(r.streamProblems, "every stdout byte belongs to a protocol line").toEqual([]);
}

type Request = {
  id: string;
  session?: string;
  messages?: { role: "system" | "user" | "assistant"; content: string }[];
  prompt?: string;
  max_new_tokens?: number;
  temperature?: number;
  seed?: number;
};

async function generate(request: Request): Promise<{ tokens: RunnerToken[]; done: RunnerDone; text: string }> {
  runner.send({ type: "generate", ...request });
  const consumed = await runner.until(endOf(request.id), `done for ${request.id}`);
  const last = consumed.at(-1)!;
  if (last.type !== "done") throw new Error(`generate ${request.id} failed: ${JSON.stringify(last)}`);
  const tokens = tokensOf(consumed, request.id);
  return { tokens, done: last, text: tokens.map((t) => t.text).join("") };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-llama-runner-"));
  modelFile = (await writeTinyGguf({ file: path.join(dir, "tiny.gguf") })).file;
  const started = await start();
  runner = started.runner;
  expect(started.first).toMatchObject({ type: "ready", backend: "llamacpp", model: TINY_GGUF_NAME, max_context: 512 });
});

afterAll(async () => {
  if (runner) await closeCleanly(runner);
  await rm(dir, { recursive: true, force: true });
});

describe("orchard-llama-runner", () => {
  it("reports ready with load time, memory and its version", () => {
    const ready = runner.messages[0]!;
    expect(ready.type).toBe("ready");
    if (ready.type !== "ready") return;
    expect(ready.load_ms).toBeGreaterThan(0);
    expect(ready.rss_bytes).toBeGreaterThan(0);
    expect(ready.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("streams a chat's tokens with consistent done stats", async () => {
    const { tokens, done } = await generate({
      id: "g1",
      messages: [{ role: "user", content: "Hello there, héllo ✓" }],
      max_new_tokens: 12,
    });
    expect(done.generated_tokens).toBe(tokens.length);
    expect(done.token_ids).toEqual(tokens.map((t) => t.token_id));
    expect(done.generated_tokens).toBeGreaterThan(0);
    expect(done.generated_tokens).toBeLessThanOrEqual(12);
    expect(["stop", "length"]).toContain(done.finish_reason);
    expect(done.prompt_tokens).toBeGreaterThan(5);
    expect(done.reused_tokens).toBe(0);
    expect(done.prefill_tok_s).toBeGreaterThan(0);
    expect(done.generated_tokens).toBeGreaterThan(1); // the fixture model (seed 1) does not stop this early
    expect(done.decode_tok_s).toBeGreaterThan(0);
    expect(done.ttft_ms).toBeGreaterThanOrEqual(done.prefill_ms);
    expect(done.peak_rss_bytes).toBeGreaterThan(0);
  });

  it("is deterministic when greedy", async () => {
    const request = { prompt: "The capital of France is", max_new_tokens: 8 };
    const a = await generate({ id: "det-a", ...request });
    const b = await generate({ id: "det-b", ...request });
    expect(b.done.token_ids).toEqual(a.done.token_ids);
  });

  it("reuses the KV cache for the next turn of the same session only", async () => {
    const first = [{ role: "user" as const, content: "Tell me about apples." }];
    const turn1 = await generate({ id: "s1", session: "chat-a", messages: first, max_new_tokens: 6 });
    expect(turn1.done.reused_tokens).toBe(0);
    const second = [...first, { role: "assistant" as const, content: turn1.text }, { role: "user" as const, content: "And pears?" }];
    const turn2 = await generate({ id: "s2", session: "chat-a", messages: second, max_new_tokens: 6 });
    expect(turn2.done.reused_tokens).toBeGreaterThan(0);
    expect(turn2.done.reused_tokens).toBeLessThan(turn2.done.prompt_tokens);

    runner.send({ type: "stats" });
    const stats = (await runner.until((m) => m.type === "stats")).at(-1)!;
    expect(stats).toMatchObject({ type: "stats", busy: false, session: "chat-a", max_context: 512 });
    if (stats.type === "stats") expect(stats.resident_tokens).toBeGreaterThanOrEqual(turn2.done.prompt_tokens);

    const other = await generate({ id: "s3", session: "chat-b", messages: second, max_new_tokens: 6 });
    expect(other.done.reused_tokens).toBe(0);

    runner.send({ type: "reset", session: "chat-b" });
    expect((await runner.until((m) => m.type === "reset_done")).at(-1)).toEqual({ type: "reset_done", session: "chat-b" });
    const afterReset = await generate({ id: "s4", session: "chat-b", messages: second, max_new_tokens: 6 });
    expect(afterReset.done.reused_tokens).toBe(0);
  });

  it("samples with temperature and a seed reproducibly", async () => {
    const request = { prompt: "Once upon a time", max_new_tokens: 10, temperature: 1, seed: 42 };
    const a = await generate({ id: "t-a", ...request });
    const b = await generate({ id: "t-b", ...request });
    expect(b.done.token_ids).toEqual(a.done.token_ids);
  });

  it("cancels a running generation within a few tokens", async () => {
    runner.send({ type: "generate", id: "c1", prompt: "Count forever:", max_new_tokens: 400 });
    await runner.until((m) => m.type === "token" && m.id === "c1", "a first token of c1");
    runner.send({ type: "cancel", id: "c1" });
    const consumed = await runner.until(endOf("c1"), "done for c1");
    const done = consumed.at(-1)!;
    expect(done).toMatchObject({ type: "done", finish_reason: "cancelled" });
    if (done.type === "done") {
      expect(done.generated_tokens).toBeLessThan(400);
      expect(done.generated_tokens).toBe(done.token_ids.length);
    }
  });

  it("answers busy, not_found, context_full and bad_request and keeps serving", async () => {
    runner.send({ type: "generate", id: "b1", prompt: "Keep going", max_new_tokens: 200 });
    runner.send({ type: "generate", id: "b2", prompt: "Me too", max_new_tokens: 4 });
    runner.send({ type: "cancel", id: "nope" });
    runner.sendRaw("this is not json\n");
    runner.sendRaw('{"type":"generate","id":"b3","prompt":"x","messages":[{"role":"user","content":"y"}]}\n');
    runner.sendRaw('{"type":"launch"}\n');
    const consumed = await runner.until(endOf("b1"), "done for b1");
    const errors = consumed.filter((m) => m.type === "error");
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: "b2", code: "busy" }),
        expect.objectContaining({ id: "nope", code: "not_found" }),
        expect.objectContaining({ code: "bad_request", message: expect.stringContaining("not JSON") }),
        expect.objectContaining({ id: "b3", code: "bad_request" }),
        expect.objectContaining({ code: "bad_request", message: expect.stringContaining("unknown request type") }),
      ]),
    );

    runner.send({ type: "generate", id: "full", prompt: "x", max_new_tokens: 600 });
    const full = (await runner.until(endOf("full"))).at(-1)!;
    expect(full).toMatchObject({ type: "error", id: "full", code: "context_full" });

    const after = await generate({ id: "after", prompt: "Still here?", max_new_tokens: 3 });
    expect(after.done.generated_tokens).toBeGreaterThan(0);
  });

  it("prints its capabilities and exits 0", async () => {
    const { code, stdout } = await runOnce(["--capabilities"], LLAMA_RUNNER_BIN);
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const caps = JSON.parse(lines[0]!) as { version: string; runtimes: Record<string, { versions: string[]; profiles: string[] }> };
    expect(Object.keys(caps.runtimes)).toEqual(["llama.cpp"]);
    expect(caps.runtimes["llama.cpp"]!.versions).toHaveLength(1);
    expect(caps.runtimes["llama.cpp"]!.versions[0]).not.toBe("");
    expect(caps.runtimes["llama.cpp"]!.profiles).toEqual([]);
  });

  it("fails to load a file that is not a GGUF with load_failed and exit 1", async () => {
    const { code, stdout } = await runOnce(["--model", path.join(dir, "missing.gguf")], LLAMA_RUNNER_BIN);
    expect(code).toBe(1);
    expect(JSON.parse(stdout.trim())).toMatchObject({ type: "error", code: "load_failed" });
  });

  it("exits 0 on shutdown after writing the running generation's done", async () => {
    const { runner: other, first } = await start(["--context", "128", "--model-name", "tiny test"]);
    expect(first).toMatchObject({ type: "ready", model: "tiny test", max_context: 128 });
    other.send({ type: "generate", id: "x1", prompt: "Long story", max_new_tokens: 100 });
    await other.until((m) => m.type === "token" && m.id === "x1", "a first token of x1");
    other.send({ type: "shutdown" });
    const done = (await other.until(endOf("x1"))).at(-1)!;
    // Normally "cancelled"; a generation that already ended on its own is fine too: shutdown still waits for its done.
    expect(done).toMatchObject({ type: "done", id: "x1" });
    if (done.type === "done" && done.finish_reason === "cancelled") expect(done.generated_tokens).toBeLessThan(100);
    expect(await other.exited).toEqual({ code: 0, signal: null });
    expect(other.streamProblems).toEqual([]);
  });
});
