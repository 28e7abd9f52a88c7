import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatStatus, statusReport } from "../commands/status.js";
import { saveAgentFile } from "../config/agent-file.js";
import { ManualClock } from "../lib/clock.js";
import { until } from "../../test/helpers/until.js";
import { silentLogger } from "../lib/logger.js";
import { type AgentStateFile, StateFileWriter, readStateFile } from "./state-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-state-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const state = (updatedAt: number, patch: Partial<AgentStateFile> = {}): AgentStateFile => ({
  version: 1,
  pid: process.pid,
  agentVersion: "0.1.0",
  deviceId: "pi-01",
  startedAt: 1_000,
  updatedAt,
  running: true,
  connection: {
    state: "connected",
    since: 1_000,
    lastConnectedAt: 1_000,
    lastError: null,
    nextAttemptAt: null,
    url: "mqtt://127.0.0.1:1883",
  },
  runner: {
    state: "ready",
    backend: "sim",
    model: "sim (no model)",
    pid: 4242,
    rssBytes: 5 * 1024 * 1024,
    maxContext: 2048,
    loadMs: 20,
    restarts: 1,
    lastError: "killed by SIGKILL",
    version: null,
    badLines: 0,
  },
  telemetry: { intervalMs: 5_000, lastSampleAt: 2_000, lastPublishedAt: 2_000, buffered: 0, dropped: 0 },
  ...patch,
});

describe("StateFileWriter", () => {
  it("writes at most once per interval, always the newest snapshot", async () => {
    const file = path.join(dir, "state.json");
    const clock = new ManualClock(10_000);
    const writer = new StateFileWriter(file, silentLogger, 200, clock);
    const written = async () => (await readStateFile(file))?.updatedAt;
    writer.update(state(1));
    await until("the first snapshot, written at once", async () => (await written()) === 1);
    // Two more within the interval: held back, then only the newest is written.
    const since = Date.now();
    writer.update(state(2));
    writer.update(state(3));
    const seen = new Set<number | undefined>();
    await until("the newest snapshot", async () => {
      const now = await written();
      seen.add(now);
      return now === 3;
    });
    expect(Date.now() - since).toBeGreaterThanOrEqual(190); // not before the interval (200 ms) was over
    expect(seen.has(2)).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });

  it("flush() writes the final snapshot at once", async () => {
    const file = path.join(dir, "state.json");
    const writer = new StateFileWriter(file, silentLogger, 60_000);
    writer.update(state(1));
    writer.update(state(2));
    await writer.flush(state(3, { running: false }));
    expect(await readStateFile(file)).toMatchObject({ updatedAt: 3, running: false });
  });

  it("flush() during a write waits for the final snapshot, not for the write it found (no interval)", async () => {
    const file = path.join(dir, "state.json");
    for (let round = 0; round < 20; round++) {
      const writer = new StateFileWriter(file, silentLogger, 0);
      writer.update(state(1)); // a write starts at once
      writer.update(state(2)); // arrives during it: handed over when it ends
      await writer.flush(state(3, { running: false }));
      expect(await readStateFile(file)).toMatchObject({ updatedAt: 3, running: false });
    }
  });

  it("contains no credential", async () => {
    const file = path.join(dir, "state.json");
    await new StateFileWriter(file, silentLogger).flush(state(1));
    expect(await readFile(file, "utf8")).not.toMatch(/password/i);
  });
});

describe("orchard-agent status", () => {
  const agent = {
    version: 1 as const,
    serverUrl: "http://10.0.0.2:3000",
    deviceId: "pi-01",
    name: "kitchen",
    mqtt: { url: "mqtt://10.0.0.2:1883", username: "pi-01", password: "broker-secret" },
    enrolledAt: "2025-01-01T00:00:00.000Z",
  };

  it("reports a running agent from agent.json and state.json, never the password", async () => {
    await saveAgentFile(dir, agent);
    await new StateFileWriter(path.join(dir, "state.json"), silentLogger).flush(state(Date.now()));
    const report = await statusReport(dir);
    expect(report).toMatchObject({ enrolled: true, deviceId: "pi-01", name: "kitchen", serverUrl: "http://10.0.0.2:3000", running: true });
    expect(JSON.stringify(report)).not.toContain("broker-secret");
    const text = formatStatus(report, Date.now());
    expect(text).toMatch(/^device +kitchen \(pi-01\)$/m);
    expect(text).toMatch(/^connection +connected since/m);
    expect(text).toMatch(/^runner +ready \(sim, model sim \(no model\), pid 4242, rss 5\.0 MiB, restarts 1\)$/m);
    expect(text).toMatch(/^last error +killed by SIGKILL$/m);
    expect(text).not.toContain("broker-secret");
  });

  it("says when the agent is not running or never ran", async () => {
    await saveAgentFile(dir, agent);
    expect(formatStatus(await statusReport(dir))).toMatch(/^agent +has not run with this data dir yet$/m);
    await new StateFileWriter(path.join(dir, "state.json"), silentLogger).flush(state(Date.now(), { running: false }));
    const report = await statusReport(dir);
    expect(report.running).toBe(false);
    expect(formatStatus(report)).toMatch(/^agent +not running \(last update \d+ s ago\)$/m);
  });

  it("treats a state file whose process is gone as not running", async () => {
    await saveAgentFile(dir, agent);
    await new StateFileWriter(path.join(dir, "state.json"), silentLogger).flush(state(Date.now(), { pid: 2 ** 22 + 12345 }));
    expect((await statusReport(dir)).running).toBe(false);
  });

  it("not enrolled: the enroll hint", async () => {
    await expect(statusReport(dir)).rejects.toThrow(/^not enrolled: run orchard-agent enroll/);
  });
});
