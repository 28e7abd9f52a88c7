/**
 * /metrics against its documentation: every metric the server can expose is listed in
 * docs/metrics.md with its type, and every metric the example Grafana dashboard
 * queries exists, so neither drifts from the code.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ALERT_KINDS, DECODE_SPEED, GENERATING_NOW, decodeThrottle, type DeviceSummary } from "@orchard/contracts";
import { Metrics } from "./metrics.ts";

const root = (p: string) => fileURLToPath(new URL(`../../../../${p}`, import.meta.url));

/** One online device with every telemetry source readable, so every per-device series is present. */
const device: DeviceSummary = {
  id: "pi-abc123",
  name: "kitchen",
  hostname: "pi",
  arch: "arm64",
  online: true,
  lastSeenAt: 1,
  agentVersion: "0.1.0",
  enrolledAt: 1,
  activeModel: null,
  previousModel: null,
  runtimes: null,
  generatingTokensPerSecond: 1.25,
  tags: [],
  runner: {
    state: "ready",
    backend: "sim",
    model: "sim",
    pid: 1,
    rssBytes: 5e8,
    maxContext: 2048,
    loadMs: 10,
    restarts: 0,
    lastError: null,
    version: "0.1.0",
  },
  telemetry: {
    ts: 1,
    cpuPercent: 50,
    load1: 1,
    load5: 1,
    load15: 1,
    memTotalBytes: 8e9,
    memAvailableBytes: 4e9,
    swapTotalBytes: 1e9,
    swapUsedBytes: 1e8,
    diskTotalBytes: 64e9,
    diskFreeBytes: 20e9,
    socTempC: 60,
    throttle: decodeThrottle(0),
    runnerRssBytes: 5e8,
    tokensPerSecond: 6.5,
    prefillTokensPerSecond: 30,
    generatedTokens: 6,
    activeGenerations: 1,
    cpuFreqHz: 2.4e9,
    boardPowerW: 6,
  },
};

function exposition(): string {
  const metrics = new Metrics({ list: () => [device], counts: () => ({ total: 1, online: 1 }) });
  metrics.trackAlerts({ activeByKind: () => Object.fromEntries(ALERT_KINDS.map((k) => [k, 0])) as never });
  metrics.generatedTokens.inc({ device: device.id }, 5);
  metrics.chatRequests.inc({ device: device.id, outcome: "stop" });
  metrics.mqttMessages.inc({ kind: "telemetry" });
  metrics.mqttRejected.inc({ reason: "invalid" });
  return metrics.render();
}

describe("/metrics", () => {
  const text = exposition();
  const exposed = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const doc = readFileSync(root("docs/metrics.md"), "utf8");

  it("declares help for every metric, and every gauge has its samples for a fully readable device", () => {
    expect(exposed.size).toBeGreaterThan(10);
    for (const [name, type] of exposed) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, "m"));
      if (type === "gauge") expect(text, name).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? \\S+$`, "m"));
    }
  });

  it("names the two token rates as the dashboard and the CLI do, each with its own value", () => {
    expect(text).toContain(`# HELP orchard_generating_tokens_per_second ${GENERATING_NOW.label}, tok/s: ${GENERATING_NOW.help}`);
    expect(text).toContain(`# HELP orchard_decode_tokens_per_second ${DECODE_SPEED.label}, tok/s: ${DECODE_SPEED.help}`);
    expect(text).toMatch(/^orchard_generating_tokens_per_second\{device="pi-abc123"\} 1\.25$/m);
    expect(text).toMatch(/^orchard_decode_tokens_per_second\{device="pi-abc123"\} 6\.5$/m);
  });

  it("documents every metric with its type in docs/metrics.md", () => {
    for (const [name, type] of exposed) expect(doc, name).toMatch(new RegExp(`\\| \`${name}\` \\| ${type} \\|`));
  });

  it("the example Grafana dashboard only queries metrics that exist", () => {
    const dashboard = readFileSync(root("infra/grafana/orchard-dashboard.json"), "utf8");
    const used = new Set([...dashboard.matchAll(/\b(orchard_[a-z_]+)/g)].map((m) => m[1]!));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect([...exposed.keys()], name).toContain(name);
  });
});
