import { describe, expect, it } from "vitest";
import { deviceMayPublish, deviceMaySubscribe, isInDeviceSubtree, parseTopic, TOPIC_ROOT, topics } from "./topics.ts";

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
