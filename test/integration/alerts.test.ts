/**
 * Alerts end to end: a real server (embedded broker, PGlite) and a handful of
 * SIMULATED devices (test/sim/fleet-sim.ts) at 5 Hz, with a 1 s clear hold. Forced
 * readings open temperature, throttled, under_voltage and disk_low alerts and clear
 * them again; a device killed without a clean shutdown raises offline (its last will)
 * and clears it on reconnect; a crash-looping runner raises crash_loop. Each change
 * is seen over tRPC, over socket.io ("alert:changed") and in /metrics; devices left
 * alone raise nothing. No timing is asserted: states are awaited.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeThrottle, type AlertDto, type AlertKind, type TelemetrySample } from "@orchard/contracts";
import { FleetSim } from "../sim/fleet-sim.ts";
import { connectSocket, login, removeDir, startServer, waitFor, type FleetSocket, type TestServer } from "../support/harness.ts";

const GiB = 2 ** 30;
/** A healthy Pi: every simulated device reports this unless a test forces something else. */
const HEALTHY: Partial<TelemetrySample> = {
  socTempC: 50,
  throttle: decodeThrottle(0),
  diskTotalBytes: 64 * GiB,
  diskFreeBytes: 32 * GiB,
};

describe("alerts with simulated devices", () => {
  let server: TestServer;
  let sim: FleetSim;
  let socket: FleetSocket;
  let ids: string[];
  const pushed: AlertDto[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: {
        ORCHARD_LOG_LEVEL: "warn",
        ORCHARD_ALERT_TEMP_C: "80",
        ORCHARD_ALERT_DISK_FREE_PERCENT: "10",
        ORCHARD_ALERT_CLEAR_HOLD_SECONDS: "1",
      },
    });
    sim = new FleetSim({
      url: server.url,
      apiKey: server.apiKey,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      devices: 5,
      intervalMs: 200,
      prefix: "alert",
    });
    await sim.start();
    ids = sim.deviceIds();
    for (const id of ids) sim.override(id, HEALTHY);
    socket = await connectSocket(server, await login(server));
    socket.on("alert:changed", (a) => pushed.push(a));
    await waitFor("every simulated device online", async () => (await server.client.devices.list.query()).every((d) => d.online));
  }, 180_000);

  afterAll(async () => {
    socket?.close();
    await sim?.stop().catch(() => undefined);
    await server?.stop();
    if (server) await removeDir(server.dataDir);
  });

  const active = (deviceId: string) => server.client.alerts.active.query({ deviceId });
  const activeKinds = async (deviceId: string) => (await active(deviceId)).map((a) => a.kind).sort();
  /** Waits until the device's open alerts are exactly `kinds`. */
  const waitForActive = (deviceId: string, kinds: AlertKind[]) =>
    waitFor(`alerts [${kinds.join(", ")}] active on ${deviceId}`, async () => {
      const now = await active(deviceId);
      return JSON.stringify(now.map((a) => a.kind).sort()) === JSON.stringify([...kinds].sort()) ? now : null;
    });
  const waitForPushed = (deviceId: string, kind: AlertKind, cleared: boolean) =>
    waitFor(`"alert:changed" ${kind} ${cleared ? "cleared" : "opened"} on ${deviceId}`, () =>
      pushed.find((a) => a.deviceId === deviceId && a.kind === kind && (a.clearedAt !== null) === cleared),
    );
  async function scrape(): Promise<string> {
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    expect(res.status).toBe(200);
    return res.text();
  }

  it("opens a temperature alert above the threshold and clears it when the SoC cools down", async () => {
    const id = ids[0]!;
    sim.override(id, { ...HEALTHY, socTempC: 90 });
    const [alert] = await waitForActive(id, ["temperature"]);
    expect(alert).toMatchObject({ deviceId: id, kind: "temperature", message: "SoC 90.0 °C (threshold 80 °C).", clearedAt: null });
    expect(alert!.deviceName).toMatch(/\(simulated\)$/);
    expect(await waitForPushed(id, "temperature", false)).toEqual(alert);
    expect(await scrape()).toContain('orchard_alerts_active{kind="temperature"} 1');

    sim.override(id, HEALTHY);
    await waitForActive(id, []);
    const cleared = await waitForPushed(id, "temperature", true);
    expect(cleared).toMatchObject({ id: alert!.id, startedAt: alert!.startedAt });
    expect(cleared.clearedAt!).toBeGreaterThanOrEqual(alert!.startedAt);

    const history = await server.client.alerts.list.query({ deviceId: id });
    expect(history.items).toEqual([cleared]);
    expect(await scrape()).toContain('orchard_alerts_active{kind="temperature"} 0');
  });

  it("opens throttled, under_voltage and disk_low from the device's readings and clears them", async () => {
    const id = ids[1]!;
    sim.override(id, { ...HEALTHY, throttle: decodeThrottle(0x50005), diskFreeBytes: 3 * GiB });
    const opened = await waitForActive(id, ["disk_low", "throttled", "under_voltage"]);
    expect(opened.find((a) => a.kind === "under_voltage")!.message).toContain("0x50005");
    expect(opened.find((a) => a.kind === "disk_low")!.message).toContain("(threshold 10%)");
    for (const kind of ["throttled", "under_voltage", "disk_low"] as const) await waitForPushed(id, kind, false);

    // Only "since boot" bits left, and the disk cleaned up: everything clears.
    sim.override(id, { ...HEALTHY, throttle: decodeThrottle(0x50000) });
    await waitForActive(id, []);
    for (const kind of ["throttled", "under_voltage", "disk_low"] as const) await waitForPushed(id, kind, true);
    const history = await server.client.alerts.list.query({ deviceId: id });
    expect(history.items.map((a) => [a.kind, a.clearedAt !== null]).sort()).toEqual([
      ["disk_low", true],
      ["throttled", true],
      ["under_voltage", true],
    ]);
  });

  it("raises offline when a device dies without a clean shutdown and clears it when it is back", async () => {
    const id = ids[2]!;
    await sim.kill(id);
    const [alert] = await waitForActive(id, ["offline"]);
    expect(alert!.message).toMatch(/last will/);
    await waitForPushed(id, "offline", false);
    expect((await server.client.devices.get.query({ id })).online).toBe(false);

    await sim.reconnect(id);
    await waitForActive(id, []);
    expect(await waitForPushed(id, "offline", true)).toMatchObject({ id: alert!.id });
  });

  it("raises crash_loop when the runner keeps crashing and clears it once it stays up", async () => {
    const id = ids[3]!;
    await sim.runnerState(id, "crash_loop", { restarts: 5, lastError: "orchard-runner exited with code 1" });
    const [alert] = await waitForActive(id, ["crash_loop"]);
    expect(alert!.message).toBe("The runner keeps crashing (5 restarts): orchard-runner exited with code 1");
    await waitForPushed(id, "crash_loop", false);

    await sim.runnerState(id, "ready", { restarts: 6 });
    await waitForActive(id, []);
    await waitForPushed(id, "crash_loop", true);
  });

  it("raised nothing for the device left alone, and lists every alert with its start and end", async () => {
    expect(await activeKinds(ids[4]!)).toEqual([]);
    const all = await server.client.alerts.list.query({ limit: 100 });
    expect(all.items.every((a) => a.deviceId !== ids[4])).toBe(true);
    expect(all.items.map((a) => `${ids.indexOf(a.deviceId)}:${a.kind}`).sort()).toEqual([
      "0:temperature",
      "1:disk_low",
      "1:throttled",
      "1:under_voltage",
      "2:offline",
      "3:crash_loop",
    ]);
    expect(all.items.every((a) => a.clearedAt !== null && a.clearedAt >= a.startedAt)).toBe(true);
    // Newest first, and a page at a time.
    expect(all.items.map((a) => a.startedAt)).toEqual([...all.items.map((a) => a.startedAt)].sort((a, b) => b - a));
    const page = await server.client.alerts.list.query({ limit: 4 });
    const rest = await server.client.alerts.list.query({ limit: 4, cursor: page.nextCursor! });
    expect([...page.items, ...rest.items].map((a) => a.id)).toEqual(all.items.map((a) => a.id));
    expect(rest.nextCursor).toBeNull();
    await expect(server.client.alerts.list.query({ cursor: "not-a-cursor" })).rejects.toThrow(/Invalid cursor/);
  });
});
