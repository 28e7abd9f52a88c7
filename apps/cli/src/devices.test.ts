/** `orchard devices list`: the two token rates under the dashboard's names, each with its own value. */
import { describe, expect, it } from "vitest";
import { DeviceSummary } from "@orchard/contracts";
import { DECODE_HEADING, GENERATING_HEADING, deviceRows } from "./devices.ts";

const base = DeviceSummary.parse({
  id: "pi-1",
  name: "kitchen",
  hostname: "pi",
  arch: "arm64",
  online: true,
  lastSeenAt: 1000,
  agentVersion: "0.1.0",
  runner: null,
  activeModel: null,
  telemetry: null,
  enrolledAt: 0,
});

describe("deviceRows", () => {
  it("shows generating now and decode speed in tok/s, named as on the dashboard", () => {
    expect(GENERATING_HEADING).toBe("GENERATING NOW TOK/S");
    expect(DECODE_HEADING).toBe("DECODE SPEED TOK/S");
    const generating = { ...base, generatingTokensPerSecond: 12.34, telemetry: null };
    const idle = { ...base, id: "pi-2", name: "hall", generatingTokensPerSecond: 0 };
    const offline = { ...base, id: "pi-3", name: "shed", online: false, generatingTokensPerSecond: 9 };
    const [header, ...rows] = deviceRows([generating, idle, offline], 1000).split("\n");
    const at = (line: string, heading: string) => line.slice(header!.indexOf(heading)).split(/\s{2,}/)[0];
    expect(at(rows[0]!, GENERATING_HEADING)).toBe("12.3");
    expect(at(rows[1]!, GENERATING_HEADING)).toBe("0.0");
    // An offline device generates nothing now; its last report is not shown as a rate.
    expect(at(rows[2]!, GENERATING_HEADING)).toBe("—");
    // No sample: no decode speed.
    expect(at(rows[0]!, DECODE_HEADING)).toBe("—");
  });
});
