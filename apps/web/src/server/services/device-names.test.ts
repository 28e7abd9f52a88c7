/**
 * Device names are unique (device-names.ts): the migration that renames the duplicates an older
 * database has, enrollments that race for one name, and renames.
 */
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import { MIGRATIONS_DIR, type Database } from "../db/client.ts";
import { migrate, readMigrations, type SqlConnection } from "../db/migrate.ts";
import { createLogger } from "../log.ts";
import { DeviceService } from "./devices.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";
import { TelemetryStore } from "./telemetry-store.ts";

const log = createLogger("error");

function connection(db: PGlite): SqlConnection {
  return {
    exec: async (sql) => void (await db.exec(sql)),
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
  };
}

describe("migration 0009_device_names_unique", () => {
  it("renames devices that share a name or carry another device's id, first enrolled keeps it, then makes names unique", async () => {
    const db = new PGlite();
    const all = await readMigrations(MIGRATIONS_DIR);
    const at = all.findIndex((m) => m.name === "0009_device_names_unique");
    expect(at).toBeGreaterThan(0);
    await migrate(connection(db), all.slice(0, at), { advisoryLock: false });
    const long = "x".repeat(64);
    const devices: [string, string][] = [
      ["pi-aaaaaaaaaa", "kitchen"],
      ["pi-bbbbbbbbbb", "Kitchen"],
      ["pi-cccccccccc", "kitchen-2"],
      ["pi-dddddddddd", "kitchen"],
      ["pi-eeeeeeeeee", "pi-aaaaaaaaaa"],
      ["pi-ffffffffff", long],
      ["pi-gggggggggg", long],
      ["pi-hhhhhhhhhh", "pi-hhhhhhhhhh"], // its own id: fine
    ];
    for (const [i, [id, name]] of devices.entries()) {
      await db.query(`INSERT INTO "Device" (id, name, "mqttPasswordHash", "enrolledAt") VALUES ($1, $2, 'x', $3)`, [
        id,
        name,
        new Date(Date.UTC(2025, 0, 1 + i)),
      ]);
    }
    await migrate(connection(db), all, { advisoryLock: false });
    const rows = (await db.query<{ id: string; name: string }>(`SELECT id, name FROM "Device" ORDER BY "enrolledAt"`)).rows;
    expect(rows.map((r) => r.name)).toEqual([
      "kitchen",
      "Kitchen-3", // "kitchen-2" is taken by the next device
      "kitchen-2",
      "kitchen-4",
      "pi-aaaaaaaaaa-2",
      long,
      `${"x".repeat(62)}-2`,
      "pi-hhhhhhhhhh",
    ]);
    await expect(db.query(`INSERT INTO "Device" (id, name, "mqttPasswordHash") VALUES ('pi-iiiiiiiiii', 'KITCHEN', 'x')`)).rejects.toThrow(
      /Device_name_lower_key/,
    );
    await db.close();
  });
});

describe.each(DB_KINDS)("device names on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let enrollment: EnrollmentService;
  let devices: DeviceService;

  beforeAll(async () => {
    db = await openTestDatabase(kind);
  });
  afterAll(async () => {
    await db.close();
  });
  beforeEach(async () => {
    await db.prisma.device.deleteMany();
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log);
    await fleet.load();
    enrollment = new EnrollmentService(db.prisma, fleet);
    devices = new DeviceService(
      db.prisma,
      fleet,
      { onRemoved: () => undefined },
      new TelemetryStore(db.prisma, { rawHours: 24, rollupDays: 30 }, log),
    );
  });

  const enroll = async (hostname: string, deviceName?: string) => {
    const { token } = await enrollment.createToken({ ttlMinutes: 5, createdById: null, deviceName });
    return enrollment.enroll({ token, hostname, arch: "arm64", agentVersion: "1" }, "mqtt://h:1");
  };

  it("gives enrollments that race for one name distinct names", async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => enroll("pi")));
    expect(results.map((r) => r.name).sort()).toEqual(["pi", "pi-2", "pi-3", "pi-4", "pi-5", "pi-6"]);
    expect(
      fleet
        .list()
        .map((d) => d.name)
        .sort(),
    ).toEqual(["pi", "pi-2", "pi-3", "pi-4", "pi-5", "pi-6"]);
  });

  it("cuts a long hostname to a name, and refuses renames to a taken name or another device's id", async () => {
    const long = await enroll("h".repeat(200));
    expect(long.name).toBe("h".repeat(64));
    expect((await enroll("h".repeat(100))).name).toBe(`${"h".repeat(62)}-2`);
    const a = await enroll("a");
    const b = await enroll("b");
    await expect(devices.rename(b.deviceId, " A ")).rejects.toThrow('Another device is already named "a"; choose another name.');
    await expect(devices.rename(b.deviceId, a.deviceId.toUpperCase())).rejects.toThrow(
      `"${a.deviceId.toUpperCase()}" is another device's id; choose another name.`,
    );
    await expect(devices.rename(b.deviceId, "tab\there")).rejects.toThrow("A device name must not contain control characters");
    await devices.rename(b.deviceId, b.deviceId); // its own id
    await devices.rename(a.deviceId, "A");
    expect(fleet.get(a.deviceId)?.name).toBe("A");
  });
});
