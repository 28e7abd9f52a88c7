/**
 * Layout of the agent's data dir. Everything the agent persists lives here, so
 * one directory (systemd's StateDirectory) is all a Pi needs to keep.
 *
 *   agent.json   enrollment: server URL, device id, broker credentials (0600)
 *   state.json   what `orchard-agent run` is doing now, read by `orchard-agent status` (0644)
 *   rollout.json the rollout state machine, written before each transition (rollout/rollout-file.ts)
 *   models/      rolled-out models and the current.json pointer (rollout/model-store.ts)
 *   agent.lock   held by the running `orchard-agent run` (pid, start time): a second one is refused (lib/data-dir-lock.ts)
 */
import path from "node:path";

export interface DataPaths {
  dir: string;
  agentFile: string;
  stateFile: string;
  rolloutFile: string;
}

export function dataPaths(dir: string): DataPaths {
  const abs = path.resolve(dir);
  return {
    dir: abs,
    agentFile: path.join(abs, "agent.json"),
    stateFile: path.join(abs, "state.json"),
    rolloutFile: path.join(abs, "rollout.json"),
  };
}

/** agent.json holds the broker password: owner read/write only. */
export const AGENT_FILE_MODE = 0o600;
/** state.json holds no secret. */
export const STATE_FILE_MODE = 0o644;
