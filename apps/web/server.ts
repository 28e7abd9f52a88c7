/**
 * Orchard server entry point: reads the configuration and starts everything
 * (see src/server/app.ts). Stops cleanly on SIGINT/SIGTERM.
 *
 * Subcommands, run with the same configuration (environment) instead of starting:
 *   reset-admin-password [--password-stdin]   a new password for `admin` (src/server/reset-admin-password.ts;
 *                                             npm run reset-admin-password)
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOrchard } from "./src/server/app.ts";
import { loadEnv } from "./src/server/env.ts";

const webDir = path.dirname(fileURLToPath(import.meta.url));
const [command, ...args] = process.argv.slice(2);

try {
  if (command === "reset-admin-password") {
    const { resetAdminPasswordMain } = await import("./src/server/reset-admin-password.ts");
    process.exit(await resetAdminPasswordMain(loadEnv(process.env, webDir), args, process.stdin));
  }
  if (command !== undefined) {
    process.stderr.write(`orchard: unknown command ${command} (server.ts takes no argument to start, or reset-admin-password)\n`);
    process.exit(2);
  }
  const server = await startOrchard(loadEnv(process.env, webDir));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`received ${signal}, shutting down\n`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
} catch (err) {
  process.stderr.write(`orchard: ${(err as Error).message}\n`);
  process.exit(1);
}
