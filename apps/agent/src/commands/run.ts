/** `orchard-agent run`: the long-running agent, until SIGTERM or SIGINT. */
import { loadTrust } from "../lib/trust.js";
import { Agent } from "../agent/agent.js";
import { loadAgentFile } from "../config/agent-file.js";
import type { RunCommand } from "../config/cli.js";
import { ensurePrivateDir } from "../lib/atomic-fs.js";
import { acquireDataDirLock } from "../lib/data-dir-lock.js";
import type { Logger } from "../lib/logger.js";

export async function runCommand(command: RunCommand, logger: Logger): Promise<number> {
  const enrollment = await loadAgentFile(command.dataDir, logger);
  const { tightenedFrom } = await ensurePrivateDir(command.dataDir);
  if (tightenedFrom !== null) logger.warn("data dir was readable by other users; set it to 0700", { dir: command.dataDir });
  // One agent per data directory (a second one is refused: DataDirLockedError); released on every exit.
  const lock = await acquireDataDirLock(command.dataDir);
  process.once("exit", () => lock.release());

  // The CA enrollment was given (--ca), for https:// and mqtts://.
  const trust = await loadTrust(enrollment.tls?.caFile ?? null);
  const agent = new Agent({
    enrollment,
    trust,
    dataDir: command.dataDir,
    runner: command.runner,
    telemetryIntervalMs: command.telemetryIntervalMs,
    chatQueueLimit: command.chatQueueLimit,
    modelsQuotaBytes: command.modelsQuotaBytes,
    logger,
  });

  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.removeListener("SIGTERM", onSignal);
      process.removeListener("SIGINT", onSignal);
      // A second signal while shutting down means "now": the runner notices its stdin closing.
      const force = (again: NodeJS.Signals) => {
        logger.warn("second signal during shutdown; exiting immediately", { signal: again });
        process.exit(1);
      };
      process.once("SIGTERM", force);
      process.once("SIGINT", force);
      resolve(signal);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });

  await agent.start();
  const signal = await stopSignal;
  await agent.shutdown(signal);
  lock.release();
  return 0;
}
