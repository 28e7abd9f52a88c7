/**
 * `npm run migrate`: applies Orchard's migration history to DATABASE_URL (PostgreSQL)
 * or, when it is unset, to the embedded database in $ORCHARD_DATA, and exits. `npm start`
 * does the same on every start; this is for upgrades run as their own step (before
 * starting a new version, or from a deploy job).
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { openDatabase } from "./src/server/db/client.ts";
import { loadEnv } from "./src/server/env.ts";

try {
  const env = loadEnv(process.env, path.dirname(fileURLToPath(import.meta.url)));
  const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
  await db.close();
  const where = db.kind === "postgresql" ? "PostgreSQL (DATABASE_URL)" : `the embedded database in ${path.join(env.dataDir, "db")}`;
  const { applied, alreadyApplied } = db.migration;
  process.stdout.write(
    applied.length === 0
      ? `${where} is up to date (${alreadyApplied} migrations applied before)\n`
      : `applied ${applied.length} migration(s) to ${where}: ${applied.join(", ")} (${alreadyApplied} were applied before)\n`,
  );
} catch (err) {
  process.stderr.write(`orchard migrate: ${(err as Error).message}\n`);
  process.exit(1);
}
