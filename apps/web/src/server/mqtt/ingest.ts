/**
 * Turns raw MQTT messages from devices into fleet updates. Every message is
 * rate-limited per device, size-checked, parsed and validated against the contracts
 * before it can touch state; anything else is dropped and counted by reason, never thrown.
 */
import {
  MAX_DEVICE_PAYLOAD_BYTES,
  decode,
  isUpTopic,
  parseTopic,
  type ParsedTopicOf,
  type TopicPayload,
  type UpTopic,
  type UpTopicKind,
} from "@orchard/contracts";
import { throttled, type Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import type { ChatRelay } from "../services/chat-relay.ts";
import type { FleetService } from "../services/fleet.ts";

export type RejectReason = "oversized" | "malformed" | "invalid" | "unknown_topic" | "unknown_device" | "bad_timestamp" | "rate_limited";

export type IngestResult = { ok: true } | { ok: false; reason: RejectReason; detail: string };

/** A telemetry sample stamped further ahead of the server's clock than this is refused (a Pi has no RTC; a wrong clock must not chart). */
export const MAX_TELEMETRY_FUTURE_MS = 5 * 60_000;
/** A telemetry sample older than this is refused: nothing the agent buffers is this old, so the clock was wrong. */
export const MAX_TELEMETRY_AGE_MS = 7 * 24 * 3600_000;

export interface RateLimit {
  /** Messages per second a device may send sustained. */
  perSecond: number;
  /** Messages a device may send at once after being quiet. */
  burst: number;
}

/**
 * Per-device limits. A device sends one telemetry message a second, a status now and
 * then, a few events, and after a reconnect up to 8 catch-up telemetry messages at
 * once (720 buffered samples, 100 per message): 20/s with a burst of 100 leaves a wide
 * margin. Chat messages have their own, much larger bucket: a generation streams a
 * token chunk at most every 50 ms (20/s) plus progress, and a burst of QoS 1 messages
 * may arrive together after a reconnect; a device runs one generation at a time, so
 * 200/s (burst 1000) is ten times what an honest device sends. Separate buckets also
 * mean a chat stream can never starve the device's telemetry, nor the reverse.
 */
export const DEFAULT_RATE_LIMITS: { device: RateLimit; chat: RateLimit } = {
  device: { perSecond: 20, burst: 100 },
  chat: { perSecond: 200, burst: 1000 },
};

/** A token bucket: `take()` is false when the bucket is empty (the message is over the limit). */
class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly limit: RateLimit,
    now: number,
  ) {
    this.tokens = limit.burst;
    this.at = now;
  }
  take(now: number): boolean {
    if (now > this.at) {
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.at) / 1000) * this.limit.perSecond);
      this.at = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export function createIngestor(deps: {
  fleet: FleetService;
  chat: Pick<ChatRelay, "handle">;
  metrics: Metrics;
  log: Logger;
  limits?: { device: RateLimit; chat: RateLimit };
  now?: () => number;
}) {
  const { fleet, chat, metrics, log } = deps;
  const limits = deps.limits ?? DEFAULT_RATE_LIMITS;
  const now = deps.now ?? Date.now;
  const warnOnce = throttled(60_000, now);
  const buckets = new Map<string, { device: TokenBucket; chat: TokenBucket }>();
  fleet.on("removed", (id) => buckets.delete(id));

  const reject = (deviceId: string | null, reason: RejectReason, detail: string): IngestResult => {
    metrics.mqttRejected.inc({ reason });
    warnOnce(`${deviceId}:${reason}`, () =>
      log.warn("dropped an MQTT message", { device: deviceId, reason, detail: detail.slice(0, 300) }),
    );
    return { ok: false, reason, detail };
  };
  /** A message that parsed as JSON but does not match its contract: the first issue tells why. */
  const invalid = (deviceId: string, topic: string, error: { issues: { path: PropertyKey[]; message: string }[] }): IngestResult =>
    reject(deviceId, "invalid", `${topic}: ${error.issues[0]?.path.join(".")} ${error.issues[0]?.message}`);

  /**
   * What each kind a device publishes does once its payload matched its schema (TOPIC_MAP, via decode): apply it,
   * or refuse it for a reason the schema cannot see. One entry per up topic kind; returning a result refuses.
   */
  const handlers: {
    [K in UpTopicKind]: (msg: {
      deviceId: string;
      topic: string;
      parsed: ParsedTopicOf<K>;
      data: TopicPayload<K>;
      t: number;
    }) => IngestResult | void;
  } = {
    status: ({ deviceId, data }) => {
      fleet.applyStatus(deviceId, data);
    },
    telemetry: ({ deviceId, topic, data, t }) => {
      // The whole message is refused, like a message with an impossible value: its samples came from a wrong clock.
      const bad = data.samples.find((s) => s.ts > t + MAX_TELEMETRY_FUTURE_MS || s.ts < t - MAX_TELEMETRY_AGE_MS);
      if (bad) {
        return reject(
          deviceId,
          "bad_timestamp",
          `${topic}: sample at ${bad.ts} is ${Math.round((bad.ts - t) / 1000)} s from the server's clock`,
        );
      }
      fleet.applyTelemetry(deviceId, data.samples);
    },
    events: ({ deviceId, data }) => {
      fleet.applyEvent(deviceId, data);
    },
    chat: ({ deviceId, topic, parsed, data: m }) => {
      if (m.requestId !== parsed.requestId) return reject(deviceId, "invalid", `${topic}: requestId differs from the topic`);
      // Counted once per request, at its end; token chunks pay nothing here.
      if (m.type === "done") {
        metrics.generatedTokens.inc({ device: deviceId }, m.stats.generatedTokens);
        metrics.chatRequests.inc({ device: deviceId, outcome: m.stats.finishReason });
      } else if (m.type === "error" && m.code !== "duplicate") {
        metrics.chatRequests.inc({ device: deviceId, outcome: "error" });
      }
      chat.handle(deviceId, m);
    },
  };

  /** Decodes one message with its kind's schema (TOPIC_MAP) and hands it to that kind's handler. */
  const dispatch = (parsed: UpTopic, topic: string, json: unknown, t: number) => {
    const r = decode(parsed.kind, json);
    if (!r.success) return invalid(parsed.deviceId, topic, r.error);
    // The handler of parsed.kind takes exactly what decode(parsed.kind) returned; TypeScript cannot pair the two unions.
    const handler = handlers[parsed.kind] as (msg: {
      deviceId: string;
      topic: string;
      parsed: unknown;
      data: unknown;
      t: number;
    }) => IngestResult | void;
    return handler({ deviceId: parsed.deviceId, topic, parsed, data: r.data, t });
  };

  return function ingest(topic: string, payload: Buffer): IngestResult {
    const parsed = parseTopic(topic);
    // Only what devices publish is ingested (TOPIC_MAP's device→server kinds); a command echoed back is not.
    if (!parsed || !isUpTopic(parsed)) return reject(null, "unknown_topic", topic);
    const { deviceId } = parsed;
    if (!fleet.has(deviceId)) return reject(deviceId, "unknown_device", topic);
    // Before any parsing, so a flood costs a map lookup per message.
    const t = now();
    let bucket = buckets.get(deviceId);
    if (!bucket) {
      bucket = { device: new TokenBucket(limits.device, t), chat: new TokenBucket(limits.chat, t) };
      buckets.set(deviceId, bucket);
    }
    if (!(parsed.kind === "chat" ? bucket.chat : bucket.device).take(t)) {
      return reject(deviceId, "rate_limited", `over the ${parsed.kind === "chat" ? "chat" : "device"} message rate limit on ${topic}`);
    }
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
    const refused = dispatch(parsed, topic, json, t);
    if (refused) return refused;
    metrics.mqttMessages.inc({ kind: parsed.kind });
    return { ok: true };
  };
}
