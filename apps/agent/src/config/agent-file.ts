/**
 * agent.json: what enrollment gave this device (server, identity, broker
 * credentials). Written once by `enroll`, read by `run` and `status`. It holds
 * the broker password, so it is written 0600 into a 0700 directory and its
 * password never leaves this module except to the MQTT connection.
 */
import { readFile, stat } from "node:fs/promises";
import { DEVICE_ID_PATTERN } from "@orchard/contracts";
import { z } from "zod";
import { ensurePrivateDir, writeFileAtomic } from "../lib/atomic-fs.js";
import type { Logger } from "../lib/logger.js";
import { AGENT_FILE_MODE, dataPaths } from "./paths.js";

const MQTT_PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:", "tcp:", "ssl:"];

export const MqttUrl = z.string().refine((v) => URL.canParse(v) && MQTT_PROTOCOLS.includes(new URL(v).protocol), {
  error: `must be a broker URL (${MQTT_PROTOCOLS.map((p) => `${p}//`).join(", ")})`,
});

export const AgentFile = z.object({
  version: z.literal(1),
  serverUrl: z.string().url(),
  deviceId: z.string().regex(DEVICE_ID_PATTERN),
  name: z.string(),
  mqtt: z.object({
    url: MqttUrl,
    username: z.string(),
    password: z.string(),
    /**
     * A new password the server sent (credential rotation) that the broker may not accept yet: tried first,
     * `password` after it; it replaces `password` once the broker accepts it (docs/protocol.md).
     */
    nextPassword: z.string().optional(),
  }),
  enrolledAt: z.string().datetime(),
  /**
   * The server's artifact signing key (SPKI DER, base64): rollouts are refused unless their
   * manifest verifies with it. Given at enrollment; agents enrolled before rollouts fetch it once.
   */
  artifactPublicKey: z.string().min(1).max(512).optional(),
  /** A CA the agent trusts besides the system's, for https:// and mqtts:// (`enroll --ca`, copied into the data dir). */
  tls: z.object({ caFile: z.string().min(1) }).optional(),
});
export type AgentFile = z.infer<typeof AgentFile>;

export class NotEnrolledError extends Error {
  override readonly name = "NotEnrolledError";
}

export async function saveAgentFile(dataDir: string, agent: AgentFile, logger?: Logger): Promise<string> {
  const paths = dataPaths(dataDir);
  const { tightenedFrom } = await ensurePrivateDir(paths.dir);
  if (tightenedFrom !== null) {
    logger?.warn("data dir was readable by other users; set it to 0700", { dir: paths.dir, was: tightenedFrom.toString(8) });
  }
  await writeFileAtomic(paths.agentFile, `${JSON.stringify(AgentFile.parse(agent), null, 2)}\n`, { mode: AGENT_FILE_MODE });
  return paths.agentFile;
}

/** Reads and validates agent.json; every failure is a sentence an operator can act on. */
export async function loadAgentFile(dataDir: string, logger?: Logger): Promise<AgentFile> {
  const { agentFile, dir } = dataPaths(dataDir);
  let text: string;
  try {
    text = await readFile(agentFile, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new NotEnrolledError(`not enrolled: run orchard-agent enroll --server URL --token T --data-dir ${dir} first (no ${agentFile})`);
    }
    if (code === "EACCES") {
      throw new NotEnrolledError(`cannot read ${agentFile}: permission denied (run as the user that owns ${dir})`);
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new NotEnrolledError(`${agentFile} is not valid JSON: enroll again with orchard-agent enroll --force …`);
  }
  const parsed = AgentFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NotEnrolledError(
      `${agentFile} is not a valid enrollment (${issue?.path.join(".") ?? "?"}: ${issue?.message ?? "invalid"}): enroll again with orchard-agent enroll --force …`,
    );
  }
  if (logger) {
    const mode = (await stat(agentFile)).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      logger.warn("agent.json is readable by other users; it holds the broker password (chmod 600 it)", {
        file: agentFile,
        mode: mode.toString(8),
      });
    }
  }
  return parsed.data;
}

/** The broker URL without any credentials a server might have put in it. */
export function publicMqttUrl(url: string): string {
  const u = new URL(url);
  u.username = "";
  u.password = "";
  return u.toString();
}
