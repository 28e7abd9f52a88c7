import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import * as contracts from "./index.ts";
import {
  decode,
  deviceBrokerAcl,
  DEVICE_TOPIC_KINDS,
  encode,
  parseTopic,
  publishOptions,
  RETAINED_TOPIC_KINDS,
  SERVER_BROKER_ACL,
  SERVER_SUBSCRIPTIONS,
  TOPIC_MAP,
  topicFilter,
  topicFor,
  type ChatStreamMessage,
  type DeviceTopicKind,
  type TopicPayload,
} from "./index.ts";

const deviceId = "pi-map01";
const ts = 1_700_000_000_000;
/** One parameter value per topic level a kind takes after the device id. */
const paramValues = { requestId: "req_1" } as const;
const paramsOf = (kind: DeviceTopicKind) => TOPIC_MAP[kind].params.map((p) => paramValues[p]);
const topicOf = (kind: DeviceTopicKind) =>
  (topicFor as (k: DeviceTopicKind, id: string, ...p: string[]) => string)(kind, deviceId, ...paramsOf(kind));

/** A valid payload per kind (the record type makes a new kind without one a compile error). */
const valid: { [K in DeviceTopicKind]: TopicPayload<K> } = {
  status: { state: "offline", reason: "shutdown", ts },
  telemetry: {
    samples: [
      {
        ts,
        cpuPercent: 12.5,
        load1: 0.5,
        load5: 0.4,
        load15: 0.3,
        memTotalBytes: 8e9,
        memAvailableBytes: 6e9,
        swapTotalBytes: 0,
        swapUsedBytes: 0,
        diskTotalBytes: null,
        diskFreeBytes: null,
        socTempC: null,
        throttle: null,
        runnerRssBytes: null,
        tokensPerSecond: null,
        prefillTokensPerSecond: null,
        generatedTokens: null,
        activeGenerations: null,
        cpuFreqHz: null,
        boardPowerW: null,
      },
    ],
  },
  events: { kind: "command.result", ts, commandId: "c1", ok: true, message: "pong" },
  cmd: { type: "ping", id: "c1", ts },
  chat: { type: "accepted", requestId: "req_1", ts, queuePosition: 0 },
};
/** A payload each kind's schema must refuse (right shape, one wrong field). */
const invalid: Record<DeviceTopicKind, unknown> = {
  status: { state: "offline", reason: "napping" },
  telemetry: { samples: [] },
  events: { kind: "command.result", ts, commandId: "", ok: true, message: "x" },
  cmd: { type: "self.destruct", id: "c1", ts },
  chat: { type: "accepted", requestId: "req_1", ts, queuePosition: -1 },
};
/** One message of every chat type, for the per-type QoS. */
const chatByType: Record<ChatStreamMessage["type"], ChatStreamMessage> = {
  accepted: { type: "accepted", requestId: "req_1", ts, queuePosition: 0 },
  progress: { type: "progress", requestId: "req_1", ts, phase: "prefill", queuePosition: 0, generatedTokens: 0 },
  tokens: { type: "tokens", requestId: "req_1", seq: 0, ts, text: "hi", count: 1 },
  done: {
    type: "done",
    requestId: "req_1",
    ts,
    text: "hi",
    stats: {
      backend: "sim",
      model: null,
      modelSha256: null,
      finishReason: "stop",
      promptTokens: 1,
      reusedTokens: 0,
      generatedTokens: 1,
      queueMs: 0,
      ttftMs: 1,
      prefillMs: 1,
      decodeMs: 1,
      prefillTokS: 1,
      decodeTokS: 1,
      peakRssBytes: 1,
      socTempC: null,
      throttleRaw: null,
    },
  },
  error: { type: "error", requestId: "req_1", ts, code: "not_ready", message: "loading" },
};

describe("TOPIC_MAP: every entry", () => {
  it("lists the protocol's kinds in its order", () => {
    expect(DEVICE_TOPIC_KINDS).toEqual(["status", "telemetry", "events", "cmd", "chat"]);
  });

  for (const kind of DEVICE_TOPIC_KINDS) {
    describe(kind, () => {
      it("builds a topic that parses back to the same kind, device and parameters", () => {
        const topic = topicOf(kind);
        expect(topic).toBe([`orchard/v1/devices/${deviceId}`, kind, ...paramsOf(kind)].join("/"));
        const expected: Record<string, string> = { deviceId, kind };
        for (const p of TOPIC_MAP[kind].params) expected[p] = paramValues[p];
        expect(parseTopic(topic)).toEqual(expected);
        // One level more or less is not this kind's topic.
        expect(parseTopic(`${topic}/extra`), `${topic}/extra`).toBeNull();
        if (TOPIC_MAP[kind].params.length > 0) expect(parseTopic(topic.slice(0, topic.lastIndexOf("/")))).toBeNull();
      });

      it("matches its every-device filter, and its one-device filter only for that device", () => {
        const matches = (filter: string, topic: string) => {
          const f = filter.split("/");
          const t = topic.split("/");
          return f.length === t.length && f.every((s, i) => s === "+" || s === t[i]);
        };
        expect(matches(topicFilter(kind), topicOf(kind))).toBe(true);
        expect(matches(topicFilter(kind, deviceId), topicOf(kind))).toBe(true);
        expect(matches(topicFilter(kind, "pi-other1"), topicOf(kind))).toBe(false);
      });

      it("decodes a valid payload with its schema and refuses an invalid one", () => {
        const ok = decode(kind, valid[kind]);
        expect(ok.success, JSON.stringify(ok.error?.issues)).toBe(true);
        expect(decode(kind, invalid[kind]).success).toBe(false);
        expect(decode(kind, "not an object").success).toBe(false);
        expect(JSON.parse((encode as (k: DeviceTopicKind, m: unknown) => string)(kind, valid[kind]))).toMatchObject(valid[kind] as object);
        expect(() => (encode as (k: DeviceTopicKind, m: unknown) => string)(kind, invalid[kind])).toThrow();
      });
    });
  }

  it("gives chat its QoS per message type and refuses to guess one without a message", () => {
    for (const [type, message] of Object.entries(chatByType)) {
      expect(decode("chat", message).success, type).toBe(true);
      expect(publishOptions("chat", message), type).toEqual({ qos: type === "tokens" || type === "progress" ? 0 : 1, retain: false });
    }
    expect(() => publishOptions("chat")).toThrow(/depends on its type/);
  });

  it("derives the retained kinds and the broker access lists from the map, with no second list", () => {
    expect(RETAINED_TOPIC_KINDS).toEqual(DEVICE_TOPIC_KINDS.filter((k) => TOPIC_MAP[k].retain));
    expect(RETAINED_TOPIC_KINDS).toEqual(["status"]);
    const up = DEVICE_TOPIC_KINDS.filter((k) => TOPIC_MAP[k].direction === "device→server");
    const down = DEVICE_TOPIC_KINDS.filter((k) => TOPIC_MAP[k].direction === "server→device");
    expect(down).toEqual(["cmd"]);
    expect(deviceBrokerAcl(deviceId).publish).toEqual(up.map((k) => topicFilter(k, deviceId)));
    expect(SERVER_BROKER_ACL.subscribe).toEqual(up.map((k) => topicFilter(k)));
    expect(SERVER_SUBSCRIPTIONS).toEqual(SERVER_BROKER_ACL.subscribe);
    expect([...SERVER_BROKER_ACL.publish].sort()).toEqual(DEVICE_TOPIC_KINDS.map((k) => topicFilter(k)).sort());
  });
});

describe("docs/protocol.md's topic table", () => {
  const doc = readFileSync(new URL("../../../docs/protocol.md", import.meta.url), "utf8");
  const rows = doc
    .split("\n")
    .filter((line) => line.startsWith("| `orchard/v1/devices/"))
    .map((line) => {
      const cells = line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim());
      return { topic: cells[0]!.replaceAll("`", ""), dir: cells[1]!, qosRetain: cells[2]!, payload: cells[3]!.replaceAll("`", "") };
    });

  it("has one row per kind in the map, in the map's order", () => {
    const kinds = rows.map((r) => parseTopic(r.topic.replace("{id}", deviceId).replace("{requestId}", paramValues.requestId))?.kind);
    expect(kinds).toEqual(DEVICE_TOPIC_KINDS);
  });

  it("says what the map says: direction, QoS, retain and payload schema", () => {
    for (const row of rows) {
      const kind = parseTopic(row.topic.replace("{id}", deviceId).replace("{requestId}", paramValues.requestId))!.kind;
      const spec = TOPIC_MAP[kind];
      expect(row.dir.replaceAll(" ", ""), kind).toBe(spec.direction);
      const retained = /retained/.test(row.qosRetain) && !/never retained/.test(row.qosRetain);
      expect(retained, `${kind}: ${row.qosRetain}`).toBe(spec.retain);
      if (typeof spec.qos === "number") {
        expect(row.qosRetain, kind).toMatch(new RegExp(`^${spec.qos}\\b(?! [a-z]+/)`));
      } else {
        // "0 tokens/progress, 1 accepted/done/error": every type, and only those, with its QoS.
        const documented: Record<string, number> = {};
        for (const [, qos, types] of row.qosRetain.matchAll(/(\d) ([a-z]+(?:\/[a-z]+)*)/g)) {
          for (const type of types!.split("/")) documented[type] = Number(qos);
        }
        expect(documented, kind).toEqual(spec.qos.byType);
      }
      expect((contracts as Record<string, unknown>)[row.payload], `${kind}: ${row.payload}`).toBe(spec.schema);
    }
  });
});
