/**
 * The foundation end to end, with real processes: the server (embedded broker,
 * PGlite — and PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set), two agents
 * enrolled through the real CLI, each supervising a real `orchard-runner --backend
 * sim`. Devices come online in the API, over socket.io and in the database; a
 * SIGKILLed agent goes offline through its last will; a killed runner is restarted
 * and reported.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeviceSummary } from "@orchard/contracts";
import { createPostgresDatabase, DB_KINDS } from "../../apps/web/test/db.ts";
import {
  connectSocket,
  enrollAgent,
  login,
  removeDir,
  startServer,
  waitFor,
  type FleetSocket,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";
import { queryServerDatabase } from "../support/server-db.ts";

describe.each(DB_KINDS)("fleet with real agents on %s", (kind) => {
  let server: TestServer;
  let agents: TestAgent[] = [];
  let socket: FleetSocket;
  const seen = new Map<string, DeviceSummary[]>();

  const device = async (id: string) => (await server.client.devices.list.query()).find((d) => d.id === id);

  beforeAll(async () => {
    server = await startServer({ databaseUrl: kind === "postgresql" ? await createPostgresDatabase() : undefined });
    socket = await connectSocket(server, await login(server));
    socket.on("fleet:device", (d) => seen.set(d.id, [...(seen.get(d.id) ?? []), d]));
    agents = [await enrollAgent(server, "orchard-test-a"), await enrollAgent(server, "orchard-test-b")];
    for (const agent of agents) agent.start();
  });

  afterAll(async () => {
    socket?.disconnect();
    for (const agent of agents) await agent.proc?.stop();
    await server?.stop();
    for (const agent of agents) await removeDir(agent.dataDir);
    if (server) await removeDir(server.dataDir);
  });

  it("shows both devices online with a ready sim runner and real telemetry", async () => {
    for (const agent of agents) {
      const d = await waitFor(`${agent.name} online with a ready runner and telemetry`, async () => {
        const d = await device(agent.deviceId);
        return d?.online && d.runner?.state === "ready" && d.telemetry ? d : null;
      });
      expect(d.name).toBe(agent.name);
      expect(d.agentVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(d.runner).toMatchObject({ backend: "sim", state: "ready" });
      expect(d.runner!.model).toMatch(/sim/);
      expect(d.telemetry!.memTotalBytes).toBeGreaterThan(0);
      expect(d.telemetry!.memAvailableBytes).toBeLessThanOrEqual(d.telemetry!.memTotalBytes);
    }
    // The same rows reached the browser channel.
    for (const agent of agents) {
      await waitFor(`socket.io row for ${agent.name}`, () =>
        seen.get(agent.deviceId)?.some((d) => d.online && d.runner?.state === "ready"),
      );
    }
  });

  it("persists devices and telemetry in the database", async () => {
    await waitFor("telemetry samples in the database", async () => {
      const rows = await server.client.devices.telemetry.query({ id: agents[0]!.deviceId, sinceMs: Date.now() - 60_000 });
      return rows.length >= 2;
    });
    // PGlite can be read only once the server has stopped (last test); PostgreSQL (also every production-mode run) now.
    if (server.databaseUrl) {
      const rows = await queryServerDatabase<{ id: string; online: boolean }>(server, 'SELECT id, online FROM "Device" ORDER BY id');
      expect(rows.map((r) => r.id).sort()).toEqual(agents.map((a) => a.deviceId).sort());
      expect(rows.every((r) => r.online)).toBe(true);
    }
  });

  it("turns a SIGKILLed agent offline through its last will", async () => {
    const victim = agents[1]!;
    const runnerPid = (await device(victim.deviceId))?.runner?.pid;
    const offlineEvent = waitFor("offline row over socket.io", () => seen.get(victim.deviceId)?.some((d) => !d.online), 20_000);
    await victim.proc!.stop("SIGKILL");
    if (runnerPid) {
      // The runner notices its stdin closing and exits on its own.
      await waitFor("the orphaned runner to exit", () => {
        try {
          process.kill(runnerPid, 0);
          return false;
        } catch {
          return true;
        }
      });
    }
    await waitFor(`${victim.name} offline`, async () => (await device(victim.deviceId))?.online === false, 20_000);
    await offlineEvent;
    expect((await device(agents[0]!.deviceId))?.online).toBe(true);
  });

  it("restarts a killed runner and reports the crash and the restart", async () => {
    const agent = agents[0]!;
    const before = (await device(agent.deviceId))!.runner!;
    expect(before.pid).toBeGreaterThan(0);
    process.kill(before.pid!, "SIGKILL");
    const after = await waitFor(
      "the runner to be restarted",
      async () => {
        const r = (await device(agent.deviceId))?.runner;
        return r && r.state === "ready" && r.pid !== before.pid && r.restarts > before.restarts ? r : null;
      },
      30_000,
    );
    expect(after.restarts).toBe(before.restarts + 1);
    const events = await server.client.devices.events.query({ id: agent.deviceId, limit: 50 });
    const exit = events.find((e) => e.event.kind === "runner.exit");
    expect(exit?.event).toMatchObject({ kind: "runner.exit", signal: "SIGKILL" });
    expect(seen.get(agent.deviceId)?.some((d) => d.runner?.state === "crashed")).toBe(true);
  });

  it("keeps the data after the server stops", async () => {
    // Asserts on every database it runs against: PGlite, PostgreSQL, and the production pass (PostgreSQL
    // for both kinds). It used to return early for all but PGlite and assert nothing there.
    expect.assertions(4);
    for (const agent of agents) await agent.proc?.stop();
    await server.stop();
    const devices = await queryServerDatabase<{ id: string; lastSeenAt: Date | null }>(server, 'SELECT id, "lastSeenAt" FROM "Device"');
    const [samples] = await queryServerDatabase<{ n: number }>(server, 'SELECT count(*)::int AS n FROM "TelemetrySample"');
    const [exits] = await queryServerDatabase<{ n: number }>(
      server,
      `SELECT count(*)::int AS n FROM "DeviceEvent" WHERE kind = 'runner.exit'`,
    );
    expect(devices.map((r) => r.id).sort()).toEqual(agents.map((a) => a.deviceId).sort());
    expect(devices.every((r) => r.lastSeenAt !== null)).toBe(true);
    expect(samples!.n).toBeGreaterThanOrEqual(2);
    expect(exits!.n).toBeGreaterThanOrEqual(1); // the killed runner's exit, reported above
  });
});
