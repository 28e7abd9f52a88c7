/** `orchard-agent enroll`: exchange a dashboard token for this device's identity and credentials. */
import { access } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { loadAgentFile, saveAgentFile } from "../config/agent-file.js";
import type { EnrollCommand } from "../config/cli.js";
import { dataPaths } from "../config/paths.js";
import { requestEnrollment } from "../enroll/enroll.js";
import { ensurePrivateDir, writeFileAtomic } from "../lib/atomic-fs.js";
import type { Logger } from "../lib/logger.js";
import { loadTrust, readCaFile } from "../lib/trust.js";
import { AGENT_VERSION } from "../version.js";

export class AlreadyEnrolledError extends Error {
  override readonly name = "AlreadyEnrolledError";
}

export async function enrollCommand(command: EnrollCommand, logger: Logger, out: (line: string) => void): Promise<number> {
  const paths = dataPaths(command.dataDir);
  if (
    !command.force &&
    (await access(paths.agentFile).then(
      () => true,
      () => false,
    ))
  ) {
    const existing = await loadAgentFile(paths.dir).catch(() => null);
    const who = existing ? `device ${existing.name} (${existing.deviceId}) of ${existing.serverUrl}` : "a device";
    throw new AlreadyEnrolledError(
      `${paths.dir} is already enrolled as ${who}; pass --force to replace that identity, or use another --data-dir`,
    );
  }

  logger.info("enrolling", { server: command.serverUrl, hostname: os.hostname(), arch: os.arch() });
  // A bad CA file is refused before the token is spent.
  const trust = await loadTrust(command.caFile);
  const response = await requestEnrollment({
    trust,
    serverUrl: command.serverUrl,
    token: command.token,
    hostname: os.hostname(),
    arch: os.arch(),
    agentVersion: AGENT_VERSION,
  });
  // The CA is kept in the data dir, so run does not depend on where the file came from.
  let caFile: string | undefined;
  if (command.caFile !== null) {
    await ensurePrivateDir(paths.dir);
    caFile = path.join(paths.dir, "ca.crt");
    await writeFileAtomic(caFile, `${(await readCaFile(command.caFile)).join("\n")}\n`, { mode: 0o644 });
  }
  const file = await saveAgentFile(
    paths.dir,
    {
      version: 1,
      serverUrl: command.serverUrl,
      deviceId: response.deviceId,
      name: response.name,
      mqtt: { url: response.mqttUrl, username: response.mqttUsername, password: response.mqttPassword },
      enrolledAt: new Date().toISOString(),
      // Servers older than rollouts send none: `run` fetches it once (GET /api/device/artifact-key).
      ...(response.artifactPublicKey ? { artifactPublicKey: response.artifactPublicKey } : {}),
      ...(caFile ? { tls: { caFile } } : {}),
    },
    logger,
  );
  out(`enrolled as ${response.name} (${response.deviceId}) with ${command.serverUrl}`);
  out(`credentials saved to ${file} (mode 0600)`);
  if (caFile) out(`trusting the CA in ${caFile} for the server and the broker`);
  out(`start the agent with: orchard-agent run --data-dir ${paths.dir}`);
  return 0;
}
