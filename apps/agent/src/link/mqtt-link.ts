/**
 * The device's MQTT link to the server's broker. Every topic, QoS and retain flag
 * comes from the contracts' TOPIC_MAP (`topicFor`, `publishOptions`) and every payload
 * is checked against the map's zod schema before it is sent (`encode`, `decode`); this
 * is the only module that talks to mqtt.js.
 *
 * Connection handling is the agent's own rather than mqtt.js's fixed-period
 * reconnect: one mqtt.js client per connection attempt, created with
 * `reconnectPeriod: 0`, and a new attempt after an exponential backoff with jitter
 * (1 s … 30 s). The backoff starts over after a connection that stayed up.
 *
 * On connect: subscribe to `cmd`, publish the retained `online` status, then hand
 * events and chat messages queued while offline to the broker. The last will is the
 * retained `offline`/`lost` status.
 *
 * Chat streams (`chat/{requestId}`): `tokens` and `progress` go at QoS 0 and are
 * dropped while disconnected (`done` repeats the whole answer); `accepted`, `done`
 * and `error` go at QoS 1 and are kept here until the broker acknowledges them,
 * across reconnects (mqtt.js's own queue lives and dies with one client). MQTT
 * orders messages only within one QoS (Aedes forwards a QoS 1 message after QoS 0
 * ones sent after it), so a request's later messages wait until its QoS 1 message
 * is acknowledged: the server sees `accepted` first and nothing after `done`.
 *
 * The clean-shutdown `offline` status waits (bounded) until every chat message and
 * event is acknowledged: the broker forwards a packet only after it handled the ones
 * acknowledged before it, so the server never sees `offline` before a chat's `done`.
 */
import { EventEmitter } from "node:events";
import {
  type ChatStreamMessage,
  type DeviceEvent,
  type DeviceStatus,
  MAX_DEVICE_PAYLOAD_BYTES,
  type QoS,
  type TelemetryMessage,
  decode,
  encode,
  publishOptions,
  topicFor,
} from "@orchard/contracts";
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from "mqtt";
import { MQTT_RECONNECT_BACKOFF, type BackoffOptions, backoffDelay } from "../lib/backoff.js";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { RingBuffer } from "../lib/ring-buffer.js";

export type ConnectionState = "connecting" | "connected" | "disconnected" | "stopped";

export interface ConnectionInfo {
  state: ConnectionState;
  since: number;
  lastConnectedAt: number | null;
  lastError: string | null;
  /** When the next connection attempt is due (while disconnected). */
  nextAttemptAt: number | null;
}

export interface MqttLinkOptions {
  url: string;
  username: string;
  password: string;
  /**
   * The passwords to try, in order, on each connection attempt (default: `password`). During a credential
   * rotation the agent holds its next password and the current one: a broker that refuses the first is asked
   * with the next right away, before any backoff.
   */
  passwords?: () => string[];
  /** Called with the password the broker accepted, on every connect. */
  onLoggedIn?: (password: string) => void;
  deviceId: string;
  /** CAs for an mqtts:// broker (lib/trust.ts); undefined: the system's. */
  ca?: string[];
  logger: Logger;
  /** The `online` status to publish (retained) on every connect and on `publishStatus()`. */
  onlineStatus: () => Extract<DeviceStatus, { state: "online" }>;
  backoff?: BackoffOptions;
  /** A connection that lasted this long resets the backoff. */
  stableAfterMs?: number;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  /** Events kept while offline; the oldest are dropped beyond this. */
  eventQueueSize?: number;
  /** Chat messages waiting (QoS 1 until acknowledged, QoS 0 behind them); beyond this QoS 0 ones are dropped, then the oldest. */
  chatQueueSize?: number;
  clock?: Clock;
  random?: () => number;
}

export interface MqttLinkEvents {
  connected: [];
  disconnected: [info: ConnectionInfo, reconnectInMs: number];
  /** A message on the device's `cmd` topic, unparsed: the command dispatcher validates it. */
  command: [payload: Buffer];
  /** Connection state changed (for the state file). */
  change: [info: ConnectionInfo];
}

interface ChatOutboxEntry {
  topic: string;
  payload: string;
  /** From TOPIC_MAP: per message type (0: a chunk, 1: kept until acknowledged); never retained. */
  qos: QoS;
  retain: boolean;
  /** QoS 1: the connection it was last sent on (null: not sent, or sending failed). */
  client: MqttClient | null;
}

export class MqttLink extends EventEmitter<MqttLinkEvents> {
  readonly #opts: MqttLinkOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #statusTopic: string;
  readonly #cmdTopic: string;
  #client: MqttClient | null = null;
  #attempt = 0;
  /** Which of passwords() this attempt uses; the password it used; whether the broker refused it. */
  #passwordIndex = 0;
  #password = "";
  #refused = false;
  #connectedAt: number | null = null;
  #timer: NodeJS.Timeout | null = null;
  #info: ConnectionInfo;
  #stopped = false;
  /** Set once the final offline status went out: no `online` may follow it. */
  #offlineSent = false;
  readonly #events: RingBuffer<DeviceEvent>;
  #draining = false;
  /** Chat messages not yet sent (QoS 0) or not yet acknowledged (QoS 1), oldest first. */
  #chatOutbox: ChatOutboxEntry[] = [];
  #chatDropped = 0;
  /** The connection whose online status went out: chat messages flow on it from then on. */
  #chatClient: MqttClient | null = null;
  /** drain() calls waiting for the queues to empty (or the connection to go). */
  #drainWaiters = new Set<() => void>();

  constructor(options: MqttLinkOptions) {
    super();
    this.#opts = options;
    this.#log = options.logger.child({ component: "mqtt" });
    this.#clock = options.clock ?? systemClock;
    this.#statusTopic = topicFor("status", options.deviceId);
    this.#cmdTopic = topicFor("cmd", options.deviceId);
    this.#events = new RingBuffer(options.eventQueueSize ?? 200);
    this.#info = { state: "disconnected", since: this.#clock.now(), lastConnectedAt: null, lastError: null, nextAttemptAt: null };
  }

  get connected(): boolean {
    return this.#client?.connected === true && this.#info.state === "connected";
  }

  info(): ConnectionInfo {
    return { ...this.#info };
  }

  /** Events waiting for a connection, and how many were dropped because too many waited. */
  eventQueue(): { queued: number; dropped: number } {
    return { queued: this.#events.size, dropped: this.#events.dropped };
  }

  start(): void {
    if (this.#client || this.#stopped) return;
    this.#connect();
  }

  #setInfo(patch: Partial<ConnectionInfo>): void {
    this.#info = { ...this.#info, ...patch };
    this.emit("change", this.info());
  }

  #connect(): void {
    const opts = this.#opts;
    const will = encode("status", { state: "offline", reason: "lost" });
    const passwords = opts.passwords?.() ?? [opts.password];
    this.#password = passwords[Math.min(this.#passwordIndex, passwords.length - 1)] ?? opts.password;
    this.#refused = false;
    const clientOptions: IClientOptions = {
      protocolVersion: 4, // MQTT 3.1.1: the embedded Aedes broker refuses MQTT 5
      clientId: opts.deviceId,
      clean: true,
      username: opts.username,
      password: this.#password,
      keepalive: opts.keepaliveSeconds ?? 30,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      reconnectPeriod: 0, // reconnects are scheduled here, with backoff
      queueQoSZero: false, // telemetry is buffered by the agent, not by mqtt.js
      resubscribe: false, // subscribed again on every connect below
      will: { topic: this.#statusTopic, payload: Buffer.from(will), ...publishOptions("status") },
      ...(opts.ca ? { ca: opts.ca } : {}),
    };
    this.#setInfo({ state: "connecting", since: this.#clock.now(), nextAttemptAt: null });
    this.#log.debug("connecting to broker", { url: opts.url, attempt: this.#attempt });
    const client = mqtt.connect(opts.url, clientOptions);
    this.#client = client;

    client.on("connect", () => this.#onConnect(client));
    client.on("message", (topic, payload) => {
      if (topic === this.#cmdTopic) this.emit("command", payload);
    });
    client.on("error", (error) => {
      if (client !== this.#client) return;
      this.#info.lastError = error.message;
      const refused = /Not authorized|Bad username or password|Connection refused: /i.test(error.message);
      this.#refused = refused;
      const another = refused && this.#passwordIndex + 1 < (opts.passwords?.().length ?? 1);
      if (another) this.#log.info("broker refused this password; trying the other one this device holds", { url: opts.url });
      else if (refused)
        this.#log.error("broker refused the connection (are this device's credentials still valid?)", { error, url: opts.url });
      else this.#log.debug("mqtt error", { error });
    });
    client.on("close", () => this.#onClose(client));
  }

  #onConnect(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#connectedAt = this.#clock.now();
    this.#passwordIndex = 0;
    this.#opts.onLoggedIn?.(this.#password);
    this.#setInfo({
      state: "connected",
      since: this.#connectedAt,
      lastConnectedAt: this.#connectedAt,
      lastError: null,
      nextAttemptAt: null,
    });
    this.#log.info("connected to broker", { url: this.#opts.url, deviceId: this.#opts.deviceId });
    client.subscribe(this.#cmdTopic, { qos: publishOptions("cmd").qos }, (error, granted) => {
      if (error) this.#log.error("could not subscribe to commands", { error, topic: this.#cmdTopic });
      else if (granted?.some((g) => g.qos === 128)) this.#log.error("broker refused the command subscription", { topic: this.#cmdTopic });
    });
    // Telemetry and events follow the online status, so a server never sees data from a
    // device whose status still says offline.
    void this.publishStatus().finally(() => {
      if (client !== this.#client || !this.connected) return;
      this.emit("connected");
      void this.#drainEvents();
      this.#chatClient = client;
      this.#drainChat();
    });
  }

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    this.#client = null;
    this.#notifyDrain(); // a drain() waiting for acknowledgements on this connection gives up
    client.removeAllListeners("close");
    client.on("error", () => undefined);
    client.end(true);
    const wasConnected = this.#connectedAt !== null;
    if (this.#connectedAt !== null && this.#clock.now() - this.#connectedAt >= (this.#opts.stableAfterMs ?? 30_000)) {
      this.#attempt = 0;
    }
    this.#connectedAt = null;
    if (this.#stopped) {
      this.#setInfo({ state: "stopped", since: this.#clock.now(), nextAttemptAt: null });
      return;
    }
    // Refused with one password while another is left (a rotation in progress): try it now, no backoff.
    if (this.#refused && !wasConnected && this.#passwordIndex + 1 < (this.#opts.passwords?.().length ?? 1)) {
      this.#passwordIndex += 1;
      this.#connect();
      return;
    }
    this.#passwordIndex = 0;
    const delay = backoffDelay(this.#attempt, this.#opts.backoff ?? MQTT_RECONNECT_BACKOFF, this.#opts.random);
    this.#attempt += 1;
    const now = this.#clock.now();
    this.#setInfo({ state: "disconnected", since: wasConnected ? now : this.#info.since, nextAttemptAt: now + delay });
    const fields = { reconnectInMs: delay, lastError: this.#info.lastError ?? undefined, url: this.#opts.url };
    if (wasConnected) this.#log.warn("disconnected from broker; reconnecting", fields);
    else this.#log.info("could not connect to broker; retrying", fields);
    this.emit("disconnected", this.info(), delay);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.#stopped) this.#connect();
    }, delay);
  }

  #publish(topic: string, payload: string, options: IClientPublishOptions): Promise<void> {
    const client = this.#client;
    if (!client || !this.connected) return Promise.reject(new Error("not connected to the broker"));
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, options, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Publishes the current `online` status (retained, QoS 1) if connected; the next connect publishes it anyway. */
  publishStatus(): Promise<void> {
    if (!this.connected || this.#offlineSent) return Promise.resolve();
    let payload: string;
    try {
      payload = encode("status", this.#opts.onlineStatus());
    } catch (error) {
      this.#log.error("status does not match the contract; not published", { error });
      return Promise.resolve();
    }
    return this.#publish(this.#statusTopic, payload, publishOptions("status")).catch((error: unknown) =>
      this.#log.debug("status publish failed; it is published again on reconnect", { error }),
    );
  }

  /** Queues an event (QoS 1); it is published now when connected, else after the next connect. */
  publishEvent(event: DeviceEvent): void {
    const parsed = decode("events", event);
    if (!parsed.success) {
      this.#log.error("event does not match the contract; dropped", { kind: event.kind, issue: parsed.error.issues[0]?.message });
      return;
    }
    if (this.#events.push(parsed.data))
      this.#log.warn("event queue full while offline: dropped the oldest event", { dropped: this.#events.dropped });
    void this.#drainEvents();
  }

  async #drainEvents(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      const topic = topicFor("events", this.#opts.deviceId);
      while (this.#events.size > 0 && this.connected) {
        const [event] = this.#events.peek(1);
        try {
          await this.#publish(topic, JSON.stringify(event), publishOptions("events"));
        } catch (error) {
          this.#log.debug("event publish failed; kept for the next connection", { error });
          return;
        }
        // Dropping an in-flight event while full is impossible here: only the head is ever in flight and
        // push() evicts the head only when the queue is full, so check it is still the same one.
        if (this.#events.peek(1)[0] === event) this.#events.discard(1);
      }
    } finally {
      this.#draining = false;
      this.#notifyDrain();
    }
  }

  /**
   * Publishes one message of a chat stream on `chat/{requestId}`, checked against the
   * contract, at the QoS TOPIC_MAP gives its type: QoS 0 for `tokens` and `progress` (dropped while disconnected, queued in the
   * moment between connecting and the online status being acknowledged); QoS 1 for
   * `accepted`, `done` and `error`, kept until acknowledged. Within one request the
   * order is kept: a message waits while an earlier QoS 1 message of it is unacknowledged.
   */
  publishChat(message: ChatStreamMessage): void {
    const parsed = decode("chat", message);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.#log.error("chat message does not match the contract; dropped", {
        type: message.type,
        requestId: message.requestId,
        issue: `${issue?.path.join(".")}: ${issue?.message}`,
      });
      return;
    }
    const topic = topicFor("chat", this.#opts.deviceId, parsed.data.requestId);
    const options = publishOptions("chat", parsed.data);
    const payload = JSON.stringify(parsed.data);
    if (Buffer.byteLength(payload) > MAX_DEVICE_PAYLOAD_BYTES) {
      this.#log.error("chat message larger than the broker accepts; dropped", { type: message.type, requestId: message.requestId });
      return;
    }
    const limit = this.#opts.chatQueueSize ?? 200;
    if (options.qos === 0) {
      // Dropped while disconnected. Connected but before the online status is
      // acknowledged (chat not ready yet), queued: #drainChat sends them when it is.
      if (!this.connected || this.#chatOutbox.length >= limit) {
        this.#chatDropped += 1;
        return;
      }
      const client = this.#chatReadyClient();
      if (client && !this.#chatOutbox.some((entry) => entry.topic === topic)) {
        client.publish(topic, payload, options, (error) => {
          if (error) this.#log.debug("chat chunk not sent", { error });
        });
        return;
      }
      this.#chatOutbox.push({ topic, payload, ...options, client: null });
      this.#drainChat();
      return;
    }
    this.#chatOutbox.push({ topic, payload, ...options, client: null });
    if (this.#chatOutbox.length > limit) {
      // Chunks first: the final messages matter more, and done repeats the text.
      const index = this.#chatOutbox.findIndex((entry) => entry.qos === 0);
      this.#chatOutbox.splice(index === -1 ? 0 : index, 1);
      this.#chatDropped += 1;
      this.#log.warn("chat queue full: dropped the oldest waiting chat message", { dropped: this.#chatDropped });
    }
    this.#drainChat();
  }

  /** Chat messages waiting (to be sent, or for an acknowledgement), and chat messages dropped. */
  chatQueue(): { queued: number; dropped: number } {
    return { queued: this.#chatOutbox.length, dropped: this.#chatDropped };
  }

  #chatReadyClient(): MqttClient | null {
    const client = this.#client;
    return client && this.connected && this.#chatClient === client ? client : null;
  }

  /**
   * Sends what may go now, in order: per request, everything up to and including its
   * first QoS 1 message that is not yet acknowledged (sent again on a new connection).
   */
  #drainChat(): void {
    const client = this.#chatReadyClient();
    if (!client) return;
    const blocked = new Set<string>();
    for (const entry of [...this.#chatOutbox]) {
      if (blocked.has(entry.topic)) continue;
      if (entry.qos === 0) {
        this.#chatOutbox.splice(this.#chatOutbox.indexOf(entry), 1);
        client.publish(entry.topic, entry.payload, { qos: entry.qos, retain: entry.retain }, (error) => {
          if (error) this.#log.debug("chat chunk not sent", { error });
        });
        continue;
      }
      blocked.add(entry.topic);
      if (entry.client === client) continue; // in flight
      entry.client = client;
      client.publish(entry.topic, entry.payload, { qos: entry.qos, retain: entry.retain }, (error) => {
        if (entry.client !== client) return; // resent on a newer connection meanwhile
        if (error) {
          entry.client = null; // sent again on the next drain or connection
          this.#log.debug("chat message not acknowledged; kept for the next connection", { error });
          return;
        }
        const index = this.#chatOutbox.indexOf(entry);
        if (index !== -1) this.#chatOutbox.splice(index, 1);
        this.#drainChat();
      });
    }
    this.#notifyDrain();
  }

  /** Nothing waits: every chat message handed to the broker (QoS 1 ones acknowledged), every event acknowledged. */
  #drained(): boolean {
    return this.#chatOutbox.length === 0 && this.#events.size === 0;
  }

  #notifyDrain(): void {
    if (this.#drainWaiters.size === 0 || (!this.#drained() && this.connected)) return;
    for (const wake of [...this.#drainWaiters]) wake();
  }

  /**
   * Waits until every queued chat message and event has been acknowledged by the broker
   * (QoS 0 chunks handed to the connection), at most `timeoutMs`. Resolves true when
   * drained; false on the timeout or when the connection is lost meanwhile (what is
   * left then waits for a connection that is not coming).
   */
  async drain(timeoutMs = 3_000): Promise<boolean> {
    if (this.#drained()) return true;
    if (!this.connected) return false;
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        wake = resolve;
        this.#drainWaiters.add(resolve);
        timer = setTimeout(resolve, timeoutMs);
        this.#drainChat();
        void this.#drainEvents();
      });
    } finally {
      clearTimeout(timer);
      if (wake) this.#drainWaiters.delete(wake);
    }
    return this.#drained();
  }

  /** Publishes one telemetry message at QoS 0; rejects when not connected. */
  publishTelemetry(message: TelemetryMessage): Promise<void> {
    return this.#publish(topicFor("telemetry", this.#opts.deviceId), encode("telemetry", message), publishOptions("telemetry"));
  }

  /**
   * The clean-shutdown status: retained `offline`/`shutdown`, sent once every queued chat
   * message and event is acknowledged (drain(), at most `drainMs`), then waiting for the
   * broker's acknowledgement (bounded by `timeoutMs`). After it, no `online` status is published again.
   */
  async publishOffline(timeoutMs = 3_000, drainMs = 3_000): Promise<boolean> {
    if (this.connected && !(await this.drain(drainMs))) {
      const left = { chat: this.#chatOutbox.length, events: this.#events.size };
      this.#log.warn("going offline with messages the broker has not acknowledged", left);
    }
    if (!this.connected) {
      this.#offlineSent = true;
      return false;
    }
    const payload = encode("status", { state: "offline", reason: "shutdown", ts: this.#clock.now() });
    this.#offlineSent = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.#publish(this.#statusTopic, payload, publishOptions("status")).then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Disconnects for good (a clean DISCONNECT, so the broker does not send the last will). */
  async stop(timeoutMs = 3_000): Promise<void> {
    this.#stopped = true;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const client = this.#client;
    if (!client) {
      this.#setInfo({ state: "stopped", since: this.#clock.now(), nextAttemptAt: null });
      return;
    }
    if (!client.connected) {
      // Nothing to say goodbye to; a DISCONNECT could only wait for a connection that is not there.
      client.end(true);
      this.#client = null;
      this.#setInfo({ state: "stopped", since: this.#clock.now(), nextAttemptAt: null });
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.endAsync(false).catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          client.end(true);
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.#client = null;
    this.#setInfo({ state: "stopped", since: this.#clock.now(), nextAttemptAt: null });
  }
}
