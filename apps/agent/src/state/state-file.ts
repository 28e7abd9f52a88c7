/**
 * state.json: what a running agent is doing (broker connection, runner state,
 * telemetry), written atomically at most every few seconds, so `orchard-agent
 * status` (another process) can show it. It never contains a credential.
 */
import { readFile } from "node:fs/promises";
import { RunnerStatus } from "@orchard/contracts";
import { z } from "zod";
import { STATE_FILE_MODE } from "../config/paths.js";
import { writeFileAtomic } from "../lib/atomic-fs.js";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";

const ms = z.number().int().nonnegative();

export const AgentStateFile = z.object({
  version: z.literal(1),
  pid: z.number().int().positive(),
  agentVersion: z.string(),
  deviceId: z.string(),
  startedAt: ms,
  updatedAt: ms,
  /** False once the agent has shut down cleanly. */
  running: z.boolean(),
  connection: z.object({
    state: z.enum(["connecting", "connected", "disconnected", "stopped"]),
    since: ms,
    lastConnectedAt: ms.nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: ms.nullable(),
    /** The broker URL without credentials. */
    url: z.string(),
  }),
  runner: RunnerStatus.extend({ badLines: z.number().int().nonnegative() }),
  telemetry: z.object({
    intervalMs: ms,
    lastSampleAt: ms.nullable(),
    lastPublishedAt: ms.nullable(),
    buffered: z.number().int().nonnegative(),
    dropped: z.number().int().nonnegative(),
  }),
});
export type AgentStateFile = z.infer<typeof AgentStateFile>;

/**
 * Coalesces updates into at most one atomic write per `minIntervalMs`, one write
 * at a time, always writing the newest snapshot.
 */
export class StateFileWriter {
  #latest: AgentStateFile | null = null;
  #lastWriteAt = -Infinity;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #dirty = false;

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly minIntervalMs = 2_000,
    private readonly clock: Clock = systemClock,
  ) {}

  update(state: AgentStateFile): void {
    this.#latest = state;
    this.#dirty = true;
    if (this.#timer || this.#writing) return;
    const wait = this.#lastWriteAt + this.minIntervalMs - this.clock.now();
    if (wait <= 0) {
      void this.#write();
    } else {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        void this.#write();
      }, wait);
    }
  }

  /** Writes the newest snapshot now (shutdown), waiting for a write in progress first. */
  async flush(state?: AgentStateFile): Promise<void> {
    if (state) {
      this.#latest = state;
      this.#dirty = true;
    }
    // Until the newest snapshot is on disk: a write that was in progress may hand over to
    // another one (it re-schedules what arrived meanwhile), so wait for that one too.
    while (this.#writing || this.#dirty) {
      if (this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
      if (this.#writing) await this.#writing;
      else await this.#write();
    }
  }

  async #write(): Promise<void> {
    if (!this.#latest || this.#writing) return;
    const snapshot = this.#latest;
    this.#dirty = false;
    this.#lastWriteAt = this.clock.now();
    this.#writing = writeFileAtomic(this.file, `${JSON.stringify(AgentStateFile.parse(snapshot), null, 2)}\n`, { mode: STATE_FILE_MODE })
      .catch((error: unknown) => this.logger.warn("could not write the state file", { file: this.file, error }))
      .finally(() => {
        this.#writing = null;
      });
    await this.#writing;
    // Updates that arrived during the write go out on the normal schedule.
    if (this.#dirty && this.#latest && !this.#timer) this.update(this.#latest);
  }
}

/** Reads state.json; null when there is none (the agent never ran with this data dir). */
export async function readStateFile(file: string): Promise<AgentStateFile | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  const parsed = AgentStateFile.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is not a state file this agent understands: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
