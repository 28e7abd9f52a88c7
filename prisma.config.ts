// Prisma CLI configuration (prisma generate, migrate diff). Orchard runs without
// any Prisma engine binary: the client uses driver adapters (PGlite or pg), and
// migrations are applied by the server's own migrator (apps/web/src/server/db/migrate.ts).
import path from "node:path";
import type { PrismaConfig } from "prisma";

// Prisma does not read .env when a config file exists, and a missing URL makes it
// try to download an engine; a placeholder is enough for generate and diff.
process.env.DATABASE_URL ??= "postgresql://orchard@127.0.0.1:5432/orchard";

export default {
  schema: path.join("prisma", "schema.prisma"),
  migrations: { path: path.join("prisma", "migrations") },
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => {
    const { PGlite } = await import("@electric-sql/pglite");
    const { PrismaPGlite } = await import("pglite-prisma-adapter");
    return new PrismaPGlite(new PGlite());
  },
} satisfies PrismaConfig;
