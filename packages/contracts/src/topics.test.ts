import { describe, expect, it } from "vitest";
import {
  deviceBrokerAcl,
  deviceMayPublish,
  deviceMaySubscribe,
  isInDeviceSubtree,
  parseTopic,
  SERVER_BROKER_ACL,
  TOPIC_ROOT,
  topics,
} from "./topics.ts";

describe("topic builders", () => {
  it("puts every device topic under the versioned root", () => {
    expect(TOPIC_ROOT).toBe("orchard/v1");
    expect(topics.status("pi-abc")).toBe("orchard/v1/devices/pi-abc/status");
    expect(topics.telemetry("pi-abc")).toBe("orchard/v1/devices/pi-abc/telemetry");
    expect(topics.events("pi-abc")).toBe("orchard/v1/devices/pi-abc/events");
    expect(topics.cmd("pi-abc")).toBe("orchard/v1/devices/pi-abc/cmd");
    expect(topics.chat("pi-abc", "req_1")).toBe("orchard/v1/devices/pi-abc/chat/req_1");
    expect(topics.allDevices("status")).toBe("orchard/v1/devices/+/status");
  });

  it("refuses ids that would break out of a topic level", () => {
    for (const bad of ["", "a/b", "+", "#", "ab", "Pi-UPPER", "pi abc"]) {
      expect(() => topics.status(bad)).toThrow(/invalid device id/);
    }
    expect(() => topics.chat("pi-abc", "a/b")).toThrow(/invalid request id/);
  });
});

describe("parseTopic", () => {
  it("round-trips every builder", () => {
    expect(parseTopic(topics.status("pi-abc"))).toEqual({ deviceId: "pi-abc", kind: "status" });
    expect(parseTopic(topics.cmd("pi-abc"))).toEqual({ deviceId: "pi-abc", kind: "cmd" });
    expect(parseTopic(topics.chat("pi-abc", "r1"))).toEqual({ deviceId: "pi-abc", kind: "chat", requestId: "r1" });
  });

  it("returns null for anything that is not a concrete Orchard device topic", () => {
    for (const t of [
      "orchard/v2/devices/pi-abc/status",
      "orchard/v1/devices/pi-abc",
      "orchard/v1/devices/pi-abc/unknown",
      "orchard/v1/devices/pi-abc/status/extra",
      "orchard/v1/devices/+/status",
      "orchard/v1/devices/pi-abc/chat",
      "orchard/v1/devices/pi-abc/chat/+",
      "$SYS/broker/clients",
      "",
    ]) {
      expect(parseTopic(t), t).toBeNull();
    }
  });
});

describe("device access rules", () => {
  it("lets a device publish its own up-topics but not commands or other devices' topics", () => {
    expect(deviceMayPublish("pi-abc", topics.status("pi-abc"))).toBe(true);
    expect(deviceMayPublish("pi-abc", topics.chat("pi-abc", "r1"))).toBe(true);
    expect(deviceMayPublish("pi-abc", topics.cmd("pi-abc"))).toBe(false);
    expect(deviceMayPublish("pi-abc", topics.status("pi-xyz"))).toBe(false);
    expect(deviceMayPublish("pi-abc", "orchard/v1/devices/pi-abc/../pi-xyz/status")).toBe(false);
  });

  it("lets a device subscribe only inside its own subtree, wildcards included", () => {
    expect(deviceMaySubscribe("pi-abc", topics.cmd("pi-abc"))).toBe(true);
    expect(deviceMaySubscribe("pi-abc", "orchard/v1/devices/pi-abc/#")).toBe(true);
    expect(deviceMaySubscribe("pi-abc", "orchard/v1/devices/+/cmd")).toBe(false);
    expect(deviceMaySubscribe("pi-abc", "orchard/v1/devices/#")).toBe(false);
    expect(deviceMaySubscribe("pi-abc", "#")).toBe(false);
    expect(deviceMaySubscribe("pi-abc", "orchard/v1/devices/pi-abcd/cmd")).toBe(false);
    expect(isInDeviceSubtree("pi-abc", "orchard/v1/devices/pi-abc")).toBe(false);
  });
});

describe("broker access lists", () => {
  const id = "pi-acl01";
  const acl = deviceBrokerAcl(id);
  // A filter matches a topic the way MQTT brokers match them (only + appears in these lists).
  const matches = (filter: string, topic: string) => {
    const f = filter.split("/");
    const t = topic.split("/");
    if (f.at(-1) === "#") return t.length >= f.length - 1 && f.slice(0, -1).every((s, i) => s === "+" || s === t[i]);
    return f.length === t.length && f.every((s, i) => s === "+" || s === t[i]);
  };
  const samples = [
    topics.status(id),
    topics.telemetry(id),
    topics.events(id),
    topics.cmd(id),
    topics.chat(id, "r1"),
    topics.status("pi-other1"),
    topics.cmd("pi-other1"),
    topics.chat("pi-other1", "r1"),
    `${TOPIC_ROOT}/devices/${id}/other`,
    "elsewhere/x",
  ];

  it("lets a device publish exactly where deviceMayPublish does", () => {
    for (const topic of samples)
      expect(
        acl.publish.some((f) => matches(f, topic)),
        topic,
      ).toBe(deviceMayPublish(id, topic));
  });

  it("lets a device subscribe only inside its own subtree, where its commands are", () => {
    expect(acl.subscribe.every((f) => deviceMaySubscribe(id, f))).toBe(true);
    expect(acl.subscribe.some((f) => matches(f, topics.cmd(id)))).toBe(true);
    expect(acl.subscribe.some((f) => matches(f, topics.cmd("pi-other1")))).toBe(false);
  });

  it("lets the server read every device's up topics and write commands", () => {
    for (const topic of [topics.status(id), topics.telemetry(id), topics.events(id), topics.chat(id, "r1")]) {
      expect(
        SERVER_BROKER_ACL.subscribe.some((f) => matches(f, topic)),
        topic,
      ).toBe(true);
    }
    expect(SERVER_BROKER_ACL.publish.some((f) => matches(f, topics.cmd(id)))).toBe(true);
  });
});
