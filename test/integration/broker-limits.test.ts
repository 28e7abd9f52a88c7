/**
 * The broker's limits, through a real server and its broker (the embedded Aedes one, or
 * Mosquitto from the shipped config with ORCHARD_TEST_MODE=production) over real sockets:
 * a packet that declares more than MAX_MQTT_PACKET_BYTES closes its connection before the
 * broker reads it (a 250 MB CONNECT from nobody, a 50 MB PUBLISH from a logged-in device),
 * and a retain flag on a topic the protocol does not retain leaves no retained copy behind.
 */
import { readFile } from "node:fs/promises";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EnrollResponse, MAX_DEVICE_PAYLOAD_BYTES, MAX_MQTT_PACKET_BYTES, TelemetryMessage, topics } from "@orchard/contracts";
import { connectMqtt, enrollDevice, removeDir, startServer, type TestServer, waitFor } from "../support/harness.ts";
import { SHIPPED_CONF } from "../support/mosquitto.ts";

const MiB = 1024 * 1024;
/** What a client may stream at a refused packet before giving up: far more than any socket buffers hold. */
const STREAM_BUDGET = 64 * MiB;
/** A broker that refuses at the header has read at most this much (socket buffers on both sides, loopback). */
const READ_AT_MOST = 16 * MiB;

let server: TestServer;
let a: EnrollResponse;

function telemetry(): string {
  const sample = {
    ts: Date.now(),
    cpuPercent: 5,
    load1: 0.1,
    load5: 0.1,
    load15: 0.1,
    memTotalBytes: 4e9,
    memAvailableBytes: 2e9,
    swapTotalBytes: 0,
    swapUsedBytes: 0,
    diskTotalBytes: null,
    diskFreeBytes: null,
    socTempC: 45,
    throttle: null,
    runnerRssBytes: null,
    tokensPerSecond: null,
  };
  return JSON.stringify(TelemetryMessage.parse({ samples: [sample] }));
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } })).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

// ------------------------------------------------------------ raw MQTT bytes

/** MQTT remaining length (§2.2.3): 7 bits a byte, low first. */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

const str = (s: string) => {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

/** An MQTT 3.1.1 CONNECT with clean session, username and password. */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const body = Buffer.concat([str("MQTT"), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body]);
}

/** The fixed header and topic of a QoS 0 PUBLISH whose payload is `payloadBytes` long. */
function publishHead(topic: string, payloadBytes: number): Buffer {
  const t = str(topic);
  return Buffer.concat([Buffer.from([0x30]), varint(t.length + payloadBytes), t]);
}

function openSocket(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.mqttPort, "127.0.0.1");
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** A raw connection logged in as `device` (CONNACK 0 received). */
async function rawLogin(device: EnrollResponse): Promise<net.Socket> {
  const socket = await openSocket();
  const connack = new Promise<Buffer>((resolve) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 4) return;
      socket.off("data", onData);
      socket.pause();
      resolve(got);
    };
    socket.on("data", onData);
  });
  socket.write(connectPacket(device.deviceId, device.deviceId, device.mqttPassword));
  expect([...(await connack).subarray(0, 4)]).toEqual([0x20, 0x02, 0x00, 0x00]);
  return socket;
}

/** Resolves when the broker ends (FIN) or resets the connection; reads and drops what it sends meanwhile. */
function closedByBroker(socket: net.Socket): Promise<void> {
  return new Promise<void>((resolve) => {
    socket.once("end", () => resolve());
    socket.once("close", () => resolve());
    socket.on("error", () => resolve());
    socket.resume();
  });
}

/**
 * Writes `head`, then zeros, 64 KiB at a time, each write waiting until the kernel took it, until
 * the broker closes the connection (its FIN or reset) or `budget` bytes are written. Returns whether
 * it was closed and how many bytes the kernel accepted first.
 */
async function streamUntilClosed(socket: net.Socket, head: Buffer, budget = STREAM_BUDGET): Promise<{ closed: boolean; written: number }> {
  let closed = false;
  const closing = closedByBroker(socket).then(() => {
    closed = true;
    return false as const;
  });
  let written = 0;
  const write = (buf: Buffer) =>
    Promise.race([
      new Promise<boolean>((resolve) => {
        if (closed || socket.destroyed || !socket.writable) return resolve(false);
        socket.write(buf, (err) => {
          if (!err) written += buf.length;
          resolve(!err);
        });
      }),
      closing,
    ]);
  const zeros = Buffer.alloc(64 * 1024);
  let ok = await write(head);
  while (ok && written < budget) ok = await write(zeros);
  // A write the kernel refused means the broker closed or reset the connection: wait until the socket says which.
  if (!ok) await closing;
  const result = { closed, written };
  socket.destroy();
  return result;
}

beforeAll(async () => {
  server = await startServer();
  a = await enrollDevice(server, "pi-limits-a");
});

afterAll(async () => {
  await server?.stop();
  if (server) await removeDir(server.dataDir);
});

describe("packet size", () => {
  it("uses one limit: the payload limit plus room for the header, in the broker and in the shipped mosquitto.conf", async () => {
    expect(MAX_MQTT_PACKET_BYTES).toBe(MAX_DEVICE_PAYLOAD_BYTES + 1024);
    const conf = await readFile(SHIPPED_CONF, "utf8");
    const line = conf.split("\n").find((l) => l.trim().startsWith("max_packet_size "));
    expect(line, "infra/mosquitto/mosquitto.conf sets max_packet_size").toBeDefined();
    expect(Number(line!.trim().split(/\s+/)[1])).toBe(MAX_MQTT_PACKET_BYTES);
  });

  it("closes four connections whose CONNECT declares 250 MB without reading them, and still serves a device", async () => {
    const head = Buffer.concat([Buffer.from([0x10]), varint(250 * MiB)]);
    const sockets = await Promise.all([1, 2, 3, 4].map(() => openSocket()));
    const results = await Promise.all(sockets.map((s) => streamUntilClosed(s, head)));
    for (const r of results) {
      expect(r.closed, `the broker kept reading a 250 MB CONNECT (${r.written} bytes taken, connection still open)`).toBe(true);
      expect(r.written).toBeLessThan(READ_AT_MOST);
    }

    const before = await metric("orchard_mqtt_messages_total", 'kind="telemetry"');
    const device = await connectMqtt(server, a);
    await device.publishAsync(topics.telemetry(a.deviceId), telemetry(), { qos: 1 });
    await device.endAsync();
    await waitFor(
      "the device's telemetry to be ingested",
      async () => (await metric("orchard_mqtt_messages_total", 'kind="telemetry"')) > before,
    );
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
  });

  it("closes a logged-in device that starts a 50 MB PUBLISH before reading it, and delivers nothing of an oversized one", async () => {
    const streaming = await rawLogin(a);
    const r = await streamUntilClosed(streaming, publishHead(topics.telemetry(a.deviceId), 50 * MiB));
    expect(r.closed, `the broker kept reading a 50 MB PUBLISH (${r.written} bytes taken, connection still open)`).toBe(true);
    expect(r.written).toBeLessThan(READ_AT_MOST);

    // A whole packet just over the limit (its remaining length alone is the limit; Mosquitto counts that + 1,
    // the embedded broker the whole packet), valid JSON padded with spaces: closed, and nothing reaches the server.
    const before = await metric("orchard_mqtt_messages_total", 'kind="telemetry"');
    const oversizedBefore = await metric("orchard_mqtt_messages_rejected_total", 'reason="oversized"');
    const topicBytes = Buffer.byteLength(topics.telemetry(a.deviceId)) + 2;
    const payload = Buffer.alloc(MAX_MQTT_PACKET_BYTES - topicBytes, 0x20);
    payload.write(telemetry());
    const whole = Buffer.concat([publishHead(topics.telemetry(a.deviceId), payload.length), payload]);
    expect(whole.length).toBe(MAX_MQTT_PACKET_BYTES + 4);
    const oversized = await rawLogin(a);
    const closed = closedByBroker(oversized);
    oversized.write(whole);
    await closed;
    oversized.destroy();

    // The next message from the same device is the only one the server ingests.
    const device = await connectMqtt(server, a);
    await device.publishAsync(topics.telemetry(a.deviceId), telemetry(), { qos: 1 });
    await device.endAsync();
    await waitFor(
      "the device's next telemetry to be ingested",
      async () => (await metric("orchard_mqtt_messages_total", 'kind="telemetry"')) > before,
    );
    expect(await metric("orchard_mqtt_messages_total", 'kind="telemetry"')).toBe(before + 1);
    expect(await metric("orchard_mqtt_messages_rejected_total", 'reason="oversized"')).toBe(oversizedBefore);
  });
});

describe("retain", () => {
  /**
   * What a new subscriber to the device's telemetry and status receives as retained: the status
   * (the protocol retains it) arrives first as a positive control, then a telemetry marker the
   * subscriber publishes itself; anything retained on telemetry was delivered before that marker.
   */
  async function retainedFor(device: EnrollResponse): Promise<{ status: string[]; telemetry: string[] }> {
    const client = await connectMqtt(server, device);
    const seen = { status: [] as string[], telemetry: [] as string[] };
    const marker = `marker-${Date.now()}-${Math.random()}`;
    let sawMarker!: () => void;
    const markerSeen = new Promise<void>((resolve) => (sawMarker = resolve));
    let sawStatus!: () => void;
    const statusSeen = new Promise<void>((resolve) => (sawStatus = resolve));
    client.on("message", (topic, payload, packet) => {
      const text = payload.toString("utf8");
      if (text.includes(marker)) return sawMarker();
      if (!packet.retain || payload.length === 0) return;
      if (topic === topics.status(device.deviceId)) {
        seen.status.push(text);
        sawStatus();
      } else if (topic === topics.telemetry(device.deviceId)) seen.telemetry.push(text);
    });
    await client.subscribeAsync([topics.telemetry(device.deviceId), topics.status(device.deviceId)], { qos: 1 });
    await statusSeen;
    // The marker is not valid telemetry (the server counts it as invalid); it only has to come back.
    await client.publishAsync(topics.telemetry(device.deviceId), JSON.stringify({ marker }), { qos: 1 });
    await markerSeen;
    await client.endAsync();
    return seen;
  }

  it("keeps no retained copy of a telemetry message published with retain, and keeps the retained status", async () => {
    const device = await connectMqtt(server, a);
    const status = JSON.stringify({ state: "offline", reason: "shutdown", ts: Date.now() });
    await device.publishAsync(topics.status(a.deviceId), status, { qos: 1, retain: true });
    const retainedTelemetry = telemetry();
    await device.publishAsync(topics.telemetry(a.deviceId), retainedTelemetry, { qos: 1, retain: true });
    await device.endAsync();

    // With Mosquitto the server clears the retained copy just after it was stored: wait for a subscriber that finds none.
    let last: { status: string[]; telemetry: string[] } | null = null;
    await waitFor(
      "a new subscriber to find no retained telemetry",
      async () => {
        last = await retainedFor(a);
        return last.telemetry.length === 0;
      },
      10_000,
    ).catch(() => undefined);
    expect(last!.telemetry, "a new subscriber received a retained copy of the device's telemetry").toEqual([]);
    expect(last!.status).toEqual([status]);
  });
});
