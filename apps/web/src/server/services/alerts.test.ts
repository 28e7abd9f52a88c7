/**
 * Alert rules against the real fleet service and a real database (PGlite, and
 * PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set), with a fake clock: every kind
 * opens, holds through its hysteresis band and clears after the hold; null values
 * never fire; one open alert per device and kind; a restart loads open alerts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { decodeThrottle, DeviceStatus, type AlertDto, type RunnerStatus, type TelemetrySample } from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { AlertService, DEFAULT_ALERT_OPTIONS, type AlertOptions } from "./alerts.ts";
import { FleetService } from "./fleet.ts";

const log = createLogger("error");
const GiB = 2 ** 30;
const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);
const HOLD = 30_000;
const STALE = 60_000;
const OPTIONS: AlertOptions = { ...DEFAULT_ALERT_OPTIONS, clearHoldMs: HOLD, staleMs: STALE };

const runner = (state: RunnerStatus["state"], over: Partial<RunnerStatus> = {}): RunnerStatus => ({
  state,
  backend: "sim",
  model: "sim (no model)",
  pid: 42,
  rssBytes: 1000,
  maxContext: 2048,
  loadMs: 200,
  restarts: 0,
  lastError: null,
  version: null,
  ...over,
});
// Parsed, so fields added to the contract later with a default are filled in.
const online = (ts: number, r: RunnerStatus = runner("ready")): DeviceStatus =>
  DeviceStatus.parse({ state: "online", ts, agentVersion: "0.1.0", hostname: "pi", arch: "arm64", activeModel: null, runner: r });
/** A healthy Pi: 55 °C, no throttling, half the disk free. */
const sample = (ts: number, over: Partial<TelemetrySample> = {}): TelemetrySample => ({
  ts,
  cpuPercent: 20,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  memTotalBytes: 8 * GiB,
  memAvailableBytes: 5 * GiB,
  swapTotalBytes: GiB,
  swapUsedBytes: 0,
  diskTotalBytes: 100 * GiB,
  diskFreeBytes: 50 * GiB,
  socTempC: 55,
  throttle: decodeThrottle(0),
  runnerRssBytes: 50_000_000,
  tokensPerSecond: null,
  prefillTokensPerSecond: null,
  generatedTokens: null,
  activeGenerations: null,
  cpuFreqHz: null,
  boardPowerW: null,
  ...over,
});

describe.each(DB_KINDS)("alerts on %s", (kind) => {
  let db: Database;
  let now: number;
  let fleet: FleetService;
  let alerts: AlertService;
  let changes: AlertDto[];

  async function start(): Promise<void> {
    fleet = new FleetService(db.prisma, { staleMs: STALE }, log, () => now);
    await fleet.load();
    alerts = new AlertService(db.prisma, fleet, OPTIONS, log, () => now);
    changes = [];
    alerts.on("changed", (a) => changes.push(a));
    await alerts.load();
  }

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    for (const id of ["pi-a", "pi-b"]) await db.prisma.device.create({ data: { id, name: `name-${id}`, mqttPasswordHash: "x" } });
    await start();
  });
  afterEach(async () => {
    await alerts.close();
    await db.close();
  });

  /** Moves the clock and sends one sample (the device reports every few seconds). */
  function report(id: string, over: Partial<TelemetrySample> = {}, advanceMs = 0): void {
    now += advanceMs;
    fleet.applyTelemetry(id, [sample(now, over)]);
  }
  function connect(id: string, r?: RunnerStatus): void {
    fleet.applyStatus(id, online(now, r));
  }
  async function rows(deviceId?: string) {
    await alerts.flush();
    return db.prisma.alert.findMany({ where: deviceId ? { deviceId } : {}, orderBy: { startedAt: "asc" } });
  }
  const kinds = (list: AlertDto[]) => list.map((a) => a.kind).sort();

  it("opens a temperature alert above the threshold and clears it only after the hold below threshold minus hysteresis", async () => {
    connect("pi-a");
    report("pi-a", { socTempC: 79.9 });
    expect(alerts.activeCount()).toBe(0);

    report("pi-a", { socTempC: 86.2 }, 1000);
    const startedAt = now;
    expect(alerts.active()).toEqual([
      {
        id: expect.any(String),
        deviceId: "pi-a",
        deviceName: "name-pi-a",
        kind: "temperature",
        message: "SoC 86.2 °C (threshold 80 °C).",
        startedAt,
        clearedAt: null,
      },
    ]);
    expect(changes).toHaveLength(1);

    // Inside the band (75..80 °C): stays open however long it lasts.
    report("pi-a", { socTempC: 77 }, 1000);
    report("pi-a", { socTempC: 76 }, HOLD * 2);
    expect(alerts.activeCount()).toBe(1);

    // Below 75 °C: clears once that held for the whole hold.
    report("pi-a", { socTempC: 74.9 }, 1000);
    const coolFrom = now;
    report("pi-a", { socTempC: 70 }, HOLD - 1);
    expect(alerts.activeCount()).toBe(1);
    report("pi-a", { socTempC: 70 }, 1);
    expect(alerts.activeCount()).toBe(0);
    expect(changes).toHaveLength(2);
    expect(changes[1]).toMatchObject({ kind: "temperature", startedAt, clearedAt: coolFrom + HOLD });

    const stored = await rows();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.startedAt.getTime()).toBe(startedAt);
    expect(stored[0]!.clearedAt?.getTime()).toBe(coolFrom + HOLD);
  });

  it("keeps one alert while a value flaps around the threshold", async () => {
    connect("pi-a");
    for (let i = 0; i < 20; i++) report("pi-a", { socTempC: i % 2 === 0 ? 81 : 70 }, 5000);
    expect(alerts.activeCount()).toBe(1);
    expect(changes).toHaveLength(1);
    expect(await rows()).toHaveLength(1);
    // Then it stays cool: cleared once.
    for (let i = 0; i < 8; i++) report("pi-a", { socTempC: 70 }, 5000);
    expect(alerts.activeCount()).toBe(0);
    const stored = await rows();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.clearedAt).not.toBeNull();
  });

  it("opens throttled and under_voltage from the 'now' bits only, and clears each after the hold", async () => {
    connect("pi-a");
    // Since-boot bits, frequency capping and the soft temperature limit are not alerts.
    report("pi-a", { throttle: decodeThrottle(0x50000 | 0x2 | 0x8) });
    expect(alerts.activeCount()).toBe(0);

    report("pi-a", { throttle: decodeThrottle(0x50005) }, 1000);
    expect(kinds(alerts.active())).toEqual(["throttled", "under_voltage"]);
    expect(alerts.active().find((a) => a.kind === "under_voltage")!.message).toContain("0x50005");

    // Under-voltage goes, throttling stays.
    report("pi-a", { throttle: decodeThrottle(0x50004) }, 1000);
    report("pi-a", { throttle: decodeThrottle(0x50004) }, HOLD);
    expect(kinds(alerts.active())).toEqual(["throttled"]);

    report("pi-a", { throttle: decodeThrottle(0x50000) }, 1000);
    report("pi-a", { throttle: decodeThrottle(0x50000) }, HOLD);
    expect(alerts.activeCount()).toBe(0);
    const stored = await rows();
    expect(stored.map((r) => [r.kind, r.clearedAt !== null])).toEqual(
      expect.arrayContaining([
        ["throttled", true],
        ["under_voltage", true],
      ]),
    );
  });

  it("opens disk_low below the free share and clears it 2 points above", async () => {
    connect("pi-a");
    report("pi-a", { diskTotalBytes: 100 * GiB, diskFreeBytes: 9.5 * GiB });
    expect(alerts.active()[0]).toMatchObject({ kind: "disk_low", message: "Disk 9.5% free: 9.5 GiB of 100 GiB (threshold 10%)." });
    // 11 % is not enough to clear.
    report("pi-a", { diskFreeBytes: 11 * GiB }, 1000);
    report("pi-a", { diskFreeBytes: 11 * GiB }, HOLD * 2);
    expect(alerts.activeCount()).toBe(1);
    report("pi-a", { diskFreeBytes: 12 * GiB }, 1000);
    report("pi-a", { diskFreeBytes: 12 * GiB }, HOLD);
    expect(alerts.activeCount()).toBe(0);
  });

  it("never fires on null values, and null neither clears nor advances a hold", async () => {
    connect("pi-a");
    for (let i = 0; i < 5; i++) {
      report("pi-a", { socTempC: null, throttle: null, diskFreeBytes: null, diskTotalBytes: null }, 1000);
    }
    report("pi-a", { diskTotalBytes: 0, diskFreeBytes: 0 }, 1000);
    expect(alerts.activeCount()).toBe(0);
    expect(await rows()).toHaveLength(0);

    report("pi-a", { socTempC: 90 }, 1000);
    report("pi-a", { socTempC: 60 }, 1000); // the hold starts
    report("pi-a", { socTempC: null }, HOLD); // no longer readable: the hold starts over
    report("pi-a", { socTempC: null }, HOLD);
    expect(alerts.activeCount()).toBe(1);
    report("pi-a", { socTempC: 60 }, 1000);
    report("pi-a", { socTempC: 60 }, HOLD);
    expect(alerts.activeCount()).toBe(0);
  });

  it("judges only the newest sample: a catch-up batch of old hot samples does not fire", async () => {
    connect("pi-a");
    report("pi-a", {}, 1000);
    fleet.applyTelemetry("pi-a", [sample(now - 60_000, { socTempC: 95 }), sample(now - 59_000, { socTempC: 95 })]);
    expect(alerts.activeCount()).toBe(0);
  });

  it("opens offline on a last will and on silence, not on a clean shutdown, and clears after the device is back for the hold", async () => {
    connect("pi-a");
    connect("pi-b");
    report("pi-a");
    report("pi-b");

    // A clean shutdown is not an alert.
    fleet.applyStatus("pi-b", { state: "offline", reason: "shutdown", ts: now });
    expect(alerts.activeCount()).toBe(0);

    // The last will is.
    now += 1000;
    fleet.applyStatus("pi-a", { state: "offline", reason: "lost" });
    expect(alerts.active()).toEqual([expect.objectContaining({ deviceId: "pi-a", kind: "offline", startedAt: now })]);
    expect(alerts.active()[0]!.message).toMatch(/last will/);

    // Back, but dropping again within the hold: still the same one alert.
    now += 5000;
    connect("pi-a");
    report("pi-a", {}, HOLD / 2);
    fleet.applyStatus("pi-a", { state: "offline", reason: "lost" });
    now += 1000;
    connect("pi-a");
    report("pi-a", {}, HOLD - 1);
    expect(alerts.activeCount()).toBe(1);
    // tick() completes the hold without new data.
    now += 1;
    alerts.tick();
    expect(alerts.activeCount()).toBe(0);
    expect(changes.map((c) => [c.kind, c.clearedAt === null])).toEqual([
      ["offline", true],
      ["offline", false],
    ]);

    // Silence (no last will reached us): the fleet marks it stale.
    report("pi-b", {}, 1000);
    expect(fleet.get("pi-b")!.online).toBe(true);
    now += STALE + 1;
    fleet.expireStale();
    const silent = alerts.active({ deviceId: "pi-b" });
    expect(silent).toEqual([expect.objectContaining({ kind: "offline" })]);
    expect(silent[0]!.message).toMatch(/nothing received for 60 s/);
    // pi-a went silent too (a second alert after the cleared one).
    expect(kinds(alerts.active({ deviceId: "pi-a" }))).toEqual(["offline"]);
    expect(await rows()).toHaveLength(3);
  });

  it("opens crash_loop from the runner state and clears it only once the runner stays up", async () => {
    connect("pi-a");
    fleet.applyEvent("pi-a", {
      kind: "runner.state",
      ts: now,
      runner: runner("crash_loop", { restarts: 5, lastError: "exit code 1\nmore" }),
    });
    expect(alerts.active()).toEqual([
      expect.objectContaining({ kind: "crash_loop", message: "The runner keeps crashing (5 restarts): exit code 1" }),
    ]);
    // The agent retries now and then: starting and crashed again do not clear it.
    now += HOLD * 2;
    fleet.applyEvent("pi-a", { kind: "runner.state", ts: now, runner: runner("starting", { restarts: 6 }) });
    now += HOLD * 2;
    alerts.tick();
    fleet.applyEvent("pi-a", { kind: "runner.state", ts: now, runner: runner("crashed", { restarts: 6 }) });
    now += HOLD * 2;
    alerts.tick();
    fleet.applyEvent("pi-a", { kind: "runner.state", ts: now, runner: runner("crash_loop", { restarts: 7 }) });
    expect(alerts.activeCount()).toBe(1);
    // Ready for the hold: cleared.
    fleet.applyEvent("pi-a", { kind: "runner.state", ts: now, runner: runner("ready", { restarts: 8 }) });
    now += HOLD;
    alerts.tick();
    expect(alerts.activeCount()).toBe(0);
    expect(await rows()).toHaveLength(1);
  });

  it("keeps at most one open alert per device and kind, with one row each", async () => {
    connect("pi-a");
    connect("pi-b");
    for (let i = 0; i < 10; i++) {
      report("pi-a", { socTempC: 90, throttle: decodeThrottle(0x5) }, 1000);
      report("pi-b", { socTempC: 90 });
    }
    expect(alerts.activeCount()).toBe(4);
    expect(alerts.active({ deviceId: "pi-b" }).map((a) => a.kind)).toEqual(["temperature"]);
    expect(alerts.activeByKind()).toEqual({ offline: 0, throttled: 1, under_voltage: 1, temperature: 2, disk_low: 0, crash_loop: 0 });
    const stored = await rows();
    expect(stored).toHaveLength(4);
    expect(new Set(stored.map((r) => `${r.deviceId}:${r.kind}`)).size).toBe(4);

    const metrics = new Metrics(fleet);
    metrics.trackAlerts(alerts);
    const text = metrics.render();
    expect(text).toContain('orchard_alerts_active{kind="temperature"} 2');
    expect(text).toContain('orchard_alerts_active{kind="offline"} 0');
  });

  it("loads open alerts after a restart: no duplicates, an offline device keeps its alert, a device back in good shape clears", async () => {
    connect("pi-a");
    connect("pi-b");
    report("pi-a", { socTempC: 90 });
    report("pi-b");
    fleet.applyStatus("pi-b", { state: "offline", reason: "lost" });
    expect(kinds(alerts.active())).toEqual(["offline", "temperature"]);
    await fleet.flush();
    await alerts.close();

    // The server restarts.
    now += 10_000;
    await start();
    expect(kinds(alerts.active())).toEqual(["offline", "temperature"]);
    expect(alerts.activeCount()).toBe(2);

    // pi-a comes back, still hot for a while: the same alert, no second one.
    connect("pi-a");
    report("pi-a", { socTempC: 91 }, 1000);
    expect(changes).toHaveLength(0);
    // The retained last will of pi-b is delivered again: still one offline alert.
    fleet.applyStatus("pi-b", { state: "offline", reason: "lost" });
    expect(alerts.activeCount()).toBe(2);

    // pi-a cools down: cleared; pi-b stays offline and keeps its alert.
    report("pi-a", { socTempC: 60 }, 1000);
    report("pi-a", { socTempC: 60 }, HOLD);
    alerts.tick();
    expect(alerts.active()).toEqual([expect.objectContaining({ deviceId: "pi-b", kind: "offline" })]);
    const stored = await rows();
    expect(stored).toHaveLength(2);
    expect(stored.find((r) => r.kind === "temperature")!.clearedAt?.getTime()).toBe(now);
    expect(stored.find((r) => r.kind === "offline")!.clearedAt).toBeNull();
  });

  it("raises offline for a device that was online before a restart and does not come back within the stale window", async () => {
    connect("pi-a");
    connect("pi-b");
    await fleet.flush(); // the database now says both are online
    await alerts.close();

    now += 10_000;
    await start();
    connect("pi-a"); // pi-a comes back; pi-b never does
    report("pi-a");
    now += STALE - 1;
    alerts.tick();
    expect(alerts.activeCount()).toBe(0);
    now += 1;
    report("pi-a");
    alerts.tick();
    expect(alerts.active()).toEqual([
      expect.objectContaining({ deviceId: "pi-b", kind: "offline", message: expect.stringMatching(/since the server restarted/) }),
    ]);
  });

  it("lists active and cleared alerts newest first, by device, a page at a time", async () => {
    connect("pi-a");
    connect("pi-b");
    // pi-a: 3 temperature alerts, the first two cleared; pi-b: one open disk alert.
    for (let i = 0; i < 3; i++) {
      report("pi-a", { socTempC: 90 }, 60_000);
      if (i < 2) {
        report("pi-a", { socTempC: 50 }, 1000);
        report("pi-a", { socTempC: 50 }, HOLD);
      }
    }
    report("pi-b", { diskFreeBytes: GiB }, 1000);
    await alerts.flush();

    const all = await alerts.list({ limit: 100 });
    expect(all.items.map((a) => [a.deviceId, a.kind, a.clearedAt === null])).toEqual([
      ["pi-b", "disk_low", true],
      ["pi-a", "temperature", true],
      ["pi-a", "temperature", false],
      ["pi-a", "temperature", false],
    ]);
    expect(all.nextCursor).toBeNull();
    expect(all.items[0]!.deviceName).toBe("name-pi-b");

    const active = await alerts.list({ limit: 100, activeOnly: true });
    expect(active.items.map((a) => a.id).sort()).toEqual(
      alerts
        .active()
        .map((a) => a.id)
        .sort(),
    );

    const first = await alerts.list({ deviceId: "pi-a", limit: 2 });
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).not.toBeNull();
    const second = await alerts.list({ deviceId: "pi-a", limit: 2, cursor: first.nextCursor! });
    expect(second.items).toHaveLength(1);
    expect(second.nextCursor).toBeNull();
    expect([...first.items, ...second.items].map((a) => a.id)).toEqual(all.items.filter((a) => a.deviceId === "pi-a").map((a) => a.id));

    await expect(alerts.list({ limit: 10, cursor: "nonsense" })).rejects.toThrow(AppError);
  });

  it("forgets a removed device's alerts", async () => {
    connect("pi-a");
    report("pi-a", { socTempC: 95 });
    await alerts.flush();
    await db.prisma.device.delete({ where: { id: "pi-a" } });
    fleet.removed("pi-a");
    expect(alerts.activeCount()).toBe(0);
    expect(await rows()).toHaveLength(0);
  });

  it("retries a write that failed and never throws into the fleet's ingestion", async () => {
    connect("pi-a");
    const create = vi.spyOn(db.prisma.alert, "create").mockRejectedValueOnce(new Error("database is down"));
    expect(() => report("pi-a", { socTempC: 95 })).not.toThrow();
    await alerts.flush();
    expect(await db.prisma.alert.count()).toBe(0);
    expect(alerts.activeCount()).toBe(1); // known in memory meanwhile

    alerts.tick(); // retries
    expect(await rows()).toHaveLength(1);
    expect(create).toHaveBeenCalledTimes(2);
    create.mockRestore();
  });
});
