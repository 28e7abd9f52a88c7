/**
 * The server's own MQTT connection, to the embedded broker or to MQTT_URL. It
 * subscribes to every device's status, telemetry, events and chat topics and hands
 * each message to the ingestor; it publishes commands to one device at a time.
 * Topics, QoS and retain flags come from the contracts' TOPIC_MAP.
 */
import mqtt, { type MqttClient } from "mqtt";
import { MAX_DEVICE_PAYLOAD_BYTES, SERVER_SUBSCRIPTIONS, publishOptions, topicFor, type DeviceCommand } from "@orchard/contracts";
import type { Logger } from "../log.ts";

export interface ServerLink {
  connected(): boolean;
  publishCommand(deviceId: string, command: DeviceCommand): Promise<void>;
  /** Clears a device's retained status (after it is deleted). */
  clearRetained(deviceId: string): Promise<void>;
  close(): Promise<void>;
}

export async function connectServerLink(opts: {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  onMessage: (topic: string, payload: Buffer) => void;
  log: Logger;
}): Promise<ServerLink> {
  const { log } = opts;
  const client: MqttClient = mqtt.connect(opts.url, {
    clientId: opts.clientId,
    username: opts.username,
    password: opts.password,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
  });
  // Every device's up topics (TOPIC_MAP's device→server kinds). Subscribed at QoS 1, the highest any of them is
  // published with: each message then arrives at the QoS its sender chose.
  const subscriptions = [...SERVER_SUBSCRIPTIONS];

  client.on("message", (topic, payload) => {
    try {
      opts.onMessage(topic, payload);
    } catch (err) {
      log.error("handling an MQTT message failed", { topic, error: (err as Error).message });
    }
  });
  client.on("connect", () => {
    client.subscribe(subscriptions, { qos: 1 }, (err) => {
      if (err) log.error("subscribing to device topics failed", { error: err.message });
    });
  });
  client.on("offline", () => log.warn("lost the connection to the MQTT broker; reconnecting"));
  client.on("error", (err) => log.error("MQTT client error", { error: err.message }));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      client.end(true);
      reject(new Error(`cannot connect to the MQTT broker at ${redact(opts.url)}: ${err.message}`));
    };
    client.once("connect", () => {
      client.off("error", onError);
      resolve();
    });
    client.once("error", onError);
  });

  return {
    connected: () => client.connected,
    publishCommand: async (deviceId, command) => {
      const payload = JSON.stringify(command);
      // The broker would drop the server's own connection for a packet over its limit, and the agent ignores
      // commands over MAX_DEVICE_PAYLOAD_BYTES: refuse here, before anything is sent.
      const bytes = Buffer.byteLength(payload);
      if (bytes > MAX_DEVICE_PAYLOAD_BYTES) {
        throw new Error(`the ${command.type} command is ${bytes} bytes, over the ${MAX_DEVICE_PAYLOAD_BYTES} a device accepts; not sent`);
      }
      await client.publishAsync(topicFor("cmd", deviceId), payload, publishOptions("cmd"));
    },
    clearRetained: async (deviceId) => {
      await client.publishAsync(topicFor("status", deviceId), Buffer.alloc(0), publishOptions("status"));
    },
    close: () => client.endAsync(),
  };
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
