/**
 * Databases for tests: an in-memory PGlite always, and a fresh database on a real
 * PostgreSQL server when ORCHARD_TEST_POSTGRES_URL points at one (.ci/run starts
 * one on loopback), so every DB-backed test runs against both.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { openDatabase, type Database } from "../src/server/db/client.ts";

export type DbKind = "pglite" | "postgresql";

export const DB_KINDS: DbKind[] = process.env.ORCHARD_TEST_POSTGRES_URL ? ["pglite", "postgresql"] : ["pglite"];

/** Creates an empty PostgreSQL database and returns its URL. */
export async function createPostgresDatabase(): Promise<string> {
  const adminUrl = process.env.ORCHARD_TEST_POSTGRES_URL;
  if (!adminUrl) throw new Error("ORCHARD_TEST_POSTGRES_URL is not set");
  const name = `orchard_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function openTestDatabase(kind: DbKind): Promise<Database> {
  if (kind === "pglite") return openDatabase({ dataDir: null });
  return openDatabase({ databaseUrl: await createPostgresDatabase(), dataDir: null });
}
