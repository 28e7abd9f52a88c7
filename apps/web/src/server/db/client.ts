/**
 * Opens the database: embedded PGlite under the data dir by default, PostgreSQL
 * when DATABASE_URL is set. Both get the same migrations and the same Prisma
 * client (through a driver adapter; no Prisma engine binary is involved).
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaPGlite } from "pglite-prisma-adapter";
import pg from "pg";
import { PrismaClient } from "./generated/client.ts";
import { lockEmbeddedDatabase } from "./lock.ts";
import { migrate, readMigrations, type MigrationResult, type SqlConnection } from "./migrate.ts";

export type Prisma = InstanceType<typeof PrismaClient>;

export interface Database {
  prisma: Prisma;
  kind: "pglite" | "postgresql";
  migration: MigrationResult;
  /** Cheap liveness probe for /api/health. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../../prisma/migrations");

/** dataDir null opens a throwaway in-memory PGlite (tests). */
export async function openDatabase(opts: { databaseUrl?: string; dataDir: string | null }): Promise<Database> {
  const migrations = await readMigrations(MIGRATIONS_DIR);
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 10 });
    const conn = await pool.connect().catch((err: Error) => {
      throw new Error(`cannot connect to PostgreSQL at DATABASE_URL: ${err.message}`);
    });
    let migration: MigrationResult;
    try {
      migration = await migrate(pgConnection(conn), migrations, { advisoryLock: true });
    } finally {
      conn.release();
    }
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    return {
      prisma,
      kind: "postgresql",
      migration,
      ping: () =>
        pool.query("SELECT 1").then(
          () => true,
          () => false,
        ),
      close: async () => {
        await prisma.$disconnect();
        await pool.end();
      },
    };
  }

  // PGlite neither creates parent folders nor allows a second process on the same folder.
  const dir = opts.dataDir === null ? null : path.join(opts.dataDir, "db");
  if (dir) await mkdir(dir, { recursive: true });
  // PGlite does not refuse a second process on the folder itself (db/lock.ts).
  const unlock = opts.dataDir === null ? () => undefined : lockEmbeddedDatabase(opts.dataDir);
  const pglite = dir ? new PGlite(dir) : new PGlite();
  await pglite.waitReady.catch((err: Error) => {
    unlock();
    throw new Error(`cannot open the embedded database in ${dir}: ${err.message}`);
  });
  const migration = await migrate(pgliteConnection(pglite), migrations, { advisoryLock: false }).catch(async (err: unknown) => {
    await pglite.close().catch(() => undefined);
    unlock();
    throw err;
  });
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return {
    prisma,
    kind: "pglite",
    migration,
    ping: () =>
      pglite.query("SELECT 1").then(
        () => true,
        () => false,
      ),
    close: async () => {
      await prisma.$disconnect();
      await pglite.close();
      unlock();
    },
  };
}

function pgConnection(client: pg.PoolClient): SqlConnection {
  return {
    exec: async (sql) => {
      await client.query(sql);
    },
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
  };
}

function pgliteConnection(db: PGlite): SqlConnection {
  return {
    exec: async (sql) => {
      await db.exec(sql);
    },
    query: async <T>(sql: string, params?: unknown[]) => (await db.query<T>(sql, params)).rows,
  };
}
