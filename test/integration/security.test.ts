/**
 * Access control across real process boundaries: the embedded broker refuses
 * wrong credentials and confines each device to its own subtree; the HTTP API,
 * pages, metrics and socket.io refuse requests without a session or API key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnrollResponse, MAX_DEVICE_PAYLOAD_BYTES, topics } from "@orchard/contracts";
import { appRouter } from "../../apps/web/src/server/trpc/root.ts";
import { connectMqtt, connectSocket, enrollDevice, login, removeDir, startServer, type TestServer, waitFor } from "../support/harness.ts";

let server: TestServer;
let a: EnrollResponse;
let b: EnrollResponse;

beforeAll(async () => {
  // Without ORCHARD_ALLOW_PRIVATE_MODEL_URLS (the harness sets it for tests that serve models from 127.0.0.1).
  server = await startServer({ env: { ORCHARD_ALLOW_PRIVATE_MODEL_URLS: "" } });
  a = await enrollDevice(server, "pi-a");
  b = await enrollDevice(server, "pi-b");
});

afterAll(async () => {
  await server?.stop();
  if (server) await removeDir(server.dataDir);
});

describe("broker", () => {
  it("refuses a wrong password, an unknown device and a borrowed client id", async () => {
    await expect(connectMqtt(server, { username: a.deviceId, password: "wrong", clientId: a.deviceId })).rejects.toThrow(
      /Bad username or password/,
    );
    await expect(connectMqtt(server, { username: "pi-nobody1", password: a.mqttPassword, clientId: "pi-nobody1" })).rejects.toThrow(
      /Bad username or password/,
    );
    // b's credentials may not take over a's session (client id).
    await expect(connectMqtt(server, { username: b.deviceId, password: b.mqttPassword, clientId: a.deviceId })).rejects.toThrow(
      /Bad username or password/,
    );
  });

  it("refuses a subscription to another device's subtree (SUBACK 0x80) and grants its own", async () => {
    const client = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    // mqtt.js reports a SUBACK containing 0x80 as an error that carries the packet.
    const suback = await client
      .subscribeAsync([topics.cmd(a.deviceId), topics.cmd(b.deviceId), "orchard/v1/devices/+/status", "#"], { qos: 1 })
      .then(
        () => null,
        (err: { packet?: { granted?: number[] } }) => err.packet,
      );
    expect(suback?.granted).toEqual([1, 128, 128, 128]);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it("drops a device that publishes into another device's subtree, and the message never arrives", async () => {
    const observer = await connectMqtt(server, { username: b.deviceId, password: b.mqttPassword, clientId: b.deviceId });
    const received: string[] = [];
    observer.on("message", (topic) => received.push(topic));
    await observer.subscribeAsync(`orchard/v1/devices/${b.deviceId}/#`, { qos: 1 });

    const intruder = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    const closed = new Promise<void>((resolve) => intruder.once("close", () => resolve()));
    intruder.publish(topics.status(b.deviceId), JSON.stringify({ state: "offline", reason: "shutdown" }), { qos: 0 });
    await closed;
    // A device may not send commands, not even to itself.
    const self = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    const selfClosed = new Promise<void>((resolve) => self.once("close", () => resolve()));
    self.publish(topics.cmd(b.deviceId), JSON.stringify({ type: "ping", id: "x", ts: 1 }));
    await selfClosed;
    intruder.end(true);
    self.end(true);

    // Its own subtree still works, and the server sees it.
    const ok = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    await ok.publishAsync(topics.status(a.deviceId), JSON.stringify({ state: "offline", reason: "shutdown", ts: Date.now() }), { qos: 1 });
    await ok.endAsync();
    expect(received).toEqual([]);
    await observer.endAsync();
  });

  it("counts malformed payloads from a device and keeps serving", async () => {
    const client = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    await client.publishAsync(topics.telemetry(a.deviceId), "{not json", { qos: 1 });
    await client.publishAsync(topics.telemetry(a.deviceId), JSON.stringify({ samples: [{ ts: 1, socTempC: 10_000 }] }), { qos: 1 });
    await client.endAsync();
    const metrics = async () => (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } })).text();
    await waitFor("rejections in /metrics", async () => {
      const text = await metrics();
      return (
        text.includes('orchard_mqtt_messages_rejected_total{reason="malformed"} 1') &&
        text.includes('orchard_mqtt_messages_rejected_total{reason="invalid"} 1')
      );
    });
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
  });

  it("drops a device that publishes an oversized payload, and the server stays healthy", async () => {
    const client = await connectMqtt(server, { username: a.deviceId, password: a.mqttPassword, clientId: a.deviceId });
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    client.publish(topics.telemetry(a.deviceId), Buffer.alloc(MAX_DEVICE_PAYLOAD_BYTES + 1, 0x41), { qos: 1 });
    await closed;
    client.end(true);
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
  });
});

describe("HTTP", () => {
  it("refuses every tRPC procedure but login without credentials", async () => {
    const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: string } }>).filter(
      ([p]) => p !== "auth.login",
    );
    expect(procedures.length).toBeGreaterThan(8);
    for (const [name, procedure] of procedures) {
      const res =
        procedure._def.type === "query"
          ? await fetch(`${server.url}/api/trpc/${name}`)
          : await fetch(`${server.url}/api/trpc/${name}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(res.status, name).toBe(401);
    }
    const withBadKey = await fetch(`${server.url}/api/trpc/devices.list`, { headers: { authorization: "Bearer not-a-key" } });
    expect(withBadKey.status).toBe(401);
    const withKey = await fetch(`${server.url}/api/trpc/devices.list`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    expect(withKey.status).toBe(200);
  });

  it("sends pages to the login page without a session, and serves them with one", async () => {
    for (const page of ["/", "/enroll", "/devices/pi-abc"]) {
      const res = await fetch(`${server.url}${page}`, { redirect: "manual" });
      expect(res.status, page).toBe(302);
      expect(res.headers.get("location")).toBe(`/login?next=${encodeURIComponent(page)}`);
    }
    expect((await fetch(`${server.url}/login`)).status).toBe(200);
    const cookie = await login(server);
    expect((await fetch(`${server.url}/`, { headers: { cookie }, redirect: "manual" })).status).toBe(200);
  });

  it("refuses a wrong password with a plain message", async () => {
    await expect(login(server, "wrong-password")).rejects.toThrow(/401.*Wrong username or password/);
  });

  it("needs credentials for /metrics and socket.io, not for /api/health", async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect(await (await fetch(`${server.url}/api/health`)).json()).toMatchObject({ status: "ok", db: "ok", broker: "ok" });
    await expect(connectSocket(server, null)).rejects.toThrow(/unauthorized/);
    const socket = await connectSocket(server, await login(server));
    expect(socket.connected).toBe(true);
    socket.disconnect();
  });

  it("refuses a reused token and a malformed enrollment with messages an operator understands", async () => {
    const { token } = await server.client.enrollment.create.mutate({ ttlMinutes: 5 });
    const body = JSON.stringify({ token, hostname: "pi-c", arch: "arm64", agentVersion: "test" });
    const enroll = (b: string) =>
      fetch(`${server.url}/api/enroll`, { method: "POST", headers: { "content-type": "application/json" }, body: b });
    expect((await enroll(body)).status).toBe(201);
    const reused = await enroll(body);
    expect(reused.status).toBe(410);
    expect((await reused.json()).error.message).toMatch(/already used .* create a new one/);
    const unknown = await enroll(JSON.stringify({ token: "oet_not_a_real_token", hostname: "x", arch: "", agentVersion: "" }));
    expect(unknown.status).toBe(401);
    const bad = await enroll("{oops");
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toBe("Request body is not valid JSON.");
  });
});

describe("model downloads from a URL", () => {
  const register = (sourceUrl: string) =>
    fetch(`${server.url}/api/uploads`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${server.apiKey}` },
      body: JSON.stringify({ name: "model.gguf", sourceUrl, sha256: "a".repeat(64) }),
    });

  // Nothing here is contacted: each is refused before the server connects anywhere.
  it("refuses loopback, private, link-local and unique-local addresses, names that resolve to them, and other schemes", async () => {
    const before = (await server.client.artifacts.uploads.query()).length;
    const privateUrls = [
      "http://127.0.0.1:9/model.gguf",
      "http://[::1]:9/model.gguf",
      "http://localhost:9/model.gguf",
      "http://10.1.2.3/model.gguf",
      "http://172.16.0.1/model.gguf",
      "http://192.168.1.20/model.gguf",
      "http://169.254.169.254/latest/meta-data",
      "http://[fc00::1]/model.gguf",
      "http://[fd12:3456::1]/model.gguf",
      "http://[fe80::1]/model.gguf",
      "http://[::ffff:127.0.0.1]/model.gguf",
      "http://2130706433/model.gguf",
      "http://0.0.0.0/model.gguf",
      "https://127.1/model.gguf",
    ];
    for (const url of privateUrls) {
      const res = await register(url);
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message, url).toMatch(
        /loopback, private or link-local address.*ORCHARD_ALLOW_PRIVATE_MODEL_URLS=1/,
      );
    }
    for (const url of ["file:///etc/passwd", "ftp://127.0.0.1/model.gguf", "gopher://127.0.0.1/x"]) {
      const res = await register(url);
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as { error: { message: string } }).error.message, url).toMatch(/http:\/\/ or https:\/\/ URL/);
    }
    expect((await server.client.artifacts.uploads.query()).length).toBe(before); // nothing was registered
  });
});

describe("enrollment input and device names", () => {
  const enroll = (body: Record<string, string>) =>
    fetch(`${server.url}/api/enroll`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const token = async (deviceName?: string) => (await server.client.enrollment.create.mutate({ ttlMinutes: 5, deviceName })).token;

  it("refuses a NUL or another control character in any field with a 400 that names the field", async () => {
    const t = await token();
    const good = { token: t, hostname: "pi-ok", arch: "arm64", agentVersion: "test" };
    for (const field of ["hostname", "arch", "agentVersion"] as const) {
      for (const bad of ["pi\u0000x", "pi\nx"]) {
        const res = await enroll({ ...good, [field]: bad });
        expect(res.status, `${field} ${JSON.stringify(bad)}`).toBe(400);
        expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(
          new RegExp(`^Invalid enrollment request: ${field} .*control character`),
        );
      }
    }
    // The token was not used up by the refusals.
    const res = await enroll(good);
    expect(res.status).toBe(201);
    const { deviceId } = EnrollResponse.parse(await res.json());
    await server.client.devices.remove.mutate({ id: deviceId });
    // Nor may the dashboard put one into a name.
    await expect(server.client.enrollment.create.mutate({ ttlMinutes: 5, deviceName: "kit\u0000chen" })).rejects.toThrow(
      /control character/,
    );
    await expect(server.client.devices.rename.mutate({ id: a.deviceId, name: "pi\u0000a" })).rejects.toThrow(/control character/);
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
  });

  it("keeps device names unique: an enrollment with a taken name gets a suffix, a rename to a taken name or an id is refused", async () => {
    const enrolled = async (hostname: string, deviceName?: string) => {
      const res = await enroll({ token: await token(deviceName), hostname, arch: "arm64", agentVersion: "test" });
      expect(res.status).toBe(201);
      return EnrollResponse.parse(await res.json());
    };
    const first = await enrolled("dup-pi");
    const second = await enrolled("dup-pi");
    const third = await enrolled("other-host", "dup-pi");
    const upper = await enrolled("DUP-PI");
    expect([first.name, second.name, third.name, upper.name]).toEqual(["dup-pi", "dup-pi-2", "dup-pi-3", "DUP-PI-4"]);
    // A hostname that is another device's id.
    const shadow = await enrolled(a.deviceId);
    expect(shadow.name).toBe(`${a.deviceId}-2`);
    const names = (await server.client.devices.list.query()).map((d) => d.name.toLowerCase());
    expect(new Set(names).size).toBe(names.length);

    await expect(server.client.devices.rename.mutate({ id: second.deviceId, name: "dup-pi" })).rejects.toThrow(
      'Another device is already named "dup-pi"; choose another name.',
    );
    await expect(server.client.devices.rename.mutate({ id: second.deviceId, name: "Dup-Pi" })).rejects.toThrow(
      'Another device is already named "dup-pi"; choose another name.',
    );
    await expect(server.client.devices.rename.mutate({ id: second.deviceId, name: b.deviceId })).rejects.toThrow(
      `"${b.deviceId}" is another device's id; choose another name.`,
    );
    // Its own name in other letters, and a free name, are fine.
    await server.client.devices.rename.mutate({ id: first.deviceId, name: "Dup-Pi" });
    await server.client.devices.rename.mutate({ id: second.deviceId, name: "dup-pi-renamed" });
    expect((await server.client.devices.get.query({ id: second.deviceId })).name).toBe("dup-pi-renamed");
    for (const d of [first, second, third, upper, shadow]) await server.client.devices.remove.mutate({ id: d.deviceId });
  });
});
