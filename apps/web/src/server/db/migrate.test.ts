import { PGlite } from "@electric-sql/pglite";
import { describe, expect, it } from "vitest";
import { MIGRATIONS_DIR } from "./client.ts";
import { migrate, readMigrations, type Migration, type SqlConnection } from "./migrate.ts";

function connection(db: PGlite): SqlConnection {
  return {
    exec: async (sql) => void (await db.exec(sql)),
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
  };
}

const m = (name: string, sql: string): Migration => ({ name, sql, checksum: `sum-${sql}` });

describe("migrate", () => {
  it("applies the project's migration history once", async () => {
    const db = new PGlite();
    const migrations = await readMigrations(MIGRATIONS_DIR);
    expect(migrations.map((x) => x.name)).toContain("0001_init");
    const first = await migrate(connection(db), migrations, { advisoryLock: false });
    expect(first.applied).toEqual(migrations.map((x) => x.name));
    const second = await migrate(connection(db), migrations, { advisoryLock: false });
    expect(second).toEqual({ applied: [], alreadyApplied: migrations.length });
    const tables = await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    expect(tables.rows.map((r) => r.tablename)).toEqual(expect.arrayContaining(["Device", "TelemetrySample", "User", "Session"]));
    await db.close();
  });

  it("rolls back a failing migration and keeps the ones before it", async () => {
    const db = new PGlite();
    const good = m("0001_a", "CREATE TABLE a (x int);");
    const bad = m("0002_b", "CREATE TABLE b (x int); SELECT * FROM does_not_exist;");
    await expect(migrate(connection(db), [good, bad], { advisoryLock: false })).rejects.toThrow(
      /migration 0002_b failed: .*does_not_exist/,
    );
    const tables = (await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).rows.map(
      (r) => r.tablename,
    );
    expect(tables).toContain("a");
    expect(tables).not.toContain("b");
    await db.close();
  });

  it("refuses a migration that changed after it was applied, and an unknown newer one", async () => {
    const db = new PGlite();
    await migrate(connection(db), [m("0001_a", "CREATE TABLE a (x int);")], { advisoryLock: false });
    await expect(migrate(connection(db), [m("0001_a", "CREATE TABLE a (y int);")], { advisoryLock: false })).rejects.toThrow(
      /0001_a was changed after it was applied/,
    );
    await expect(migrate(connection(db), [], { advisoryLock: false })).rejects.toThrow(/written by a newer version/);
    await db.close();
  });
});
