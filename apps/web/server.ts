/**
 * Orchard server entry point: reads the configuration and starts everything
 * (see src/server/app.ts). Stops cleanly on SIGINT/SIGTERM.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOrchard } from "./src/server/app.ts";
import { loadEnv } from "./src/server/env.ts";

const webDir = path.dirname(fileURLToPath(import.meta.url));

try {
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
