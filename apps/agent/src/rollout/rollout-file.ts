/**
 * rollout.json: the device's rollout state machine on disk. The runner writes it
 * (atomically) before it takes each transition, so after a SIGKILL or a power cut
 * the agent reads where it was and carries on from there: the state a record holds
 * is the step to do (again) next.
 *
 * It holds the rollout in hand (`current`, terminal once it ended) and a short
 * history of earlier ones, so a re-delivered rollout.apply is answered with its
 * state instead of starting again, and a rollback of an older rollout finds its model.
 */
import { readFile } from "node:fs/promises";
import { ArtifactId, HealthGate, RolloutDeviceState, RolloutError, RolloutId, SignedManifest } from "@orchard/contracts";
import { z } from "zod";
import { writeFileAtomic } from "../lib/atomic-fs.js";
import type { Logger } from "../lib/logger.js";
import { ModelEntry } from "./model-store.js";

const ms = z.number().int().nonnegative();
const CommandId = z.string().min(1).max(64);

export const RolloutRecord = z.object({
  rolloutId: RolloutId,
  /** The rollout.apply this run answers. */
  commandId: CommandId,
  /** The server's try (rollout.apply `attempt`): a higher one after a bad end is a retry, the same or lower a re-delivery. */
  serverAttempt: z.number().int().min(1),
  artifactId: ArtifactId,
  signed: SignedManifest,
  downloadUrl: z.string().min(1).max(2000),
  health: HealthGate,
  state: RolloutDeviceState,
  /** Download attempts in this run. */
  attempt: z.number().int().nonnegative(),
  error: RolloutError.nullable(),
  /** The pointer as it was when activating switched it: what a failure switches back to. */
  before: z.object({ active: ModelEntry.nullable(), previous: ModelEntry.nullable() }).nullable(),
  /** A terminal state's work (switching back, deleting what is no longer kept) is done and reported. */
  finished: z.boolean(),
  /** Agent start-ups that found it switched but unchecked (activating, health_check): a model that takes the device down is given up on. */
  resumes: z.number().int().nonnegative(),
  startedAt: ms,
  updatedAt: ms,
});
export type RolloutRecord = z.infer<typeof RolloutRecord>;

export const RolloutSummary = RolloutRecord.pick({
  rolloutId: true,
  commandId: true,
  serverAttempt: true,
  artifactId: true,
  state: true,
  attempt: true,
  error: true,
  updatedAt: true,
});
export type RolloutSummary = z.infer<typeof RolloutSummary>;

export const ROLLOUT_HISTORY = 20;

export const RolloutFile = z.object({
  version: z.literal(1),
  current: RolloutRecord.nullable(),
  history: z.array(RolloutSummary).max(ROLLOUT_HISTORY),
});
export type RolloutFile = z.infer<typeof RolloutFile>;

export const EMPTY_ROLLOUT_FILE: RolloutFile = { version: 1, current: null, history: [] };

export function summarize(record: RolloutRecord): RolloutSummary {
  const { rolloutId, commandId, serverAttempt, artifactId, state, attempt, error, updatedAt } = record;
  return { rolloutId, commandId, serverAttempt, artifactId, state, attempt, error, updatedAt };
}

export async function loadRolloutFile(file: string, logger: Logger): Promise<RolloutFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return EMPTY_ROLLOUT_FILE;
    throw error;
  }
  try {
    return RolloutFile.parse(JSON.parse(text));
  } catch (error) {
    // Written atomically, so this is damage from outside; the models and their pointer are unaffected.
    logger.error("rollout.json is not valid; starting without a rollout in hand", { file, error });
    return EMPTY_ROLLOUT_FILE;
  }
}

export async function saveRolloutFile(file: string, value: RolloutFile): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(RolloutFile.parse(value))}\n`, { mode: 0o644 });
}
