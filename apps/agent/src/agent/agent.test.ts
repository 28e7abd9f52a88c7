/**
 * The assembled agent in-process: a real broker (Aedes), the real sim runner, and
 * telemetry read from the Pi 5 fixture. Process-level tests with the server live
 * in test/integration at the repository root.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_STANDARD_PROMPTS, ChatStreamMessage, DeviceEvent, type DeviceStatus, TelemetryMessage, topics } from "@orchard/contracts";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Observer, TestBroker } from "../../test/helpers/broker.js";
import { MqttProxy, PUBACK, PUBLISH } from "../../test/helpers/mqtt-proxy.js";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import { readStateFile } from "../state/state-file.js";
import { Agent } from "./agent.js";
import { until } from "../../test/helpers/until.js";

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const PI5 = fileURLToPath(new URL("../../test/fixtures/pi5", import.meta.url));
const DEVICE = "pi-agent-01";
const PASSWORD = "agent-test-password";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

beforeAll(() => {
  if (!existsSync(RUNNER)) throw new Error(`the runner binary ${RUNNER} is missing: build native/ first`);
});

async function setup(options: { viaProxy?: boolean; vcgencmd?: string; vcgencmdTimeoutMs?: number } = {}) {
  const broker = await new TestBroker({ devices: { [DEVICE]: PASSWORD } }).start();
  cleanup.push(() => broker.stop());
  // The agent can talk to the broker through a proxy that sees (and can hold) every packet.
  const proxy = options.viaProxy ? await MqttProxy.start(broker.port) : null;
  if (proxy) cleanup.push(() => proxy.stop());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-run-"));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  const agent = new Agent({
    enrollment: {
      version: 1,
      serverUrl: "http://127.0.0.1:3000",
      deviceId: DEVICE,
      name: "agent-test",
      mqtt: { url: proxy?.url ?? broker.url, username: DEVICE, password: PASSWORD },
      enrolledAt: new Date().toISOString(),
    },
    dataDir,
    runner: {
      backend: "sim",
      bin: { path: RUNNER, source: "flag" },
      model: null,
      tokenizer: null,
      profile: null,
      extraArgs: ["--sim-load-ms=20"],
      llamaThreads: 1,
    },
    telemetryIntervalMs: 200,
    logger: silentLogger,
    systemRoot: PI5,
    vcgencmd: options.vcgencmd ?? path.join(PI5, "bin/vcgencmd"),
    // The readings asserted below come from the fixture however slowly a loaded machine spawns it.
    vcgencmdTimeoutMs: "vcgencmdTimeoutMs" in options ? options.vcgencmdTimeoutMs : 60_000,
    hostname: "raspberrypi",
    arch: "arm64",
    restartPolicy: { initialMs: 100 },
    stateWriteIntervalMs: 100,
  });
  cleanup.push(() => agent.shutdown());
  const statuses = () => broker.on(topics.status(DEVICE)) as DeviceStatus[];
  const events = () => broker.on(topics.events(DEVICE)).map((e) => DeviceEvent.parse(e));
  const samples = () => broker.on(topics.telemetry(DEVICE)).flatMap((m) => TelemetryMessage.parse(m).samples);
  return { broker, proxy, agent, dataDir, statuses, events, samples };
}

describe("Agent (real broker, real sim runner, Pi 5 fixture)", () => {
  it("comes online, reports the runner ready, and publishes telemetry", async () => {
    const { agent, dataDir, statuses, events, samples } = await setup();
    await agent.start();

    const ready = await until("online with a ready runner", () =>
      statuses().find((s): s is Extract<DeviceStatus, { state: "online" }> => s.state === "online" && s.runner.state === "ready"),
    );
    expect(ready).toMatchObject({ hostname: "raspberrypi", arch: "arm64", activeModel: null, runner: { backend: "sim", restarts: 0 } });
    expect(ready.runner.model).toMatch(/sim/);
    // Once the runners answered --capabilities, the status says which runtimes this device loads.
    const withRuntimes = await until("a status with the runtimes", () =>
      statuses().find((s): s is Extract<DeviceStatus, { state: "online" }> => s.state === "online" && (s.runtimes?.length ?? 0) > 0),
    );
    expect(withRuntimes.runtimes).toContain("sim");
    const runnerStates = () => events().flatMap((e) => (e.kind === "runner.state" ? [e.runner.state] : []));
    await until("runner.state events", () => runnerStates().includes("ready"));
    expect(runnerStates()).toEqual(["starting", "ready"]);

    const sample = await until("a sample with the runner's RSS", () => samples().find((s) => s.runnerRssBytes !== null));
    expect(sample).toMatchObject({ socTempC: 51.9, throttle: { raw: 0x50005, underVoltage: true }, load1: 0.52, tokensPerSecond: null });
    expect(sample.runnerRssBytes).toBeGreaterThan(1024 * 1024);

    const state = await until("state.json", async () => {
      const s = await readStateFile(path.join(dataDir, "state.json")).catch(() => null);
      return s?.connection.state === "connected" && s.runner.state === "ready" && s.telemetry.lastSampleAt !== null ? s : null;
    });
    expect(state).toMatchObject({ deviceId: DEVICE, running: true, pid: process.pid });
  });

  it("reads the firmware through a vcgencmd that takes 1.5 s to answer (a busy Pi), with the default timeout", async () => {
    const { agent, samples } = await setup({ vcgencmd: path.join(PI5, "bin/vcgencmd-slow"), vcgencmdTimeoutMs: undefined });
    await agent.start();
    // Telemetry ticks every 200 ms here; each sample waits for its reading.
    await until("three samples", () => samples().length >= 3, 30_000);
    expect(samples().map((s) => s.throttle?.raw ?? null)).toEqual(samples().map(() => 0x50005));
  });

  it("restarts the runner on command and after a crash, and reports both", async () => {
    const { broker, agent, statuses, events } = await setup();
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");

    // runner.restart from the server.
    const server = await Observer.connect(broker.url, topics.events(DEVICE));
    cleanup.push(() => server.close());
    await server.publish(topics.cmd(DEVICE), { type: "runner.restart", id: "restart-1", ts: Date.now() });
    const result = await until("command result", () => events().find((e) => e.kind === "command.result"));
    expect(result).toMatchObject({ commandId: "restart-1", ok: true });
    await until("ready after restart", () => agent.supervisor.status().state === "ready");
    expect(agent.supervisor.status().restarts).toBe(1);

    // A crash: killed from outside.
    const pid = agent.supervisor.status().pid!;
    process.kill(pid, "SIGKILL");
    const exit = await until("runner.exit event", () => events().find((e) => e.kind === "runner.exit"));
    expect(exit).toMatchObject({ kind: "runner.exit", signal: "SIGKILL", code: null, restartInMs: 100 });
    await until("reported crashed", () => statuses().some((s) => s.state === "online" && s.runner.state === "crashed"));
    await until("ready again with 2 restarts", () =>
      statuses().some((s) => s.state === "online" && s.runner.state === "ready" && s.runner.restarts === 2),
    );
  });

  const chatStart = (id: string, requestId: string, maxNewTokens: number) => ({
    type: "chat.start",
    id,
    ts: Date.now(),
    requestId,
    session: "conv-1",
    messages: [{ role: "user", content: "What grows in an orchard?" }],
    maxNewTokens,
    temperature: 0,
    topP: 1,
  });

  it("answers chat.start from the server on the chat topic (accepted, tokens, done) and stops on chat.cancel", async () => {
    const { broker, agent, events, samples } = await setup();
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");
    const server = await Observer.connect(broker.url, topics.allChat());
    cleanup.push(() => server.close());
    const stream = (requestId: string) => server.on(topics.chat(DEVICE, requestId)).map((m) => ChatStreamMessage.parse(m));
    const final = (requestId: string) => stream(requestId).find((m) => m.type === "done" || m.type === "error");

    await server.publish(topics.cmd(DEVICE), chatStart("chat-cmd-1", "req-1", 12));
    await server.publish(topics.cmd(DEVICE), chatStart("chat-cmd-1", "req-1", 12)); // re-delivered
    const done = await until("done", () => final("req-1"));
    expect(done).toMatchObject({
      type: "done",
      stats: { finishReason: "length", generatedTokens: 12, socTempC: 51.9, throttleRaw: 0x50005 },
    });
    const messages = stream("req-1");
    expect(messages[0]).toMatchObject({ type: "accepted", queuePosition: 0 });
    expect(messages.at(-1)).toEqual(done);
    const chunks = messages.filter((m) => m.type === "tokens");
    expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
    expect(chunks.map((c) => c.text).join("")).toBe(done.type === "done" && done.text);
    expect(messages.filter((m) => m.type === "accepted")).toHaveLength(1);

    // Stop: chat.cancel ends a long answer with what was generated so far.
    await server.publish(topics.cmd(DEVICE), chatStart("chat-cmd-2", "req-2", 1000));
    await until("tokens", () => stream("req-2").some((m) => m.type === "tokens"));
    await server.publish(topics.cmd(DEVICE), { type: "chat.cancel", id: "chat-cmd-3", ts: Date.now(), requestId: "req-2" });
    expect(await until("cancelled", () => final("req-2"))).toMatchObject({ type: "done", stats: { finishReason: "cancelled" } });

    // Chats are answered on their topic, not with command.result; telemetry reports decode speed.
    expect(events().filter((e) => e.kind === "command.result")).toEqual([]);
    await until("tokens/s in telemetry", () => samples().some((s) => s.tokensPerSecond !== null && s.tokensPerSecond > 0));
  });

  it("refuses a malformed chat.start on its chat topic", async () => {
    const { broker, agent, events } = await setup();
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");
    const server = await Observer.connect(broker.url, topics.allChat());
    cleanup.push(() => server.close());
    await server.publish(topics.cmd(DEVICE), { ...chatStart("bad-cmd", "req-bad", 12), maxNewTokens: 0 });
    const [refusal] = await until("refusal", () => {
      const got = server.on(topics.chat(DEVICE, "req-bad"));
      return got.length > 0 ? got : null;
    });
    expect(refusal).toMatchObject({ type: "error", code: "bad_request", message: expect.stringMatching(/maxNewTokens/) });
    expect(events().filter((e) => e.kind === "command.result")).toEqual([]);
  });

  it("a shutdown during an answer sends its partial answer before the offline status", async () => {
    const { broker, proxy, agent, statuses } = await setup({ viaProxy: true });
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");
    const server = await Observer.connect(broker.url, topics.allChat());
    cleanup.push(() => server.close());
    await server.publish(topics.cmd(DEVICE), chatStart("sd-cmd", "req-sd", 1000));
    await until("tokens", () => server.on(topics.chat(DEVICE, "req-sd")).some((m) => (m as ChatStreamMessage).type === "tokens"));

    // The broker's acknowledgement of the final `done` is held back (for up to 2 s, or until an
    // offline status comes): the offline status may only be sent once `done` is acknowledged.
    const chatTopic = topics.chat(DEVICE, "req-sd");
    const isOffline = (p: { type: number; topic: string | null; payload: string | null }) =>
      p.type === PUBLISH && p.topic === topics.status(DEVICE) && (JSON.parse(p.payload!) as DeviceStatus).state === "offline";
    let releaseTimer: NodeJS.Timeout | undefined;
    proxy!.onUpstream = (p) => {
      if (p.type === PUBLISH && p.topic === chatTopic && (JSON.parse(p.payload!) as ChatStreamMessage).type === "done") {
        proxy!.hold();
        releaseTimer = setTimeout(() => proxy!.release(), 2_000);
      } else if (isOffline(p)) proxy!.release();
    };
    cleanup.push(async () => clearTimeout(releaseTimer));
    await agent.shutdown("SIGTERM");

    const done = proxy!.packets.find((p) => p.dir === "up" && p.topic === chatTopic && JSON.parse(p.payload!).type === "done");
    expect(done?.messageId, "the done was sent at QoS 1").toEqual(expect.any(Number));
    const sequence = proxy!.packets.flatMap((p) => {
      if (p === done) return ["done sent"];
      if (p.dir === "down" && p.type === PUBACK && p.messageId === done!.messageId) return ["done acknowledged"];
      if (p.dir === "up" && isOffline(p)) return ["offline sent"];
      return [];
    });
    expect(sequence).toEqual(["done sent", "done acknowledged", "offline sent"]);
    // And so the broker (the server's view) has them in that order.
    const order = broker.published.flatMap((m) => {
      if (m.topic === chatTopic && (m.payload as ChatStreamMessage).type === "done") return ["done"];
      if (m.topic === topics.status(DEVICE) && (m.payload as DeviceStatus).state === "offline") return ["offline"];
      return [];
    });
    expect(order).toEqual(["done", "offline"]);
    expect(statuses().at(-1)).toMatchObject({ state: "offline", reason: "shutdown" });
  });

  it("runs bench.run from the server: progress after each prompt, one result on events; a repeated run is ignored", async () => {
    const { broker, agent, events } = await setup();
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");
    const server = await Observer.connect(broker.url, topics.events(DEVICE));
    cleanup.push(() => server.close());
    const run = {
      type: "bench.run",
      id: "bench-cmd-1",
      ts: Date.now(),
      runId: "run-agent",
      prompts: BENCH_STANDARD_PROMPTS.slice(0, 2),
      maxNewTokens: 8,
    };
    await server.publish(topics.cmd(DEVICE), run);
    const result = await until("bench.result", () => events().find((e) => e.kind === "bench.result"));
    expect(result).toMatchObject({
      runId: "run-agent",
      ok: true,
      error: null,
      result: { backend: "sim", runnerVersion: expect.any(String), before: { socTempC: 51.9, throttleRaw: 0x50005 } },
    });
    expect(result.kind === "bench.result" && result.result?.prompts.map((p) => [p.promptId, p.generatedTokens])).toEqual([
      ["capital-of-france", 8],
      ["short-answer", 8],
    ]);
    const progress = events().flatMap((e) => (e.kind === "bench.progress" ? [`${e.completed}/${e.total}`] : []));
    expect(progress).toEqual(["0/2", "1/2", "2/2"]);

    // The same run again under a new command id: ignored. Commands are handled in order, so once the ping is answered it was seen.
    await server.publish(topics.cmd(DEVICE), { ...run, id: "bench-cmd-2" });
    await server.publish(topics.cmd(DEVICE), { type: "ping", id: "ping-after", ts: Date.now() });
    await until("ping answered", () => events().some((e) => e.kind === "command.result" && e.commandId === "ping-after"));
    expect(agent.bench.held()).toEqual([]);
    expect(events().filter((e) => e.kind === "bench.result")).toHaveLength(1);
    // A malformed bench.run is answered where the server waits for it: with a failed result for its run.
    await server.publish(topics.cmd(DEVICE), { ...run, id: "bench-cmd-3", runId: "run-bad", maxNewTokens: 0 });
    const refused = await until("refusal", () => events().find((e) => e.kind === "bench.result" && e.runId === "run-bad"));
    expect(refused).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^the device refused the benchmark: invalid command: maxNewTokens/),
      result: null,
    });
    expect(events().filter((e) => e.kind === "command.result" && e.commandId.startsWith("bench-cmd"))).toEqual([]);
  });

  it("shuts down cleanly: offline status, runner stopped, final state file", async () => {
    const { agent, dataDir, statuses } = await setup();
    await agent.start();
    await until("ready", () => agent.supervisor.status().state === "ready");
    // Online first: a shutdown while the CONNECT is still unanswered can only leave the last will.
    await until("online", () => statuses().some((s) => s.state === "online"));
    const runnerPid = agent.supervisor.status().pid!;
    await agent.shutdown("SIGTERM");

    const all = statuses();
    expect(all.at(-1), JSON.stringify(all.slice(-3))).toMatchObject({ state: "offline", reason: "shutdown" });
    expect(all.filter((s) => s.state === "offline")).toHaveLength(1); // no last will after a clean disconnect
    expect(() => process.kill(runnerPid, 0)).toThrow();
    const state = await readStateFile(path.join(dataDir, "state.json"));
    expect(state).toMatchObject({ running: false, connection: { state: "stopped" }, runner: { state: "stopped", pid: null } });
  });
});
