/**
 * Real inference end to end: the server (embedded broker, PGlite), an agent with
 * `--runner llamacpp` on a tiny GGUF generated here (random weights: gibberish text,
 * real llama.cpp compute through node-llama-cpp, 1 thread), and an agent on the `sim`
 * runner that a rollout switches to the GGUF and a rollback switches back. What is
 * asserted is what the engine reported (token counts, reused KV-cache tokens, its
 * tokens/s), never how fast it was.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ChatTokensEvent, type ConversationMessageDto, type RolloutDto, parseRunnerLine } from "@orchard/contracts";
import { planPush, push } from "../../apps/cli/src/artifact.ts";
import { TINY_GGUF_NAME, writeTinyGguf } from "../../scripts/tiny-gguf.ts";
import {
  ROOT,
  connectSocket,
  enrollAgent,
  login,
  removeDir,
  startProcess,
  startServer,
  waitFor,
  type FleetSocket,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";

const AGENT_BIN = path.join(ROOT, "apps/agent/bin/orchard-agent.mjs");
const LLAMA_RUNNER_BIN = path.join(ROOT, "apps/agent/bin/orchard-llama-runner.mjs");
const REFERENCE_PROMPT = "The capital of France is";

let server: TestServer;
let llama: TestAgent; // --runner llamacpp on the GGUF
let sim: TestAgent; // --runner sim, switched by a rollout
let socket: FleetSocket;
let tmp: string;
let gguf: { file: string; sizeBytes: number; sha256: string };

/** The tokens a browser sees streaming for a conversation. */
function watch(s: FleetSocket, conversationId: string): { tokens: ChatTokensEvent[] } {
  const w = { tokens: [] as ChatTokensEvent[] };
  s.emit("chat:watch", conversationId);
  s.on("chat:tokens", (e) => e.conversationId === conversationId && w.tokens.push(e));
  return w;
}

/**
 * The conversation's finished assistant messages once there are `n` (stored, with their
 * stats): a tiny model can finish before a browser's chat:watch joins the room, so the
 * stored conversation is the record, and the socket only adds what streamed.
 */
async function answers(conversationId: string, n: number): Promise<ConversationMessageDto[]> {
  return waitFor(
    `${n} finished answer(s) in conversation ${conversationId}`,
    async () => {
      const c = await server.client.chat.get.query({ id: conversationId });
      const done = c.messages.filter((m) => m.role === "assistant" && m.status !== "streaming");
      return done.length >= n ? done : null;
    },
    45_000,
  ).catch(async (err: Error) => {
    const c = await server.client.chat.get.query({ id: conversationId }).catch(() => null);
    throw new Error(
      `${err.message}\n${JSON.stringify(c?.messages.map((m) => [m.role, m.status, m.error, m.content.length]))}\n${server.proc.output.slice(-3000)}`,
    );
  });
}

async function device(agent: TestAgent) {
  return (await server.client.devices.list.query()).find((d) => d.id === agent.deviceId);
}

async function ready(agent: TestAgent, backend: "llamacpp" | "sim", artifactId: string | null = null) {
  await waitFor(
    `${agent.name} ready on ${backend}`,
    async () => {
      const d = await device(agent);
      return d?.online && d.runner?.state === "ready" && d.runner.backend === backend && (d.activeModel?.artifactId ?? null) === artifactId;
    },
    90_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- agent output ---\n${agent.proc?.output.slice(-4000) ?? ""}`);
  });
}

/** Runs the llama runner directly, as a rollout's health gate does: the reference prompt as one user message, greedy. */
async function engineReference(file: string, maxNewTokens: number): Promise<{ release: string; ids: number[] }> {
  const caps = await new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, [LLAMA_RUNNER_BIN, "--capabilities"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    c.stdout.on("data", (b: Buffer) => (out += b.toString()));
    c.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`--capabilities exited ${code}`))));
  });
  const release = (JSON.parse(caps) as { runtimes: Record<string, { versions: string[] }> }).runtimes["llama.cpp"]!.versions[0]!;
  const child = spawn(process.execPath, [LLAMA_RUNNER_BIN, "--model", file, "--threads", "1"], { stdio: ["pipe", "pipe", "ignore"] });
  const closed = new Promise((resolve) => child.on("close", resolve));
  const lines = createInterface({ input: child.stdout });
  const ids = await new Promise<number[]>((resolve, reject) => {
    lines.on("line", (line) => {
      const m = parseRunnerLine(line);
      if (m.type === "ready") {
        child.stdin.write(
          `${JSON.stringify({ type: "generate", id: "ref", messages: [{ role: "user", content: REFERENCE_PROMPT }], max_new_tokens: maxNewTokens })}\n`,
        );
      } else if (m.type === "done") resolve(m.token_ids);
      else if (m.type === "error") reject(new Error(`${m.code}: ${m.message}`));
    });
    child.on("close", () => reject(new Error("the llama runner exited before answering")));
  });
  child.stdin.end(`${JSON.stringify({ type: "shutdown" })}\n`);
  await closed;
  return { release, ids };
}

async function scrape(): Promise<string> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
  expect(res.status).toBe(200);
  return res.text();
}

function series(text: string, name: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : null;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-llama-test-"));
  // A 4096-token context, so that an answer long enough to stop mid-way fits.
  gguf = await writeTinyGguf({ file: path.join(tmp, "tiny.gguf"), seed: 1, context: 4096 });
  server = await startServer();
  llama = await enrollAgent(server, "llama-pi");
  sim = await enrollAgent(server, "llama-switch");
  llama.proc = startProcess(`agent ${llama.name}`, [
    AGENT_BIN,
    "run",
    "--data-dir",
    llama.dataDir,
    "--runner",
    "llamacpp",
    "--model",
    gguf.file,
    "--llama-threads",
    "1",
    "--telemetry-interval",
    "1",
  ]);
  sim.start();
  await ready(llama, "llamacpp");
  await ready(sim, "sim");
  socket = await connectSocket(server, await login(server));
}, 180_000);

afterAll(async () => {
  socket?.disconnect();
  for (const a of [llama, sim]) await a?.proc?.stop();
  await server?.stop();
  for (const a of [llama, sim]) if (a) await removeDir(a.dataDir);
  if (server) await removeDir(server.dataDir);
  if (tmp) await removeDir(tmp);
});

describe("llama.cpp runner, end to end", () => {
  const finished: ConversationMessageDto[] = [];

  it("reports the llamacpp backend and the GGUF's name (it says it has random weights)", async () => {
    const d = (await device(llama))!;
    expect(d.runner).toMatchObject({ state: "ready", backend: "llamacpp", model: TINY_GGUF_NAME });
    expect(d.runner!.maxContext).toBe(4096);
  });

  it("streams the tokens the engine produced, with the engine's stats", async () => {
    const sent = await server.client.chat.send.mutate({ deviceId: llama.deviceId, content: "Tell me about apples.", maxNewTokens: 24 });
    const w = watch(socket, sent.conversationId);
    const [done] = await answers(sent.conversationId, 1);
    finished.push(done!);
    expect(done!.status).toBe("complete");
    expect(done!.stats).toMatchObject({ backend: "llamacpp", model: TINY_GGUF_NAME, reusedTokens: 0 });
    expect(["stop", "length"]).toContain(done!.stats!.finishReason);
    expect(done!.stats!.generatedTokens).toBeGreaterThan(0);
    expect(done!.stats!.generatedTokens).toBeLessThanOrEqual(24);
    expect(done!.stats!.promptTokens).toBeGreaterThan(0);
    expect(done!.stats!.decodeTokS).toBeGreaterThan(0);
    expect(done!.stats!.peakRssBytes).toBeGreaterThan(0);
    expect(done!.content.length).toBeGreaterThan(0);
    // What streamed (if the browser joined in time) is contiguous and ends where the stored answer ends.
    if (w.tokens.length > 0) {
      const seqs = w.tokens.map((t) => t.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i));
      // The byte 0 the random model can emit is stored as U+FFFD (PostgreSQL text cannot hold NUL).
      const streamed = w.tokens
        .map((t) => t.text)
        .join("")
        .replaceAll("\u0000", "\uFFFD");
      expect(done!.content.endsWith(streamed)).toBe(true);
      expect(w.tokens.at(-1)!.tokens).toBe(done!.stats!.generatedTokens);
    }
  });

  it("a second turn reuses the KV cache the engine kept", async () => {
    const first = await server.client.chat.send.mutate({ deviceId: llama.deviceId, content: "First question.", maxNewTokens: 16 });
    await answers(first.conversationId, 1);
    await server.client.chat.send.mutate({ conversationId: first.conversationId, content: "And a follow-up?", maxNewTokens: 16 });
    const [a, b] = await answers(first.conversationId, 2);
    finished.push(a!, b!);
    expect(a!.stats!.reusedTokens).toBe(0);
    expect(b!.stats!.reusedTokens).toBeGreaterThan(0);
    expect(b!.stats!.reusedTokens).toBeLessThan(b!.stats!.promptTokens);
    expect(b!.stats!.promptTokens).toBeGreaterThan(a!.stats!.promptTokens);
  });

  it("stop cancels the generation in the engine; the device answers the next chat", async () => {
    // Random weights end some answers early with an end-of-text token: take the first prompt whose answer is still going.
    const prompts = ["Keep talking.", "Tell me everything about apples.", "Count to one thousand.", "Write a long story.", "Go on."];
    let cancelled: ConversationMessageDto | null = null;
    for (const content of prompts) {
      const sent = await server.client.chat.send.mutate({ deviceId: llama.deviceId, content, maxNewTokens: 4000 });
      const going = await waitFor(
        "tokens or the end",
        async () => {
          const m = (await server.client.chat.get.query({ id: sent.conversationId })).messages[1];
          if (m && m.status !== "streaming") return "ended";
          return m && m.content.length >= 5 ? "going" : null;
        },
        60_000,
      );
      if (going === "going") await server.client.chat.stop.mutate({ id: sent.conversationId });
      const [m] = await answers(sent.conversationId, 1);
      finished.push(m!);
      if (m!.status === "complete") continue; // it reached its end before the stop arrived
      cancelled = m!;
      break;
    }
    expect(cancelled, "no answer was still running when stopped").not.toBeNull();
    expect(cancelled!.status).toBe("cancelled");
    expect(cancelled!.stats).toMatchObject({ backend: "llamacpp", finishReason: "cancelled" });
    expect(cancelled!.stats!.generatedTokens).toBeGreaterThanOrEqual(5);
    expect(cancelled!.stats!.generatedTokens).toBeLessThan(4000);

    // The engine is free again: a new chat is answered, not refused as busy.
    const next = await server.client.chat.send.mutate({ deviceId: llama.deviceId, content: "Hello?", maxNewTokens: 4 });
    const [m] = await answers(next.conversationId, 1);
    finished.push(m!);
    expect(m!.status).toBe("complete");
  });

  it("/metrics shows the engine's tokens/s and the tokens it generated for the device", async () => {
    const label = `{device="${llama.deviceId}"}`;
    const generated = finished.reduce((n, m) => n + (m.stats?.generatedTokens ?? 0), 0);
    const text = await waitFor(
      "the device's decode tokens/s in /metrics",
      async () => {
        const t = await scrape();
        return (series(t, `orchard_decode_tokens_per_second${label}`) ?? 0) > 0 ? t : null;
      },
      30_000,
    );
    expect(series(text, `orchard_decode_tokens_per_second${label}`)).toBeGreaterThan(0);
    expect(series(text, `orchard_generated_tokens_total${label}`)).toBe(generated);
    const d = (await server.client.devices.get.query({ id: llama.deviceId }))!;
    expect(d.runner?.backend).toBe("llamacpp");
  });

  it("a rollout switches a sim device to the GGUF (runtime llama.cpp) and a rollback switches it back", async () => {
    const { release, ids } = await engineReference(gguf.file, 8);
    expect(ids.length).toBeGreaterThan(0);
    const plan = await planPush({
      files: [gguf.file],
      name: "tiny-gguf",
      version: "1",
      runtime: "llama.cpp",
      runtimeVersion: release,
      profile: undefined,
      maxContext: undefined,
      referencePrompt: REFERENCE_PROMPT,
      expectedIds: ids.join(","),
    });
    const artifact = await push(plan, { client: server.client, url: server.url, apiKey: server.apiKey, err: () => undefined, tty: false });
    expect(artifact).toMatchObject({ runtime: "llama.cpp", runtimeVersion: release, profile: null });
    expect(artifact.files[0]).toMatchObject({ role: "model", sha256: gguf.sha256, size: gguf.sizeBytes });

    const created = await server.client.rollouts.create.mutate({
      artifactId: artifact.id,
      deviceIds: [sim.deviceId],
      name: "to llama.cpp",
    });
    const r = await waitFor(
      "the rollout to end",
      async () => {
        const x = await server.client.rollouts.get.query({ id: created.id });
        return x.state !== "running" ? x : null;
      },
      120_000,
    ).catch(async (err: Error) => {
      const x: RolloutDto | null = await server.client.rollouts.get.query({ id: created.id }).catch(() => null);
      throw new Error(`${err.message}\n${JSON.stringify(x?.devices.map((d) => [d.state, d.error]))}\n${sim.proc?.output.slice(-3000)}`);
    });
    expect(r.state, JSON.stringify(r.devices.map((d) => d.error))).toBe("completed");
    expect(r.artifactRuntime).toBe("llama.cpp");
    await ready(sim, "llamacpp", artifact.id);
    expect((await device(sim))!.activeModel).toMatchObject({ artifactId: artifact.id, runtime: "llama.cpp", sha256: gguf.sha256 });

    // It chats through llama.cpp now.
    const sent = await server.client.chat.send.mutate({ deviceId: sim.deviceId, content: "Who are you?", maxNewTokens: 8 });
    const [viaLlama] = await answers(sent.conversationId, 1);
    expect(viaLlama!.stats).toMatchObject({ backend: "llamacpp", model: TINY_GGUF_NAME, modelSha256: gguf.sha256 });

    // Back to what it ran before: the command line's sim runner.
    await server.client.rollouts.rollbackDevice.mutate({ id: created.id, deviceId: sim.deviceId });
    await ready(sim, "sim", null);
    const back = await waitFor("the rollback to be recorded", async () => {
      const x = await server.client.rollouts.get.query({ id: created.id });
      return x.devices[0]!.state === "rolled_back" ? x.devices[0]! : null;
    });
    expect(back.error?.code).toBe("rolled_back");
    const again = await server.client.chat.send.mutate({ deviceId: sim.deviceId, content: "And now?", maxNewTokens: 4 });
    const [viaSim] = await answers(again.conversationId, 1);
    expect(viaSim!.stats!.backend).toBe("sim");
  }, 240_000);
});
