/**
 * Chat relay latency: from the agent reading a token from its runner to a client
 * receiving it, through the whole path (agent batching → MQTT → server relay →
 * socket.io or SSE). Real server (embedded broker, PGlite), N real agents each with
 * a sim runner decoding at 50 tok/s, N chats at once, repeated for DURATION seconds.
 *
 * Method: every token chunk carries the time the agent read its first token from the
 * runner (`ts`, same machine clock); latency = client receive time − ts. This includes
 * the agent's batching (a chunk waits up to 50 ms for more tokens when the runner is
 * fast) by design: it is part of what a user waits.
 */
import { io } from "socket.io-client";
import { enrollAgent, login, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";
import { processUsage, summarize } from "./stats.ts";

const DECODE_TOK_S = 50;

async function startFleet(server: TestServer, n: number): Promise<TestAgent[]> {
  const agents: TestAgent[] = [];
  // Enroll a few at a time: each enrollment starts a Node process.
  for (let i = 0; i < n; i += 5) {
    const batch = await Promise.all(Array.from({ length: Math.min(5, n - i) }, (_, j) => enrollAgent(server, `bench-${i + j}`)));
    for (const a of batch) {
      a.start([`--runner-arg=--sim-decode-tok-s=${DECODE_TOK_S}`, "--runner-arg=--sim-prefill-tok-s=5000", "--telemetry-interval", "5"]);
      agents.push(a);
    }
  }
  await waitFor(
    `${n} devices ready`,
    async () => (await server.client.devices.list.query()).filter((d) => d.online && d.runner?.state === "ready").length === n,
    180_000,
  );
  return agents;
}

async function viaSocket(server: TestServer, agents: TestAgent[], durationMs: number): Promise<{ latencies: number[]; tokens: number }> {
  const cookie = await login(server);
  const socket = io(server.url, { transports: ["websocket"], extraHeaders: { cookie, origin: server.url } });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  const latencies: number[] = [];
  let tokens = 0;
  const waiting = new Map<string, () => void>();
  socket.on("chat:tokens", (e) => {
    latencies.push(Date.now() - e.ts);
  });
  socket.on("chat:done", (e) => {
    tokens += e.message.stats?.generatedTokens ?? 0;
    waiting.get(e.conversationId)?.();
  });
  socket.on("chat:error", (e) => waiting.get(e.conversationId)?.());
  const deadline = Date.now() + durationMs;
  await Promise.all(
    agents.map(async (agent) => {
      while (Date.now() < deadline) {
        const sent = await server.client.chat.send.mutate({ deviceId: agent.deviceId, content: "Tell me something.", maxNewTokens: 200 });
        await new Promise<void>((resolve) => {
          waiting.set(sent.conversationId, resolve);
          socket.emit("chat:watch", sent.conversationId);
        });
        waiting.delete(sent.conversationId);
      }
    }),
  );
  socket.disconnect();
  return { latencies, tokens };
}

async function viaSse(server: TestServer, agents: TestAgent[], durationMs: number): Promise<{ latencies: number[]; tokens: number }> {
  const latencies: number[] = [];
  let tokens = 0;
  const deadline = Date.now() + durationMs;
  await Promise.all(
    agents.map(async (agent) => {
      while (Date.now() < deadline) {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify({
            model: `device:${agent.deviceId}`,
            stream: true,
            max_tokens: 200,
            messages: [{ role: "user", content: "Tell me something." }],
          }),
        });
        if (!res.ok) throw new Error(`SSE request failed: ${res.status} ${await res.text()}`);
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          const now = Date.now();
          buffer += decoder.decode(chunk, { stream: true });
          let sep: number;
          while ((sep = buffer.indexOf("\n\n")) >= 0) {
            const line = buffer.slice(0, sep);
            buffer = buffer.slice(sep + 2);
            if (!line.startsWith("data: {")) continue;
            const msg = JSON.parse(line.slice(6)) as { orchard?: { ts: number }; usage?: { completion_tokens: number } };
            if (msg.orchard) latencies.push(now - msg.orchard.ts);
            if (msg.usage) tokens += msg.usage.completion_tokens;
          }
        }
      }
    }),
  );
  return { latencies, tokens };
}

function row(label: string, r: { latencies: number[]; tokens: number }, durationMs: number, cpu: number, rss: number): string {
  const s = summarize(r.latencies);
  return `| ${label} | ${s.n} | ${s.p50.toFixed(0)} | ${s.p90.toFixed(0)} | ${s.p99.toFixed(0)} | ${s.max.toFixed(0)} | ${(r.tokens / (durationMs / 1000)).toFixed(0)} | ${((cpu / (durationMs / 1000)) * 100).toFixed(0)} % | ${(rss / 2 ** 20).toFixed(0)} MiB |`;
}

export async function benchChatRelay(opts: { concurrency: number[]; durationS: number }): Promise<string[]> {
  const lines = [
    `Chat relay latency, agent read → client receive, sim runner at ${DECODE_TOK_S} tok/s per device, ${opts.durationS} s per run`,
    "",
    "| run | chunks | p50 ms | p90 ms | p99 ms | max ms | tokens/s relayed | server CPU | server RSS |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const n of opts.concurrency) {
    const server = await startServer({ env: { ORCHARD_LOG_LEVEL: "warn" } });
    const agents = await startFleet(server, n);
    try {
      for (const [label, run] of [
        ["socket.io", viaSocket],
        ["SSE", viaSse],
      ] as const) {
        const before = await processUsage(server.proc.pid);
        const result = await run(server, agents, opts.durationS * 1000);
        const after = await processUsage(server.proc.pid);
        const line = row(
          `${n} chat${n > 1 ? "s" : ""}, ${label}`,
          result,
          opts.durationS * 1000,
          after.cpuSeconds - before.cpuSeconds,
          after.rssBytes,
        );
        lines.push(line);
        process.stdout.write(`${line}\n`);
      }
    } finally {
      await Promise.all(agents.map((a) => a.proc?.stop()));
      await server.stop();
      await Promise.all(agents.map((a) => removeDir(a.dataDir)));
      await removeDir(server.dataDir);
    }
  }
  return lines;
}
