/**
 * A real MQTT broker in-process for the agent's tests: Aedes (the broker the server
 * embeds), on 127.0.0.1, with per-device credentials and the same subtree rules
 * the server enforces (contracts' deviceMayPublish / deviceMaySubscribe).
 * It can be stopped and started again on the same port to test reconnects.
 */
import net from "node:net";
import { deviceMayPublish, deviceMaySubscribe } from "@orchard/contracts";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";

export interface TestBrokerOptions {
  /** username → password; the username is the device id. */
  devices: Record<string, string>;
  port?: number;
}

/** The server's own account: may do anything. */
export const OBSERVER = { username: "orchard-server", password: "observer-password" };

export class TestBroker {
  broker: Aedes | null = null;
  server: net.Server | null = null;
  port = 0;
  readonly sockets = new Set<net.Socket>();
  /** Every message published through the broker (last wills included), across restarts. */
  readonly published: { topic: string; payload: unknown; retain: boolean; qos: number; clientId: string | null }[] = [];
  /** Connection attempts refused at authentication. */
  refused = 0;

  constructor(private readonly options: TestBrokerOptions) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const devices = this.options.devices;
    const broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        const ok =
          username !== undefined &&
          password !== undefined &&
          ((username === OBSERVER.username && password.toString() === OBSERVER.password) || devices[username] === password.toString());
        if (!ok) {
          this.refused += 1;
          done(Object.assign(new Error("bad credentials"), { returnCode: 4 as const }), false);
          return;
        }
        // Remembered for the authorisation hooks below.
        (client as unknown as { orchardUser?: string }).orchardUser = username;
        done(null, true);
      },
      authorizePublish: (client, packet, done) => {
        const user = (client as unknown as { orchardUser?: string } | null)?.orchardUser;
        if (user === OBSERVER.username || (user !== undefined && deviceMayPublish(user, packet.topic))) done(null);
        else done(new Error("publish outside the device's subtree"));
      },
      authorizeSubscribe: (client, sub, done) => {
        const user = (client as unknown as { orchardUser?: string }).orchardUser;
        if (user === OBSERVER.username || (user !== undefined && deviceMaySubscribe(user, sub.topic))) done(null, sub);
        else done(new Error("subscribe outside the device's subtree"));
      },
    });
    broker.on("publish", (packet, client) => {
      if (packet.topic.startsWith("$SYS")) return;
      let payload: unknown = packet.payload.toString();
      try {
        payload = JSON.parse(payload as string);
      } catch {
        // keep the text
      }
      this.published.push({ topic: packet.topic, payload, retain: packet.retain, qos: packet.qos, clientId: client?.id ?? null });
    });
    this.broker = broker;
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen(this.port || this.options.port || 0, "127.0.0.1", () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Cuts every connection without a DISCONNECT (as a network failure would) and stops listening. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await new Promise<void>((resolve) => (this.broker ? this.broker.close(() => resolve()) : resolve()));
    this.server = null;
    this.broker = null;
  }

  /** Payloads published on `topic` so far. */
  on(topic: string): unknown[] {
    return this.published.filter((m) => m.topic === topic).map((m) => m.payload);
  }

  /** Drops one client's connection abruptly (its last will is published). */
  dropClient(clientId: string): void {
    const clients = (this.broker as unknown as { clients: Record<string, { conn: net.Socket }> }).clients;
    clients[clientId]?.conn.destroy();
  }
}

/** A client that sees what the server would: every message, retained ones included. */
export class Observer {
  readonly messages: { topic: string; payload: unknown; retain: boolean }[] = [];
  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, filter: string): Promise<Observer> {
    const client = await mqtt.connectAsync(url, {
      ...OBSERVER,
      protocolVersion: 4,
      clientId: `observer-${Math.random().toString(16).slice(2)}`,
      reconnectPeriod: 0,
    });
    const observer = new Observer(client);
    client.on("message", (topic, payload, packet) => {
      let parsed: unknown = payload.toString();
      try {
        parsed = JSON.parse(payload.toString());
      } catch {
        // keep the text
      }
      observer.messages.push({ topic, payload: parsed, retain: packet.retain });
    });
    await client.subscribeAsync(filter, { qos: 1 });
    return observer;
  }

  /** Payloads published on `topic` so far. */
  on(topic: string): unknown[] {
    return this.messages.filter((m) => m.topic === topic).map((m) => m.payload);
  }

  async publish(topic: string, payload: unknown): Promise<void> {
    await this.client.publishAsync(topic, typeof payload === "string" ? payload : JSON.stringify(payload), { qos: 1 });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
