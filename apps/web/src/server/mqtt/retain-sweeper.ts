/**
 * Retained messages where the protocol retains none, on an external broker. Mosquitto's access
 * lists cannot allow the retain flag on a device's status and refuse it on its telemetry, events
 * and chat (dynamic security ignores the flag), so a device could leave a retained message on
 * each of those topics (and one per chat request id). The embedded broker clears the flag itself
 * (broker.ts); with MQTT_URL this second server connection does it afterwards: MQTT 5, subscribed
 * to every device's telemetry, events and chat with retain-as-published, so it sees the retain
 * flag of each message as the device sent it, and of those already retained when it subscribes.
 * For each one it publishes an empty retained payload on the topic, which removes the copy. The
 * message itself was delivered as usual (the server's link ingests it once); an empty payload is
 * nothing to the ingestor.
 */
import mqtt, { type MqttClient } from "mqtt";
import { DEVICE_TOPIC_KINDS, TOPIC_MAP, isRetainedByProtocol, parseTopic, topicFilter } from "@orchard/contracts";
import { throttled, type Logger } from "../log.ts";

export interface RetainSweeper {
  /** Retained copies cleared since the start. */
  cleared(): number;
  close(): Promise<void>;
}

/** Starts sweeping in the background; never throws (a broker it cannot reach is logged and retried). */
export function startRetainSweeper(opts: {
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  log: Logger;
}): RetainSweeper {
  const { log } = opts;
  const warnOnce = throttled(60_000);
  let cleared = 0;
  const client: MqttClient = mqtt.connect(opts.url, {
    clientId: opts.clientId,
    username: opts.username,
    password: opts.password,
    protocolVersion: 5,
    clean: true,
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
  });
  // Every device→server kind TOPIC_MAP does not retain (telemetry, events, chat).
  const filters = DEVICE_TOPIC_KINDS.filter((k) => TOPIC_MAP[k].direction === "device→server" && !TOPIC_MAP[k].retain).map((k) =>
    topicFilter(k),
  );
  client.on("connect", () => {
    client.subscribe(filters, { qos: 0, rap: true }, (err, granted) => {
      if (err || granted?.some((g) => g.qos >= 128)) {
        log.error("cannot watch device topics for retained messages (does the server's broker account read them?)", {
          error: err?.message,
        });
      }
    });
  });
  client.on("message", (topic, payload, packet) => {
    // An empty payload is a clear (ours, or the broker delivering one); status is retained by protocol.
    if (!packet.retain || payload.length === 0 || isRetainedByProtocol(topic)) return;
    const device = parseTopic(topic)?.deviceId ?? null;
    client.publish(topic, Buffer.alloc(0), { qos: 1, retain: true }, (err) => {
      if (err) {
        warnOnce(`clear-failed:${device}`, () =>
          log.error("could not clear a retained message a device left (the server's broker account needs publish on device topics)", {
            topic,
            error: err.message,
          }),
        );
        return;
      }
      cleared++;
      warnOnce(`cleared:${device}`, () =>
        log.warn("cleared a retained message on a topic the protocol does not retain", { device, topic, bytes: payload.length }),
      );
    });
  });
  client.on("error", (err) =>
    warnOnce("error", () => log.warn("the retained-message sweeper's MQTT connection failed; retrying", { error: err.message })),
  );
  return {
    cleared: () => cleared,
    close: () => client.endAsync(),
  };
}
