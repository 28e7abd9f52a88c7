/**
 * Reads what a test server stored, straight from its database: its PostgreSQL
 * database when it had one (DATABASE_URL, and every server in production mode), or
 * else the embedded PGlite in its data dir. PGlite allows one process per folder, so
 * for a PGlite server call this only after `server.stop()`.
 */
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import type { TestServer } from "./harness.ts";

export async function queryServerDatabase<T extends Record<string, unknown>>(
  server: Pick<TestServer, "databaseUrl" | "dataDir">,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  if (server.databaseUrl) {
    const client = new pg.Client({ connectionString: server.databaseUrl });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }
  const db = new PGlite(path.join(server.dataDir, "db"));
  try {
    return (await db.query<T>(sql, params)).rows;
  } finally {
    await db.close();
  }
}
