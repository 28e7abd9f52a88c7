/**
 * Device accounts on both brokers the server supports, with one test body: the
 * embedded Aedes broker (credentials checked against the server's device records)
 * and a real Mosquitto 2 run from the shipped config, provisioned through its
 * dynamic security plugin. A device reaches only its own subtree; deleting it
 * cuts its live connection and refuses it afterwards; a new password replaces
 * the old one. Also the dynamic-security client's own failures.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { topics } from "@orchard/contracts";
import { DynsecAccounts, deviceRole, embeddedAccounts, type BrokerAccounts } from "../../apps/web/src/server/mqtt/accounts.ts";
import { startEmbeddedBroker } from "../../apps/web/src/server/mqtt/broker.ts";
import { DynsecClient, DynsecError } from "../../apps/web/src/server/mqtt/dynsec.ts";
import { createLogger } from "../../apps/web/src/server/log.ts";
import { freePort, waitFor } from "../support/harness.ts";
import { SHIPPED_CONF, mosquittoMissing, startMosquitto, type TestMosquitto } from "../support/mosquitto.ts";

const log = createLogger("error");
const missing = mosquittoMissing();
if (missing && process.env.CI) throw new Error(`Mosquitto is required in CI: ${missing}`);
if (missing) console.warn(`skipping the Mosquitto half of broker-accounts.test.ts: ${missing}`);

interface BrokerFixture {
  url: string;
  server: { username: string; password: string };
  accounts: BrokerAccounts;
  /** What enrollment does: the device's record, then its broker account. */
  provision(id: string, password: string): Promise<void>;
  /** What deletion does: the record goes, then the account. */
  remove(id: string): Promise<void>;
  /** What a completed rotation does. */
  setPassword(id: string, password: string): Promise<void>;
  close(): Promise<void>;
}

async function embeddedFixture(): Promise<BrokerFixture> {
  const records = new Map<string, string>(); // the server's device records (id → password)
  const server = { username: "orchard-server", password: randomBytes(12).toString("hex") };
  const broker = await startEmbeddedBroker({
    host: "127.0.0.1",
    port: 0,
    auth: { serverUsername: server.username, serverPassword: server.password, verifyDevice: (id, pw) => records.get(id) === pw },
    log,
  });
  const accounts = embeddedAccounts(broker);
  return {
    url: `mqtt://127.0.0.1:${broker.port}`,
    server,
    accounts,
    provision: async (id, pw) => {
      records.set(id, pw);
      await accounts.provisionDevice(id, pw);
    },
    remove: async (id) => {
      records.delete(id);
      await accounts.removeDevice(id);
    },
    setPassword: async (id, pw) => {
      records.set(id, pw);
      await accounts.setDevicePassword(id, pw);
    },
    close: () => broker.close(),
  };
}

async function mosquittoFixture(mosquitto: TestMosquitto): Promise<BrokerFixture> {
  const accounts = await DynsecAccounts.connect({ url: mosquitto.url, ...mosquitto.admin }, log);
  const server = { username: `orchard-server-${randomBytes(3).toString("hex")}`, password: randomBytes(12).toString("hex") };
  expect(await accounts.ensureServerAccount(server.username, server.password)).toBe("created");
  expect(await accounts.ensureServerAccount(server.username, server.password)).toBe("exists");
  return {
    url: mosquitto.url,
    server,
    accounts,
    provision: (id, pw) => accounts.provisionDevice(id, pw),
    remove: (id) => accounts.removeDevice(id),
    setPassword: (id, pw) => accounts.setDevicePassword(id, pw),
    close: () => accounts.close(),
  };
}

/** Connects like the agent does (client id = username = device id); rejects with the broker's refusal. */
async function connect(url: string, username: string, password: string, clientId = username): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
  return client;
}

/** The QoS the broker granted a subscription (128: refused; mqtt.js reports that as an error). */
async function grantedQos(client: MqttClient, filter: string): Promise<number> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0]!.qos;
  } catch (err) {
    if (/Subscribe error/.test((err as Error).message)) return 128;
    throw err;
  }
}

function closed(client: MqttClient): Promise<void> {
  return new Promise((resolve) => (client.connected ? client.once("close", () => resolve()) : resolve()));
}

const id = () => `pi-${randomBytes(5).toString("hex")}`;
const pw = () => randomBytes(24).toString("base64url");

const modes: ["embedded" | "mosquitto"][] = [["embedded"], ["mosquitto"]];

describe.each(modes)("device accounts on the %s broker", (mode) => {
  let mosquitto: TestMosquitto | null = null;
  let broker: BrokerFixture;
  let server: MqttClient;
  const received: { topic: string; payload: string }[] = [];
  const open: MqttClient[] = [];
  const skip = mode === "mosquitto" && missing !== null;

  beforeAll(async () => {
    if (skip) return;
    if (mode === "mosquitto") mosquitto = await startMosquitto();
    broker = mode === "embedded" ? await embeddedFixture() : await mosquittoFixture(mosquitto!);
    server = await connect(broker.url, broker.server.username, broker.server.password, `srv-${randomBytes(3).toString("hex")}`);
    server.on("message", (topic, payload) => received.push({ topic, payload: payload.toString() }));
    await server.subscribeAsync(
      [topics.allDevices("status"), topics.allDevices("telemetry"), topics.allDevices("events"), topics.allChat()],
      {
        qos: 1,
      },
    );
  });

  afterAll(async () => {
    for (const c of open) c.end(true);
    await server?.endAsync();
    await broker?.close();
    await mosquitto?.stop();
  });

  async function device(): Promise<{ id: string; password: string; client: MqttClient }> {
    const d = { id: id(), password: pw() };
    await broker.provision(d.id, d.password);
    const client = await connect(broker.url, d.id, d.password);
    open.push(client);
    return { ...d, client };
  }

  /** Waits until the server got `payload` on `topic` (a sentinel: whatever was forwarded before it has arrived too). */
  const serverGot = (topic: string, payload: string) =>
    waitFor(`the server to receive ${payload} on ${topic}`, () => received.some((m) => m.topic === topic && m.payload === payload));

  it.skipIf(skip)("lets a device publish on its own up topics and read its own commands", async () => {
    const a = await device();
    for (const topic of [topics.status(a.id), topics.telemetry(a.id), topics.events(a.id), topics.chat(a.id, "req-1")]) {
      await a.client.publishAsync(topic, `hello ${topic}`, { qos: 1 });
      await serverGot(topic, `hello ${topic}`);
    }
    const granted = await a.client.subscribeAsync(topics.cmd(a.id), { qos: 1 });
    expect(granted[0]!.qos).toBe(1);
    const got = new Promise<string>((resolve) => a.client.once("message", (_t, p) => resolve(p.toString())));
    await server.publishAsync(topics.cmd(a.id), "do-it", { qos: 1 });
    expect(await got).toBe("do-it");
  });

  it.skipIf(skip)("refuses a device's publish outside its own subtree and on its own command topic", async () => {
    const a = await device();
    const b = await device();
    const forged = [
      topics.status(b.id),
      topics.events(b.id),
      topics.chat(b.id, "req-1"),
      topics.cmd(b.id),
      topics.cmd(a.id),
      "elsewhere/x",
    ];
    for (const topic of forged) {
      const attacker = await connect(broker.url, a.id, a.password);
      attacker.publish(topic, `forged ${topic}`, { qos: 0 });
      // Settled once the broker has handled it: either it dropped the connection (Aedes) or it acknowledged a later message.
      await Promise.race([closed(attacker), attacker.publishAsync(topics.telemetry(a.id), "after", { qos: 1 })]);
      attacker.end(true);
    }
    // b's own message comes after every forged one; once the server has it, nothing forged was forwarded.
    const sentinel = `sentinel-${randomBytes(4).toString("hex")}`;
    await b.client.publishAsync(topics.events(b.id), sentinel, { qos: 1 });
    await serverGot(topics.events(b.id), sentinel);
    expect(received.filter((m) => m.payload.startsWith("forged"))).toEqual([]);
  });

  it.skipIf(skip)("refuses a device's subscription to another device's commands or chat, or to wildcards across devices", async () => {
    const a = await device();
    const b = await device();
    const filters = [
      topics.cmd(b.id),
      topics.deviceSubtree(b.id),
      `orchard/v1/devices/${b.id}/chat/+`,
      "orchard/v1/devices/+/cmd",
      "orchard/v1/devices/+/chat/+",
      "#",
    ];
    for (const filter of filters) expect(await grantedQos(a.client, filter), filter).toBe(128);
    expect(a.client.connected).toBe(true);
    // And nothing for b reaches a: a's own command, sent after b's, arrives alone.
    expect((await a.client.subscribeAsync(topics.cmd(a.id), { qos: 1 }))[0]!.qos).toBe(1);
    const messages: string[] = [];
    a.client.on("message", (topic) => messages.push(topic));
    await server.publishAsync(topics.cmd(b.id), "for b", { qos: 1 });
    await server.publishAsync(topics.cmd(a.id), "for a", { qos: 1 });
    await waitFor("a's own command", () => messages.includes(topics.cmd(a.id)));
    expect(messages).toEqual([topics.cmd(a.id)]);
  });

  it.skipIf(skip)("refuses a device that logs in under another client id, or with another device's password", async () => {
    const a = await device();
    const b = await device();
    await expect(connect(broker.url, a.id, a.password, b.id)).rejects.toThrow(/not authori[sz]ed|bad user/i);
    await expect(connect(broker.url, a.id, b.password)).rejects.toThrow(/not authori[sz]ed|bad user/i);
    await expect(connect(broker.url, "nobody-here", "x".repeat(20))).rejects.toThrow(/not authori[sz]ed|bad user/i);
  });

  it.skipIf(skip)("cuts a deleted device's live connection at once and refuses it afterwards", async () => {
    const a = await device();
    const gone = closed(a.client);
    await broker.remove(a.id);
    await gone;
    await expect(connect(broker.url, a.id, a.password)).rejects.toThrow(/not authori[sz]ed|bad user/i);
    // Removing it again is harmless (a retried deletion, or reconcile after a crash).
    await broker.accounts.removeDevice(a.id);
  });

  it.skipIf(skip)("replaces a device's password: the live connection is cut, the new one works, the old one is refused", async () => {
    const a = await device();
    const next = pw();
    const gone = closed(a.client);
    await broker.setPassword(a.id, next);
    await gone;
    const again = await connect(broker.url, a.id, next);
    open.push(again);
    await expect(connect(broker.url, a.id, a.password)).rejects.toThrow(/not authori[sz]ed|bad user/i);
    // Provisioning an existing device again is an update, not an error.
    const third = pw();
    await broker.provision(a.id, third);
    open.push(await connect(broker.url, a.id, third));
  });
});

describe.skipIf(missing !== null)("the dynamic-security client and reconcile on a real Mosquitto", () => {
  let mosquitto: TestMosquitto;
  beforeAll(async () => {
    mosquitto = await startMosquitto();
  });
  afterAll(async () => {
    await mosquitto?.stop();
  });

  it("runs the shipped config with only its ports and paths changed", async () => {
    const shipped = await readFile(SHIPPED_CONF, "utf8");
    const a = shipped.split("\n");
    const b = mosquitto.conf.split("\n");
    expect(b.length).toBe(a.length);
    const changed = a.flatMap((line, i) => (line === b[i] ? [] : [line.trim().split(/\s+/)[0]]));
    const adaptable = ["listener", "plugin", "plugin_opt_config_file", "persistence_location", "cafile", "certfile", "keyfile"];
    expect(changed.filter((d) => !adaptable.includes(d!))).toEqual([]);
    expect(changed.filter((d) => d === "listener")).toHaveLength(2);
    expect(b).toContain("allow_anonymous false");
    expect(b).toContain("persistence true");
  });

  it("refuses anonymous clients, and serves devices over TLS with the lab CA", async () => {
    await expect(connect(mosquitto.url, "", "")).rejects.toThrow(/not authori[sz]ed|bad user/i);
    const accounts = await DynsecAccounts.connect({ url: mosquitto.url, ...mosquitto.admin }, log);
    const d = { id: id(), password: pw() };
    await accounts.provisionDevice(d.id, d.password);
    const ca = await readFile(mosquitto.caFile);
    const tls = mqtt.connect(mosquitto.tlsUrl, {
      clientId: d.id,
      username: d.id,
      password: d.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      ca,
    });
    await new Promise<void>((resolve, reject) => {
      tls.once("connect", () => resolve());
      tls.once("error", reject);
    });
    expect((await tls.subscribeAsync(topics.cmd(d.id), { qos: 1 }))[0]!.qos).toBe(1);
    await tls.endAsync();
    // Without the CA the certificate is not trusted.
    const untrusted = mqtt.connect(mosquitto.tlsUrl, { clientId: d.id, username: d.id, password: d.password, reconnectPeriod: 0 });
    await expect(
      new Promise((resolve, reject) => {
        untrusted.once("connect", resolve);
        untrusted.once("error", reject);
      }),
    ).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    untrusted.end(true);
    await accounts.close();
  });

  it("says clearly when the admin password is wrong", async () => {
    await expect(
      DynsecClient.connect({ url: mosquitto.url, username: mosquitto.admin.username, password: "wrong-password" }),
    ).rejects.toThrow(/refused the dynamic-security admin "admin": check MQTT_DYNSEC_USERNAME/);
  });

  it("reports the plugin's refusals as DynsecError with its reason", async () => {
    const client = await DynsecClient.connect({ url: mosquitto.url, ...mosquitto.admin });
    try {
      const err = await client.setClientPassword("no-such-device", "x".repeat(20)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DynsecError);
      expect((err as DynsecError).reason).toBe("Client not found");
      expect((err as Error).message).toBe("Mosquitto dynamic security refused setClientPassword: Client not found");
      expect(await client.getClient("no-such-device")).toBeNull();
    } finally {
      await client.close();
    }
  });

  it("reconciles at start: roles for the database's devices, missing accounts reported, deleted devices' accounts removed", async () => {
    const accounts = await DynsecAccounts.connect({ url: mosquitto.url, ...mosquitto.admin }, log);
    const admin = await DynsecClient.connect({ url: mosquitto.url, ...mosquitto.admin });
    try {
      const kept = { id: id(), password: pw() };
      const deleted = { id: id(), password: pw() };
      const lost = id(); // in the database, but its account was removed from the broker by hand
      await accounts.provisionDevice(kept.id, kept.password);
      await accounts.provisionDevice(deleted.id, deleted.password);
      await accounts.provisionDevice(lost, pw());
      await admin.deleteClient(lost);
      await admin.deleteRole(deviceRole(lost));
      // Someone else's account on the same broker is never touched.
      await admin.createClient({ username: "someone-else", password: pw(), roles: [] });

      const report = await accounts.reconcile([kept.id, lost]);
      expect(report.rolesCreated).toBe(1);
      expect(report.missing).toEqual([lost]);
      expect(report.removed).toContain(deleted.id); // (and the other tests' devices, which are not in this "database")
      expect(report.removed).not.toContain(kept.id);
      expect(await admin.getClient(deleted.id)).toBeNull();
      expect(await admin.getRoleAcls(deviceRole(deleted.id))).toBeNull();
      expect(await admin.getRoleAcls(deviceRole(lost))).not.toBeNull();
      expect(await admin.getClient("someone-else")).not.toBeNull();
      const c = await connect(mosquitto.url, kept.id, kept.password);
      await c.endAsync();
      // A second run finds nothing to do.
      expect(await accounts.reconcile([kept.id, lost])).toEqual({ rolesCreated: 0, missing: [lost], removed: [] });
    } finally {
      await admin.close();
      await accounts.close();
    }
  });
});

describe("the dynamic-security client against a broker without the plugin", () => {
  it("times out with a sentence that names the plugin", async () => {
    const broker = await Aedes.createBroker();
    const srv = net.createServer(broker.handle);
    const port = await freePort();
    await new Promise<void>((resolve) => srv.listen(port, "127.0.0.1", () => resolve()));
    const client = await DynsecClient.connect({ url: `mqtt://127.0.0.1:${port}`, username: "admin", password: "pw", timeoutMs: 300 });
    try {
      await expect(client.listClients()).rejects.toThrow(
        /Mosquitto did not answer listClients within 300 ms: is the dynamic security plugin loaded/,
      );
    } finally {
      await client.close();
      await new Promise<void>((resolve) => broker.close(() => srv.close(() => resolve())));
    }
  });

  it("says when the broker cannot be reached", async () => {
    const port = await freePort();
    await expect(
      DynsecClient.connect({ url: `mqtt://127.0.0.1:${port}`, username: "admin", password: "pw", connectTimeoutMs: 2000 }),
    ).rejects.toThrow(new RegExp(`cannot connect to the MQTT broker at mqtt://127.0.0.1:${port}`));
  });
});
