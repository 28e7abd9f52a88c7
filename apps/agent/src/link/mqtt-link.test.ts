/**
 * The MQTT link against a real broker in-process (Aedes, as the server embeds it,
 * with per-device credentials and subtree rules).
 */
import {
  type ChatStreamMessage,
  type DeviceStatus,
  DeviceEvent,
  type GenerationStats,
  TelemetryMessage,
  type TelemetrySample,
  topics,
} from "@orchard/contracts";
import { afterEach, describe, expect, it } from "vitest";
import { Observer, TestBroker } from "../../test/helpers/broker.js";
import { createLogger, silentLogger } from "../lib/logger.js";
import { TelemetryOutbox } from "../telemetry/outbox.js";
import { CommandDispatcher } from "./commands.js";
import { MqttLink, type MqttLinkOptions } from "./mqtt-link.js";
import { until } from "../../test/helpers/until.js";

const DEVICE = "pi-test-01";
const PASSWORD = "device-password-01";
const FAST = { initialMs: 50, maxMs: 400, jitter: 0 };

const online = (): Extract<DeviceStatus, { state: "online" }> => ({
  state: "online",
  ts: Date.now(),
  agentVersion: "0.1.0",
  hostname: "raspberrypi",
  arch: "arm64",
  runner: {
    state: "ready",
    backend: "sim",
    model: "sim",
    pid: 1234,
    rssBytes: 1,
    maxContext: 2048,
    loadMs: 1,
    restarts: 0,
    lastError: null,
    version: null,
  },
  activeModel: null,
});

const sample = (ts: number): TelemetrySample => ({
  ts,
  cpuPercent: 5,
  load1: 0,
  load5: 0,
  load15: 0,
  memTotalBytes: 8e9,
  memAvailableBytes: 7e9,
  swapTotalBytes: 0,
  swapUsedBytes: 0,
  diskTotalBytes: null,
  diskFreeBytes: null,
  socTempC: 50,
  throttle: null,
  runnerRssBytes: null,
  tokensPerSecond: null,
  prefillTokensPerSecond: null,
  generatedTokens: null,
  activeGenerations: null,
  cpuFreqHz: null,
  boardPowerW: null,
});

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function broker(): Promise<TestBroker> {
  const b = await new TestBroker({ devices: { [DEVICE]: PASSWORD } }).start();
  cleanup.push(() => b.stop());
  return b;
}

function link(b: TestBroker, options: Partial<MqttLinkOptions> = {}): MqttLink {
  const l = new MqttLink({
    url: b.url,
    username: DEVICE,
    password: PASSWORD,
    deviceId: DEVICE,
    logger: silentLogger,
    onlineStatus: online,
    backoff: FAST,
    ...options,
  });
  cleanup.push(() => l.stop());
  return l;
}

describe("MqttLink with a real broker", () => {
  it("connects as the device, publishes a retained online status and subscribes to its commands", async () => {
    const b = await broker();
    const l = link(b);
    const dispatcher = new CommandDispatcher({
      handlers: {
        ping: async () => ({ ok: true, message: "pong" }),
        "runner.restart": async () => ({ ok: true, message: "" }),
        "chat.start": async () => null,
        "chat.cancel": async () => null,
        "bench.run": async () => null,
        "rollout.apply": async () => null,
        "rollout.abort": async () => ({ ok: true, message: "" }),
        "rollout.rollback": async () => ({ ok: true, message: "" }),
        "credentials.rotate": async () => ({ ok: true, message: "" }),
      },
      reply: (e) => l.publishEvent(e),
      logger: silentLogger,
    });
    l.on("command", (p) => void dispatcher.handle(p));
    l.start();
    await until("connected", () => l.connected);
    await until("online status", () => b.on(topics.status(DEVICE)).length > 0);
    expect(b.published.find((m) => m.topic === topics.status(DEVICE))).toMatchObject({
      retain: true,
      qos: 1,
      payload: { state: "online", hostname: "raspberrypi" },
    });

    // A server connecting later still sees it: it is retained.
    const observer = await Observer.connect(b.url, topics.status(DEVICE));
    cleanup.push(() => observer.close());
    await until("retained status", () => observer.messages.length > 0);
    expect(observer.messages[0]).toMatchObject({ retain: true, payload: { state: "online" } });

    // Commands in, results out on the events topic at QoS 1; a re-delivered id runs once.
    const server = await Observer.connect(b.url, topics.events(DEVICE));
    cleanup.push(() => server.close());
    await until("command subscription", () => l.connected);
    await server.publish(topics.cmd(DEVICE), { type: "ping", id: "cmd-1", ts: Date.now() });
    await server.publish(topics.cmd(DEVICE), { type: "ping", id: "cmd-1", ts: Date.now() });
    await until("command result", () => server.on(topics.events(DEVICE)).length > 0);
    await new Promise((r) => setTimeout(r, 100));
    const results = server.on(topics.events(DEVICE)).map((e) => DeviceEvent.parse(e));
    expect(results).toEqual([expect.objectContaining({ kind: "command.result", commandId: "cmd-1", ok: true, message: "pong" })]);
  });

  it("the broker publishes its retained last will (offline, lost) when the connection dies; the link comes back online", async () => {
    const b = await broker();
    const l = link(b);
    l.start();
    await until("connected", () => l.connected);
    b.dropClient(DEVICE);
    await until("last will", () => b.on(topics.status(DEVICE)).some((p) => (p as DeviceStatus).state === "offline"));
    const will = b.published.find((m) => m.topic === topics.status(DEVICE) && (m.payload as DeviceStatus).state === "offline");
    expect(will).toMatchObject({ retain: true, qos: 1, payload: { state: "offline", reason: "lost" } });
    await until("online again", () => (b.on(topics.status(DEVICE)).at(-1) as DeviceStatus).state === "online");
    expect(l.connected).toBe(true);
  });

  it("keeps telemetry and events from an outage and publishes them in order after the reconnect", async () => {
    const b = await broker();
    const l = link(b);
    const outbox = new TelemetryOutbox({ publish: (m) => l.publishTelemetry(m), isConnected: () => l.connected, logger: silentLogger });
    l.start();
    await until("connected", () => l.connected);
    outbox.add(sample(1));
    await outbox.flush();
    await until("first sample at the broker", () => b.on(topics.telemetry(DEVICE)).length === 1);

    await b.stop();
    await until("disconnected", () => !l.connected);
    for (let ts = 2; ts <= 160; ts += 1) {
      outbox.add(sample(ts));
      await outbox.flush();
    }
    l.publishEvent({ kind: "command.result", ts: Date.now(), commandId: "while-offline", ok: true, message: "queued" });
    expect(outbox.buffered).toBe(159);
    expect(l.eventQueue().queued).toBe(1);

    await b.start(); // same port
    await until("reconnected", () => l.connected, 15_000);
    await outbox.flush();
    await until("event delivered", () => b.on(topics.events(DEVICE)).length === 1);
    await until("all samples at the broker", () => b.on(topics.telemetry(DEVICE)).length === 3);
    const messages = b.on(topics.telemetry(DEVICE)).map((p) => TelemetryMessage.parse(p));
    expect(messages.map((m) => m.samples.length)).toEqual([1, 100, 59]);
    expect(messages.flatMap((m) => m.samples.map((s) => s.ts))).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));
    expect(b.published.filter((m) => m.topic === topics.telemetry(DEVICE)).every((m) => m.qos === 0)).toBe(true);
    expect(outbox.buffered).toBe(0);
    await until("event acknowledged", () => l.eventQueue().queued === 0);
  });

  it("backs off exponentially while the broker is unreachable", async () => {
    const b = await broker();
    await b.stop(); // nothing listens on the port now
    const delays: number[] = [];
    const l = link(b);
    l.on("disconnected", (_info, delay) => delays.push(delay));
    l.start();
    await until("five attempts", () => delays.length >= 5, 10_000);
    expect(delays.slice(0, 5)).toEqual([50, 100, 200, 400, 400]);
    expect(l.info()).toMatchObject({ state: expect.stringMatching(/disconnected|connecting/), lastConnectedAt: null });
  });

  it("refuses wrong credentials, says so in the log without the password, and keeps retrying with backoff", async () => {
    const b = await broker();
    const lines: string[] = [];
    const l = link(b, { password: "wrong-password", logger: createLogger({ write: (line) => lines.push(line) }) });
    l.start();
    await until("two refusals", () => b.refused >= 2);
    expect(l.connected).toBe(false);
    expect(l.info().lastError).toMatch(/Bad username or password|Not authorized/);
    expect(lines.join("")).toMatch(/broker refused the connection/);
    expect(lines.join("")).not.toContain("wrong-password");
  });

  it("a clean shutdown leaves a retained offline (shutdown) status and no last will", async () => {
    const b = await broker();
    const l = link(b);
    l.start();
    await until("connected", () => l.connected);
    expect(await l.publishOffline()).toBe(true);
    await l.publishStatus(); // must not undo the offline status
    await l.stop();
    await new Promise((r) => setTimeout(r, 100));
    const statuses = b.on(topics.status(DEVICE)) as DeviceStatus[];
    expect(statuses.map((s) => s.state)).toEqual(["online", "offline"]);
    expect(statuses[1]).toMatchObject({ state: "offline", reason: "shutdown", ts: expect.any(Number) });
    expect(l.info().state).toBe("stopped");
    const observer = await Observer.connect(b.url, topics.status(DEVICE));
    cleanup.push(() => observer.close());
    await until("retained", () => observer.messages.length > 0);
    expect(observer.messages[0]).toMatchObject({ retain: true, payload: { state: "offline", reason: "shutdown" } });
  });

  it("stops at once while the broker is unreachable (a shutdown must not hang on it)", async () => {
    const b = await broker();
    await b.stop();
    const l = link(b);
    l.start();
    await until("first failed attempt", () => l.info().lastError !== null);
    expect(await l.publishOffline()).toBe(false);
    const started = Date.now();
    await l.stop();
    expect(Date.now() - started).toBeLessThan(500);
    expect(l.info().state).toBe("stopped");
  });

  it("chat streams: chunks and heartbeats at QoS 0, accepted/done at QoS 1, in order; final messages survive an outage, chunks do not", async () => {
    const b = await broker();
    const server = await Observer.connect(b.url, topics.allChat());
    cleanup.push(() => server.close());
    const l = link(b);
    l.start();
    await until("connected", () => l.connected);
    await until("online", () => b.on(topics.status(DEVICE)).length > 0);
    const ts = Date.now();
    const stats: GenerationStats = {
      backend: "sim",
      model: "sim",
      modelSha256: null,
      finishReason: "stop",
      promptTokens: 5,
      reusedTokens: 0,
      generatedTokens: 2,
      queueMs: 1,
      ttftMs: 1,
      prefillMs: 1,
      decodeMs: 1,
      prefillTokS: 1,
      decodeTokS: 1,
      peakRssBytes: 1,
      socTempC: null,
      throttleRaw: null,
    };
    const stream = (requestId: string): ChatStreamMessage[] => [
      { type: "accepted", requestId, ts, queuePosition: 0 },
      { type: "progress", requestId, ts, phase: "prefill", queuePosition: 0, generatedTokens: 0 },
      { type: "tokens", requestId, seq: 0, ts, text: "Hi", count: 1 },
      { type: "tokens", requestId, seq: 1, ts, text: "!", count: 1 },
      { type: "done", requestId, ts, text: "Hi!", stats },
    ];
    for (const m of stream("r-1")) l.publishChat(m);
    await until("r-1 at the broker", () => b.on(topics.chat(DEVICE, "r-1")).length === 5);
    const sent = b.published.filter((m) => m.topic === topics.chat(DEVICE, "r-1"));
    expect(sent.map((m) => `${(m.payload as ChatStreamMessage).type}:${m.qos}`)).toEqual([
      "accepted:1",
      "progress:0",
      "tokens:0",
      "tokens:0",
      "done:1",
    ]);
    // MQTT orders only within one QoS: the link holds a request's messages behind its unacknowledged QoS 1 one.
    await until("r-1 at the server", () => server.on(topics.chat(DEVICE, "r-1")).length === 5);
    expect(server.on(topics.chat(DEVICE, "r-1"))).toEqual(stream("r-1"));
    await until("acknowledged", () => l.chatQueue().queued === 0);

    // Not the contract's shape: dropped, never published.
    l.publishChat({ type: "tokens", requestId: "r-1", seq: 2, ts, text: "x", count: 0 });

    await b.stop();
    await until("disconnected", () => !l.connected);
    for (const m of stream("r-2")) l.publishChat(m);
    expect(l.chatQueue()).toEqual({ queued: 2, dropped: 3 });
    await b.start();
    await until("r-2's final messages after the reconnect", () => b.on(topics.chat(DEVICE, "r-2")).length === 2, 15_000);
    expect(b.on(topics.chat(DEVICE, "r-2")).map((p) => (p as ChatStreamMessage).type)).toEqual(["accepted", "done"]);
    expect(b.on(topics.chat(DEVICE, "r-1"))).toHaveLength(5);
    await until("acknowledged", () => l.chatQueue().queued === 0);
  });

  it("publishes only inside the device's own subtree", async () => {
    const b = await broker();
    const l = link(b);
    l.start();
    await until("connected", () => l.connected);
    expect(b.published.every((m) => m.topic.startsWith(`orchard/v1/devices/${DEVICE}/`))).toBe(true);
  });
});
