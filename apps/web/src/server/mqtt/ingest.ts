/**
 * Turns raw MQTT messages from devices into fleet updates. Every message is
 * size-checked, parsed and validated against the contracts before it can touch
 * state; anything else is dropped and counted by reason, never thrown.
 */
import { ChatStreamMessage, DeviceEvent, DeviceStatus, MAX_DEVICE_PAYLOAD_BYTES, TelemetryMessage, parseTopic } from "@orchard/contracts";
import { throttled, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { ChatRelay } from "../services/chat-relay.ts";
import type { FleetService } from "../services/fleet.ts";

export type RejectReason = "oversized" | "malformed" | "invalid" | "unknown_topic" | "unknown_device";

export type IngestResult = { ok: true } | { ok: false; reason: RejectReason; detail: string };

export function createIngestor(deps: { fleet: FleetService; chat: Pick<ChatRelay, "handle">; metrics: Metrics; log: Logger }) {
  const { fleet, chat, metrics, log } = deps;
  const warnOnce = throttled(60_000);

  const reject = (deviceId: string | null, reason: RejectReason, detail: string): IngestResult => {
    metrics.mqttRejected.inc({ reason });
    warnOnce(`${deviceId}:${reason}`, () =>
      log.warn("dropped an MQTT message", { device: deviceId, reason, detail: detail.slice(0, 300) }),
    );
    return { ok: false, reason, detail };
  };

  return function ingest(topic: string, payload: Buffer): IngestResult {
    const parsed = parseTopic(topic);
    if (!parsed || parsed.kind === "cmd") return reject(null, "unknown_topic", topic);
    const { deviceId } = parsed;
    if (!fleet.has(deviceId)) return reject(deviceId, "unknown_device", topic);
    if (payload.length > MAX_DEVICE_PAYLOAD_BYTES) {
      return reject(deviceId, "oversized", `${payload.length} bytes on ${topic}`);
    }
    // An empty retained payload clears a retained status (e.g. after deletion): nothing to apply.
    if (payload.length === 0) return { ok: true };
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      return reject(deviceId, "malformed", `not JSON on ${topic}`);
    }
    switch (parsed.kind) {
      case "status": {
        const r = DeviceStatus.safeParse(json);
        if (!r.success) return reject(deviceId, "invalid", `${topic}: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
        fleet.applyStatus(deviceId, r.data);
        break;
      }
      case "telemetry": {
        const r = TelemetryMessage.safeParse(json);
        if (!r.success) return reject(deviceId, "invalid", `${topic}: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
        fleet.applyTelemetry(deviceId, r.data.samples);
        break;
      }
      case "events": {
        const r = DeviceEvent.safeParse(json);
        if (!r.success) return reject(deviceId, "invalid", `${topic}: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
        fleet.applyEvent(deviceId, r.data);
        break;
      }
      case "chat": {
        const r = ChatStreamMessage.safeParse(json);
        if (!r.success) return reject(deviceId, "invalid", `${topic}: ${r.error.issues[0]?.path.join(".")} ${r.error.issues[0]?.message}`);
        if (r.data.requestId !== parsed.requestId) return reject(deviceId, "invalid", `${topic}: requestId differs from the topic`);
        chat.handle(deviceId, r.data);
        break;
      }
    }
    metrics.mqttMessages.inc({ kind: parsed.kind });
    return { ok: true };
  };
}
