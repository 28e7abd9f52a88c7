/**
 * Layout of the agent's data dir. Everything the agent persists lives here, so
 * one directory (systemd's StateDirectory) is all a Pi needs to keep.
 *
 *   agent.json   enrollment: server URL, device id, broker credentials (0600)
 *   state.json   what `orchard-agent run` is doing now, read by `orchard-agent status` (0644)
 */
import path from "node:path";

export interface DataPaths {
  dir: string;
  agentFile: string;
  stateFile: string;
}

export function dataPaths(dir: string): DataPaths {
  const abs = path.resolve(dir);
  return { dir: abs, agentFile: path.join(abs, "agent.json"), stateFile: path.join(abs, "state.json") };
}

/** agent.json holds the broker password: owner read/write only. */
export const AGENT_FILE_MODE = 0o600;
/** state.json holds no secret. */
export const STATE_FILE_MODE = 0o644;
