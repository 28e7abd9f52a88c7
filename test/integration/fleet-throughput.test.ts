/**
 * Fleet throughput end to end: SIMULATED devices (test/sim/fleet-sim.ts) report
 * generation counts over the real broker; the server's `fleet:totals` over socket.io
 * (devices, tokens/s now, generations held, alerts) match what the simulator sent, and
 * the overview's history (from the per-minute rollups) adds up to every token sent.
 * Runs on PGlite, and on PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set. No timing
 * is asserted: the simulator is paused and the test waits until the server has seen
 * every sample before comparing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FleetTotals, TelemetrySample } from "@orchard/contracts";
import { createPostgresDatabase, DB_KINDS } from "../../apps/web/test/db.ts";
import { FleetSim } from "../sim/fleet-sim.ts";
import { connectSocket, login, removeDir, startServer, waitFor, type FleetSocket, type TestServer } from "../support/harness.ts";

const DEVICES = 40;

/**
 * What the fleet's tokens/s now should be, by the definition in docs/metrics.md: per online
 * device, its newest sample's generatedTokens over the time since its previous sample
 * (the simulator always reports counts and sends every second).
 */
function expectedTotals(sent: Map<string, TelemetrySample[]>): { tokensPerSecond: number; activeGenerations: number } {
  let tokensPerSecond = 0;
  let activeGenerations = 0;
  for (const samples of sent.values()) {
    const [prev, last] = samples.slice(-2);
    if (!prev || !last) throw new Error("every simulated device should have sent at least two samples");
    tokensPerSecond += last.generatedTokens! / ((last.ts - prev.ts) / 1000);
    activeGenerations += last.activeGenerations ?? 0;
  }
  return { tokensPerSecond, activeGenerations };
}

describe.each(DB_KINDS)(`fleet throughput with ${DEVICES} simulated devices on %s`, (kind) => {
  let server: TestServer;
  let sim: FleetSim;
  let socket: FleetSocket;
  const totals: FleetTotals[] = [];
  /** Every sample each simulated device sent, in order. */
  const sent = new Map<string, TelemetrySample[]>();

  beforeAll(async () => {
    server = await startServer({
      databaseUrl: kind === "postgresql" ? await createPostgresDatabase() : undefined,
      env: { ORCHARD_LOG_LEVEL: "warn" },
    });
    socket = await connectSocket(server, await login(server));
    socket.on("fleet:totals", (t) => totals.push(t));
    // The push that comes with the connection (or, had it arrived before the listener, the
    // next periodic one) still counts no device: none has been created yet.
    await waitFor("a first fleet:totals push", () => totals.length > 0);
    sim = new FleetSim({
      url: server.url,
      apiKey: server.apiKey,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      devices: DEVICES,
      generatingShare: 0.5,
      onTelemetrySent: (deviceId, sample) => sent.set(deviceId, [...(sent.get(deviceId) ?? []), sample]),
    });
    await sim.start();
  }, 120_000);

  afterAll(async () => {
    socket?.disconnect();
    await sim?.stop().catch(() => undefined);
    await server?.stop();
    if (server) await removeDir(server.dataDir);
  });

  it("pushes the fleet totals to a signed-in browser as devices come online", async () => {
    // The first push, before any device.
    expect(totals[0]).toMatchObject({ devicesTotal: 0, devicesOnline: 0, tokensPerSecond: 0, activeGenerations: 0 });
    const live = await waitFor(
      `fleet:totals with ${DEVICES} devices online and generating`,
      () => totals.find((t) => t.devicesOnline === DEVICES && t.tokensPerSecond > 0),
      60_000,
    );
    expect(live.devicesTotal).toBe(DEVICES);
    expect(live.activeGenerations).toBeGreaterThan(0);
  });

  it("matches what the simulator sent, once the server has every sample", async () => {
    // One device runs hot, so there is an open alert to count.
    const hot = sim.deviceIds()[0]!;
    sim.override(hot, { socTempC: 95 });
    await waitFor("the temperature alert", async () => (await server.client.alerts.active.query()).some((a) => a.deviceId === hot));
    await waitFor("every device to have sent three samples", () => sim.deviceIds().every((id) => (sent.get(id)?.length ?? 0) >= 3));
    sim.pause();
    await waitFor("the server to have every device's newest sample", async () => {
      const list = await server.client.devices.list.query();
      return list.length === DEVICES && list.every((d) => d.online && d.telemetry?.ts === sent.get(d.id)?.at(-1)?.ts);
    });
    const activeAlerts = async () => (await server.client.alerts.active.query()).length;
    expect(await activeAlerts()).toBeGreaterThanOrEqual(1);

    // The next push (and the alerts it counts, which the alert service may still be opening).
    const since = Date.now();
    let alerts = -1;
    const pushed = await waitFor(
      "a fleet:totals push after the last sample, counting the open alerts",
      async () => {
        alerts = await activeAlerts();
        return totals.find((t) => t.ts > since && t.alertsActive === alerts);
      },
      20_000,
    );
    const expected = expectedTotals(sent);
    expect(expected.tokensPerSecond).toBeGreaterThan(0);
    expect(pushed.devicesTotal).toBe(DEVICES);
    expect(pushed.devicesOnline).toBe(DEVICES);
    expect(pushed.activeGenerations).toBe(expected.activeGenerations);
    expect(pushed.tokensPerSecond).toBeCloseTo(expected.tokensPerSecond, 6);
    expect(pushed.alertsActive).toBe(alerts);
    // The same figures over tRPC.
    expect(await server.client.fleet.totals.query()).toMatchObject({
      devicesOnline: DEVICES,
      activeGenerations: expected.activeGenerations,
      alertsActive: alerts,
    });
  });

  it("charts every token sent in the overview's history, and a sparkline for every generating device", async () => {
    const overview = await server.client.fleet.overview.query({ range: "15m" });
    const samples = [...sent.values()].flat();
    const tokensSent = samples.reduce((sum, s) => sum + (s.generatedTokens ?? 0), 0);
    expect(tokensSent).toBeGreaterThan(0);
    expect(overview.bucketMs).toBe(60_000);
    expect(overview.points.reduce((sum, p) => sum + p.tokens, 0)).toBe(tokensSent);
    expect(Math.max(...overview.points.map((p) => p.devicesReporting))).toBe(DEVICES);
    for (const p of overview.points) expect(p.tokensPerSecond).toBeGreaterThanOrEqual(0);

    const generating = [...sent].filter(([, s]) => s.some((x) => x.tokensPerSecond !== null)).map(([id]) => id);
    expect(generating.length).toBeGreaterThan(0);
    expect(Object.keys(overview.sparklines.devices).sort()).toEqual(generating.sort());
    for (const id of generating) expect(overview.sparklines.devices[id]!.some((v) => v !== null && v > 0)).toBe(true);

    await expect(server.client.fleet.overview.query({ range: "2h" as "1h" })).rejects.toThrow(/range must be one of 15m, 1h/);
  });
});
