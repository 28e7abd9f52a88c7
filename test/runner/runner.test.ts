/**
 * Black-box tests of the native runner: the real native/build/orchard-runner
 * with the sim backend, spoken to over stdin/stdout with the protocol from
 * @orchard/contracts. Every runner a test starts is closed with EOF afterwards;
 * each must exit 0 and must have written nothing but protocol lines.
 */
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunnerDone, RunnerError, RunnerMessage, RunnerStats, RunnerToken } from "@orchard/contracts";
import { z } from "zod";
import { FAST_SIM, RunnerProcess, SLOW_SIM, assertRunnerBuilt, generate, runOnce } from "./runner-process.ts";

const started: RunnerProcess[] = [];

async function start(args: string[] = FAST_SIM): Promise<RunnerProcess> {
  const { runner, first } = await RunnerProcess.start(args);
  started.push(runner);
  expect(first.type).toBe("ready");
  return runner;
}

const isDone = (id: string) => (m: RunnerMessage) => m.type === "done" && m.id === id;
const isError = (m: RunnerMessage): m is RunnerError => m.type === "error";

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

beforeAll(() => assertRunnerBuilt());

afterEach(async () => {
  const runners = started.splice(0);
  try {
    for (const runner of runners) {
      const exit = await runner.close();
      expect(exit, `runner exit; stderr:\n${runner.stderr.slice(-2000)}`).toEqual({ code: 0, signal: null });
      expect(runner.streamProblems, "every stdout byte belongs to a protocol line").toEqual([]);
    }
  } finally {
    for (const runner of runners) runner.kill();
  }
});

describe("orchard-runner --backend sim", () => {
  it("announces ready first, labelled as the sim", async () => {
    const { runner, first } = await RunnerProcess.start(FAST_SIM);
    started.push(runner);
    expect(first).toMatchObject({ type: "ready", backend: "sim", model: "sim (no model)", max_context: 2048, version: "0.1.0" });
    if (first.type !== "ready") throw new Error("unreachable");
    expect(first.rss_bytes).toBeGreaterThan(0);

    const named = await RunnerProcess.start([...FAST_SIM, "--model-name", "demo sim", "--max-context=512"]);
    started.push(named.runner);
    expect(named.first).toMatchObject({ type: "ready", backend: "sim", model: "demo sim", max_context: 512 });
  });

  it("streams token lines, then done with matching counts and ids", async () => {
    const runner = await start();
    const { tokens, done, text } = await generate(runner, { id: "g1", messages: [{ role: "user", content: "Tell me about apples" }] });

    expect(done.finish_reason).toBe("stop");
    expect(tokens.length).toBeGreaterThan(1);
    expect(done.generated_tokens).toBe(tokens.length);
    expect(done.token_ids).toEqual(tokens.map((t) => t.token_id));
    expect(done.prompt_tokens).toBeGreaterThan(0);
    expect(done.reused_tokens).toBe(0);
    expect(done.peak_rss_bytes).toBeGreaterThan(0);
    // Reads like words and ends its turn: the stop token itself carries no text.
    expect(text).toMatch(/^\S.*\.$/su);
    expect(text.split(" ").length).toBeGreaterThanOrEqual(10);
    expect(tokens.at(-1)!.text).toBe("");
  });

  it("sends only complete UTF-8: multi-byte characters are held back until whole", async () => {
    const runner = await start();
    let sawMultiByte = false;
    for (let i = 0; i < 12 && !sawMultiByte; i++) {
      const { tokens, text } = await generate(runner, { id: `u${i}`, messages: [{ role: "user", content: `prompt number ${i}` }] });
      expect(text).not.toMatch(LONE_SURROGATE);
      expect(text).not.toContain("\uFFFD");
      for (const t of tokens) expect(t.text).not.toContain("\uFFFD");
      if ([...text].some((ch) => ch.codePointAt(0)! > 0x7f)) {
        sawMultiByte = true;
        // Byte-level tokens: the first bytes of a character produce empty text.
        const heldBack = tokens.slice(0, -1).filter((t) => t.text === "");
        expect(heldBack.length).toBeGreaterThan(0);
      }
    }
    expect(sawMultiByte).toBe(true);
  });

  it("is deterministic when greedy and reproducible with a seed", async () => {
    const runner = await start();
    const messages = [{ role: "user" as const, content: "same question" }];
    const a = await generate(runner, { id: "a", messages });
    const b = await generate(runner, { id: "b", messages });
    expect(b.done.token_ids).toEqual(a.done.token_ids);

    const s1 = await generate(runner, { id: "s1", messages, temperature: 1.5, seed: 7, max_new_tokens: 300 });
    const s2 = await generate(runner, { id: "s2", messages, temperature: 1.5, seed: 7, max_new_tokens: 300 });
    const s3 = await generate(runner, { id: "s3", messages, temperature: 1.5, seed: 8, max_new_tokens: 300 });
    expect(s2.done.token_ids).toEqual(s1.done.token_ids);
    expect(s3.done.token_ids).not.toEqual(s1.done.token_ids);
  });

  it("reuses the KV cache when a turn extends the same session, not for another session", async () => {
    const runner = await start();
    const first = await generate(runner, { id: "t1", session: "chat-1", messages: [{ role: "user", content: "hi" }] });
    expect(first.done.reused_tokens).toBe(0);

    const conversation = [
      { role: "user" as const, content: "hi" },
      { role: "assistant" as const, content: first.text },
      { role: "user" as const, content: "and then?" },
    ];
    const second = await generate(runner, { id: "t2", session: "chat-1", messages: conversation });
    expect(second.done.reused_tokens).toBeGreaterThan(0);
    // Everything fed for turn one is kept: its prompt and its answer, minus the
    // last sampled token, which was never fed.
    expect(second.done.reused_tokens).toBe(first.done.prompt_tokens + first.done.generated_tokens - 1);

    const other = await generate(runner, { id: "t3", session: "chat-2", messages: conversation });
    expect(other.done.reused_tokens).toBe(0);
    expect(other.done.token_ids).toEqual(second.done.token_ids);

    runner.send({ type: "stats" });
    const stats = (await runner.until((m) => m.type === "stats")).at(-1) as RunnerStats;
    expect(stats).toMatchObject({ type: "stats", busy: false, session: "chat-2", max_context: 2048 });
    expect(stats.resident_tokens).toBe(other.done.prompt_tokens + other.done.generated_tokens - 1);
  });

  it("reset drops the session so the next turn starts over", async () => {
    const runner = await start();
    const first = await generate(runner, { id: "r1", session: "s", messages: [{ role: "user", content: "hello" }] });
    runner.send({ type: "reset", session: "s" });
    expect((await runner.until((m) => m.type === "reset_done")).at(-1)).toEqual({ type: "reset_done", session: "s" });

    runner.send({ type: "stats" });
    const stats = (await runner.until((m) => m.type === "stats")).at(-1) as RunnerStats;
    expect(stats).toMatchObject({ session: null, resident_tokens: 0 });

    const again = await generate(runner, {
      id: "r2",
      session: "s",
      messages: [
        { role: "user", content: "hello" },
        { role: "assistant", content: first.text },
        { role: "user", content: "more" },
      ],
    });
    expect(again.done.reused_tokens).toBe(0);

    runner.send({ type: "reset" });
    expect((await runner.until((m) => m.type === "reset_done")).at(-1)).toEqual({ type: "reset_done", session: null });
  });

  it("cancels a running generation between tokens", async () => {
    const runner = await start(SLOW_SIM);
    runner.send({ type: "generate", id: "long", messages: [{ role: "user", content: "a long answer please" }] });
    await runner.until((m) => m.type === "token" && m.id === "long", "the first token");
    runner.send({ type: "cancel", id: "long" });
    const consumed = await runner.until(isDone("long"), "done after cancel");
    const done = consumed.at(-1) as RunnerDone;
    expect(done.finish_reason).toBe("cancelled");
    const tokens = runner.messages.filter((m): m is RunnerToken => m.type === "token" && m.id === "long");
    expect(done.generated_tokens).toBe(tokens.length);
    expect(done.token_ids).toEqual(tokens.map((t) => t.token_id));

    runner.send({ type: "cancel", id: "long" });
    expect((await runner.until(isError)).at(-1)).toMatchObject({ type: "error", id: "long", code: "not_found" });
  });

  it("refuses generate and reset while busy, and answers stats meanwhile", async () => {
    const runner = await start(SLOW_SIM);
    runner.send({ type: "generate", id: "busy-1", messages: [{ role: "user", content: "take your time" }] });
    await runner.until((m) => m.type === "token" && m.id === "busy-1", "the first token");

    runner.send({ type: "generate", id: "busy-2", prompt: "me too" });
    expect((await runner.until(isError)).at(-1)).toMatchObject({ type: "error", id: "busy-2", code: "busy" });
    runner.send({ type: "reset" });
    const resetRefused = (await runner.until(isError)).at(-1) as RunnerError;
    expect(resetRefused).toMatchObject({ type: "error", code: "busy" });
    expect(resetRefused.id).toBeUndefined();
    runner.send({ type: "stats" });
    expect((await runner.until((m) => m.type === "stats")).at(-1)).toMatchObject({ type: "stats", busy: true });

    runner.send({ type: "cancel", id: "busy-1" });
    expect((await runner.until(isDone("busy-1"))).at(-1)).toMatchObject({ finish_reason: "cancelled" });
    runner.send({ type: "stats" });
    expect((await runner.until((m) => m.type === "stats")).at(-1)).toMatchObject({ type: "stats", busy: false });
  });

  it("refuses with context_full before feeding anything", async () => {
    const runner = await start();
    runner.send({ type: "generate", id: "huge", prompt: "hello", max_new_tokens: 100_000 });
    const consumed = await runner.until(isError);
    expect(consumed).toHaveLength(1); // no token line before the refusal
    expect(consumed[0]).toMatchObject({ type: "error", id: "huge", code: "context_full" });

    const small = await start([...FAST_SIM, "--max-context", "64"]);
    small.send({ type: "generate", id: "long-prompt", prompt: "x".repeat(60), max_new_tokens: 10 });
    expect((await small.until(isError)).at(-1)).toMatchObject({ id: "long-prompt", code: "context_full" });
    // Still serving: a request that fits works.
    const ok = await generate(small, { id: "fits", prompt: "x".repeat(40), max_new_tokens: 20 });
    expect(["stop", "length"]).toContain(ok.done.finish_reason);
  });

  it("answers malformed lines with bad_request and keeps serving", async () => {
    const runner = await start();
    const bad: { line: string; id?: string }[] = [
      { line: "not json" },
      { line: "[1,2,3]" },
      { line: "null" },
      { line: '{"id":"x"}', id: "x" },
      { line: '{"type":"explode"}' },
      { line: '{"type":"generate","id":"m1"}', id: "m1" },
      { line: '{"type":"generate","id":"m2","prompt":"a","messages":[{"role":"user","content":"b"}]}', id: "m2" },
      { line: '{"type":"generate","id":"m3","messages":[{"role":"robot","content":"b"}]}', id: "m3" },
      { line: '{"type":"generate","id":"m4","prompt":"a","max_new_tokens":0}', id: "m4" },
      { line: '{"type":"generate","id":"m5","prompt":"a","temperature":"hot"}', id: "m5" },
      { line: '{"type":"generate","id":"m6","prompt":"a","top_p":0}', id: "m6" },
      { line: '{"type":"generate","id":"","prompt":"a"}' },
      { line: '{"type":"cancel"}' },
      { line: '{"type":"reset","session":42}' },
      { line: '{"type":"generate","id":"m7","messages":[{"role":"assistant","content":"first"}]}', id: "m7" },
    ];
    for (const { line, id } of bad) {
      runner.sendRaw(`${line}\n`);
      const error = (await runner.until(isError, `the error for ${line}`)).at(-1) as RunnerError;
      expect(error.code, line).toBe("bad_request");
      expect(error.id, line).toBe(id);
      expect(error.message.length, line).toBeGreaterThan(0);
    }

    // A line over 1 MiB is refused without being buffered whole, then serving goes on.
    runner.sendRaw(`{"type":"generate","id":"big","prompt":"${"y".repeat(1536 * 1024)}"}\n`);
    const tooLong = (await runner.until(isError, "the error for the long line")).at(-1) as RunnerError;
    expect(tooLong.code).toBe("bad_request");
    expect(tooLong.message).toMatch(/longer than 1048576 bytes/);

    const ok = await generate(runner, { id: "after", messages: [{ role: "user", content: "still there?" }] });
    expect(ok.done.finish_reason).toBe("stop");
  });

  it("exits 0 on EOF, cancelling a running generation first", async () => {
    const { runner } = await RunnerProcess.start(SLOW_SIM);
    runner.send({ type: "generate", id: "eof", messages: [{ role: "user", content: "keep going" }] });
    await runner.until((m) => m.type === "token" && m.id === "eof", "the first token");
    expect(await runner.close()).toEqual({ code: 0, signal: null });
    expect(runner.messages.at(-1)).toMatchObject({ type: "done", id: "eof", finish_reason: "cancelled" });
    expect(runner.streamProblems).toEqual([]);
  });

  it("exits 0 on shutdown", async () => {
    const { runner } = await RunnerProcess.start(FAST_SIM);
    runner.send({ type: "shutdown" });
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(runner.streamProblems).toEqual([]);
    expect(runner.messages.map((m) => m.type)).toEqual(["ready"]);
  });
});

describe("orchard-runner flags", () => {
  it("--verify passes on the expected ids, fails on others, and needs ids for the sim", async () => {
    const runner = await start();
    const reference = await generate(runner, { id: "ref", messages: [{ role: "user", content: "The capital of France is" }] });
    const ids = reference.done.token_ids;

    const pass = await runOnce([...FAST_SIM, "--verify", "--verify-ids", ids.join(",")]);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.stderr).toMatch(/verify: PASS/);
    const lines = pass.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines[0]!.type).toBe("ready");
    expect(lines.at(-1)).toMatchObject({ type: "done", id: "verify", token_ids: ids });

    const wrong = [...ids.slice(0, -2), ids.at(-2)! + 1, ids.at(-1)!];
    const fail = await runOnce([...FAST_SIM, "--verify", `--verify-ids=${wrong.join(",")}`]);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toMatch(/verify: FAIL/);

    const missing = await runOnce([...FAST_SIM, "--verify"]);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toBe("");
  });

  it("--version prints the version; unknown flags print usage and exit 2", async () => {
    const version = await runOnce(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toBe("orchard-runner 0.1.0");

    const unknown = await runOnce(["--backend", "sim", "--no-such-flag"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toMatch(/unknown argument "--no-such-flag"/);
    expect(unknown.stderr).toMatch(/usage: orchard-runner/);
  });

  it("--capabilities prints one JSON line naming the runtimes, versions and profiles it can load", async () => {
    const result = await runOnce(["--capabilities"]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe("");
    const RuntimeSupport = z.object({ versions: z.array(z.string().min(1)).min(1), profiles: z.array(z.string()) }).strict();
    const caps = z
      .object({ version: z.string(), runtimes: z.object({ sim: RuntimeSupport, executorch: RuntimeSupport.optional() }).strict() })
      .strict()
      .parse(JSON.parse(lines[0]!));
    expect(caps.version).toBe("0.1.0");
    expect(caps.runtimes.sim).toEqual({ versions: ["1"], profiles: [] });
    // This machine's build has no ExecuTorch; a Pi build lists it with its profiles.
    const built = await runOnce(["--backend", "executorch", "--model", "/nonexistent/model.pte", "--tokenizer", "/nonexistent"]);
    if (built.stdout.includes('"unsupported"')) {
      expect(caps.runtimes.executorch).toBeUndefined();
    } else {
      expect(caps.runtimes.executorch?.profiles).toEqual(["gemma4-e2b-extcache", "gemma4-extcache", "llm-standard"]);
    }
    expect((await runOnce(["--capabilities=yes"])).code).toBe(2);
  });

  it("--backend executorch says clearly when ExecuTorch is not built in", async () => {
    const result = await runOnce(["--backend", "executorch", "--model", "/nonexistent/model.pte", "--tokenizer", "/nonexistent"]);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const error = JSON.parse(lines[0]!) as RunnerError;
    if (error.code === "unsupported") {
      // This machine's build: sim only.
      expect(result.code).toBe(2);
      expect(error.message).toBe(
        "this orchard-runner was built without ExecuTorch; rebuild with -DORCHARD_WITH_EXECUTORCH=ON (see docs/runner.md)",
      );
    } else {
      // A build with ExecuTorch cannot load a missing file.
      expect(error.code).toBe("load_failed");
      expect(result.code).toBe(1);
    }
  });
});
