/**
 * orchard-agent: parses the command line and hands over to one command.
 * Everything else lives in the subsystem folders (config, link, runner, telemetry, state).
 */
import { ConfigError, parseCommandLine } from "./config/cli.js";
import { NotEnrolledError } from "./config/agent-file.js";
import { AlreadyEnrolledError, enrollCommand } from "./commands/enroll.js";
import { runCommand } from "./commands/run.js";
import { DataDirLockedError } from "./lib/data-dir-lock.js";
import { statusCommand } from "./commands/status.js";
import { EnrollError } from "./enroll/enroll.js";
import { createLogger } from "./lib/logger.js";
import { AGENT_VERSION } from "./version.js";

const out = (line: string) => void process.stdout.write(`${line}\n`);
const fail = (message: string, code: number): number => {
  process.stderr.write(`orchard-agent: ${message}\n`);
  return code;
};

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseCommandLine(argv, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      return fail(error.message.includes("--help") ? error.message : `${error.message} (see orchard-agent --help)`, 2);
    }
    throw error;
  }
  if (command.name === "help") {
    out(command.text);
    return 0;
  }
  if (command.name === "version") {
    out(AGENT_VERSION);
    return 0;
  }

  const logger = createLogger(command.log);
  process.on("unhandledRejection", (reason) => {
    logger.error("unhandled rejection; exiting", { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
    process.exit(1);
  });

  try {
    switch (command.name) {
      case "enroll":
        return await enrollCommand(command, logger, out);
      case "run":
        return await runCommand(command, logger);
      case "status":
        return await statusCommand(command, out);
    }
  } catch (error) {
    if (
      error instanceof NotEnrolledError ||
      error instanceof EnrollError ||
      error instanceof AlreadyEnrolledError ||
      error instanceof DataDirLockedError
    ) {
      return fail(error.message, 1);
    }
    throw error;
  }
}

// Exit explicitly: after `run` shuts down, a half-closed socket must not keep the process alive.
// (stdout and stderr are synchronous for files and pipes on Linux, so nothing printed is lost.)
process.exit(await main(process.argv.slice(2)));
