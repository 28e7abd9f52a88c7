import { PGlite } from "@electric-sql/pglite";
import { describe, expect, it } from "vitest";
import { createPostgresDatabase } from "../../../test/db.ts";
import { MIGRATIONS_DIR, openDatabase } from "./client.ts";
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

/** Every column of the public tables as "table.column type null?" lines, in a stable order. */
async function schemaOf(query: <T>(sql: string) => Promise<T[]>): Promise<string[]> {
  const rows = await query<{ t: string; c: string; type: string; nullable: string }>(
    `SELECT table_name::text AS t, column_name::text AS c, data_type::text AS type, is_nullable::text AS nullable
       FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name`,
  );
  return rows.map((r) => `${r.t}.${r.c} ${r.type}${r.nullable === "YES" ? " null" : ""}`);
}

describe.skipIf(!process.env.ORCHARD_TEST_POSTGRES_URL)("migrate on PostgreSQL (ORCHARD_TEST_POSTGRES_URL)", () => {
  it("Prisma's pg adapter cannot read PostgreSQL's `name` type (prisma/orm#27403), which `prisma migrate deploy` needs", async () => {
    // Why Orchard applies migrations itself. If this starts passing, the adapter maps `name`
    // and `prisma migrate deploy` could replace migrate.ts.
    const db = await openDatabase({ databaseUrl: await createPostgresDatabase(), dataDir: null });
    try {
      await expect(db.prisma.$queryRawUnsafe("SELECT current_database() AS n")).rejects.toThrow(/deserialize column of type 'name'/);
    } finally {
      await db.close();
    }
  });

  it("applies the same history through pg, and PostgreSQL ends with the same schema as PGlite; Prisma then reads and writes it", async () => {
    const url = await createPostgresDatabase();
    const pgDb = await openDatabase({ databaseUrl: url, dataDir: null });
    const lite = await openDatabase({ dataDir: null });
    try {
      const migrations = await readMigrations(MIGRATIONS_DIR);
      expect(pgDb.migration.applied).toEqual(migrations.map((x) => x.name));
      const pgSchema = await schemaOf((sql) => pgDb.prisma.$queryRawUnsafe(sql));
      expect(pgSchema.length).toBeGreaterThan(50);
      expect(pgSchema).toEqual(await schemaOf((sql) => lite.prisma.$queryRawUnsafe(sql)));
      // The client works on what the migrator built.
      const user = await pgDb.prisma.user.create({ data: { username: "migrate-check", passwordHash: "x" } });
      expect(await pgDb.prisma.user.findUnique({ where: { id: user.id } })).toMatchObject({ username: "migrate-check" });
    } finally {
      await pgDb.close();
      await lite.close();
    }
    // A second start applies nothing.
    const again = await openDatabase({ databaseUrl: url, dataDir: null });
    expect(again.migration).toEqual({ applied: [], alreadyApplied: (await readMigrations(MIGRATIONS_DIR)).length });
    await again.close();
  });
});
