/**
 * One device's poisoned messages must not stop the fleet's writes (issue #14). Through
 * the real server and its broker: a device publishes an event stamped 9e15 (no Date can
 * hold it), an event whose stderr tail has a NUL (PostgreSQL refuses it in text and
 * jsonb) and a status with a NUL in its hostname; another device then publishes its
 * status, telemetry and events, and all of those reach the database. The poisoned ones
 * are refused at ingestion and counted in /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EnrollResponse, topics } from "@orchard/contracts";
import { connectMqtt, enrollDevice, removeDir, startServer, type TestServer, waitFor } from "../support/harness.ts";
import { queryServerDatabase } from "../support/server-db.ts";

let server: TestServer;
let poisoner: EnrollResponse;
let honest: EnrollResponse;

const runner = {
  state: "ready",
  backend: "sim",
  model: "sim (no model)",
  pid: 4242,
  rssBytes: 1000,
  maxContext: 2048,
  loadMs: 5,
  restarts: 0,
  lastError: null,
  version: null,
};
const status = (hostname: string) => ({
  state: "online",
  ts: Date.now(),
  agentVersion: "9.9.9-poison-test",
  hostname,
  arch: "arm64",
  runner,
  activeModel: null,
});
const exitEvent = (over: Record<string, unknown> = {}) => ({
  kind: "runner.exit",
  ts: Date.now(),
  code: 1,
  signal: null,
  stderrTail: "orchard-runner: bye",
  restartInMs: 1000,
  ...over,
});
const sample = (ts: number) => ({
  ts,
  cpuPercent: 12,
  load1: 0.1,
  load5: 0.1,
  load15: 0.1,
  memTotalBytes: 8e9,
  memAvailableBytes: 6e9,
  swapTotalBytes: 0,
  swapUsedBytes: 0,
  diskTotalBytes: null,
  diskFreeBytes: null,
  socTempC: 50,
  throttle: null,
  runnerRssBytes: 1000,
  tokensPerSecond: null,
});

beforeAll(async () => {
  server = await startServer();
  poisoner = await enrollDevice(server, "pi-poison");
  honest = await enrollDevice(server, "pi-honest");
});

afterAll(async () => {
  await server?.stop();
  if (server) await removeDir(server.dataDir);
});

describe("a poisoned device message", () => {
  it("is refused and counted, and another device's events and state are still stored", async () => {
    const bad = await connectMqtt(server, poisoner);
    await bad.publishAsync(topics.events(poisoner.deviceId), JSON.stringify(exitEvent({ ts: 9e15 })), { qos: 1 });
    await bad.publishAsync(topics.events(poisoner.deviceId), JSON.stringify(exitEvent({ stderrTail: "fatal\u0000garbage" })), { qos: 1 });
    await bad.publishAsync(topics.status(poisoner.deviceId), JSON.stringify(status("pi\u0000poison")), { qos: 1 });
    await bad.endAsync();

    const metrics = async () => (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } })).text();
    const counter = (text: string, series: string) =>
      Number(
        text
          .split("\n")
          .find((line) => line.startsWith(`${series} `))
          ?.slice(series.length + 1) ?? 0,
      );
    // Handled (accepted or refused) before the other device speaks, whichever way the server takes them.
    await waitFor("the server to handle the three poisoned messages", async () => {
      const text = await metrics();
      const handled = ['orchard_mqtt_messages_total{kind="events"}', 'orchard_mqtt_messages_total{kind="status"}'];
      return (
        handled.reduce((n, s) => n + counter(text, s), 0) + counter(text, 'orchard_mqtt_messages_rejected_total{reason="invalid"}') >= 3
      );
    });

    const good = await connectMqtt(server, honest);
    const t0 = Date.now();
    await good.publishAsync(topics.status(honest.deviceId), JSON.stringify(status("pi-honest-after")), { qos: 1 });
    await good.publishAsync(topics.telemetry(honest.deviceId), JSON.stringify({ samples: [sample(t0 - 1000), sample(t0)] }), { qos: 1 });
    await good.publishAsync(topics.events(honest.deviceId), JSON.stringify(exitEvent({ ts: t0, stderrTail: "honest exit" })), { qos: 1 });
    await good.endAsync();

    // Both reads flush first, then read the database.
    const events = await waitFor(
      "the honest device's event in the database",
      async () => {
        const rows = await server.client.devices.events.query({ id: honest.deviceId, limit: 10 });
        return rows.length > 0 ? rows : null;
      },
      15_000,
    );
    expect(events.map((e) => e.event)).toEqual([exitEvent({ ts: t0, stderrTail: "honest exit" })]);
    const samples = await server.client.devices.telemetry.query({ id: honest.deviceId, sinceMs: t0 - 60_000 });
    expect(samples.map((s) => s.ts)).toEqual([t0 - 1000, t0]);
    expect(await server.client.devices.events.query({ id: poisoner.deviceId, limit: 10 })).toEqual([]);
    const text = await metrics();
    expect(text).toContain('orchard_mqtt_messages_rejected_total{reason="invalid"} 3\n');
    // Nothing reached the writer that it had to refuse.
    expect(text).toMatch(/orchard_db_rows_rejected_total\{kind="event"\} 0\n/);

    // The state (status) was written too: the rows as the server left them.
    await server.stop();
    const devices = await queryServerDatabase<{ id: string; hostname: string | null; agentVersion: string | null }>(
      server,
      'SELECT id, hostname, "agentVersion" FROM "Device" ORDER BY id',
    );
    expect(devices.find((d) => d.id === honest.deviceId)).toMatchObject({ hostname: "pi-honest-after", agentVersion: "9.9.9-poison-test" });
    expect(devices.find((d) => d.id === poisoner.deviceId)).toMatchObject({ hostname: "pi-poison", agentVersion: "test" });
    const stored = await queryServerDatabase<{ n: number }>(
      server,
      'SELECT count(*)::int AS n FROM "TelemetrySample" WHERE "deviceId" = $1',
      [honest.deviceId],
    );
    expect(stored[0]!.n).toBe(2);
  });
});
