/**
 * Applies prisma/migrations/<name>/migration.sql in name order, once each, to
 * PGlite or PostgreSQL. Prisma's own `migrate deploy` needs an engine binary or
 * trips over PostgreSQL's `name` type with the pg adapter (prisma/orm#27403), so
 * Orchard applies the same migration history itself. Each migration runs in a
 * transaction together with its bookkeeping row; a changed migration that was
 * already applied is refused instead of silently diverging.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";

/** The little a migrator needs from a database connection. */
export interface SqlConnection {
  /** Runs one or more statements without parameters. */
  exec(sql: string): Promise<void>;
  /** Runs one statement and returns its rows. */
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: number;
}

const TABLE = "_orchard_migrations";
/** Serialises migrators that start at the same time against one PostgreSQL. */
const ADVISORY_LOCK_KEY = 727_001;

export async function readMigrations(dir: string): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

export async function migrate(db: SqlConnection, migrations: Migration[], opts: { advisoryLock: boolean }): Promise<MigrationResult> {
  await db.exec(
    `CREATE TABLE IF NOT EXISTS "${TABLE}" (name TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
  );
  if (opts.advisoryLock) await db.query(`SELECT pg_advisory_lock(${ADVISORY_LOCK_KEY})`);
  try {
    const rows = await db.query<{ name: string; checksum: string }>(`SELECT name, checksum FROM "${TABLE}"`);
    const done = new Map(rows.map((r) => [r.name, r.checksum]));
    for (const [name] of done) {
      if (!migrations.some((m) => m.name === name)) {
        throw new Error(
          `the database has migration ${name}, which this version of Orchard does not know: it was written by a newer version; upgrade Orchard instead of downgrading`,
        );
      }
    }
    const applied: string[] = [];
    for (const m of migrations) {
      const existing = done.get(m.name);
      if (existing !== undefined) {
        if (existing !== m.checksum) {
          throw new Error(`migration ${m.name} was changed after it was applied (checksum differs); add a new migration instead`);
        }
        continue;
      }
      await db.exec("BEGIN");
      try {
        await db.exec(m.sql);
        await db.query(`INSERT INTO "${TABLE}" (name, checksum) VALUES ($1, $2)`, [m.name, m.checksum]);
        await db.exec("COMMIT");
      } catch (err) {
        await db.exec("ROLLBACK");
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      applied.push(m.name);
    }
    return { applied, alreadyApplied: done.size };
  } finally {
    if (opts.advisoryLock) await db.query(`SELECT pg_advisory_unlock(${ADVISORY_LOCK_KEY})`);
  }
}
