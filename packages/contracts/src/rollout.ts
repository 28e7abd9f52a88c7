/**
 * Rollouts: getting an artifact onto chosen devices and making it their active model.
 *
 * The server plans (which devices next, given the strategy) and sends `rollout.apply`
 * on a device's `cmd` topic; the agent runs its own state machine
 * (pending → preflight → downloading → verifying → staged → activating → health_check
 * → active, or failed / rolled_back / aborted), persisting each transition before it
 * takes it, and reports on `events`: `rollout.progress` (throttled: about every 1 % or
 * 2 s while downloading) and `rollout.state` on every transition (QoS 1). A repeated
 * `rollout.apply` for a rollout the device already works on or finished is answered
 * with its current state, never with a second download.
 *
 * Downloads go over HTTP from the server: `GET {downloadUrl}/{sha256}` with the device's
 * broker credentials (Basic auth: device id and MQTT password), Range requests for
 * resume; a busy server answers 503 with Retry-After (the agent waits, it is not a failure).
 */
import { z } from "zod";
import { Timestamp } from "./primitives.ts";
import { ArtifactId, SignedManifest } from "./artifact.ts";

const timestamp = Timestamp; // ms since the epoch, before 2100 (primitives.ts)
export const RolloutId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export const ROLLOUT_DEVICE_STATES = [
  "pending", // planned, not sent yet (server) / received, not started (agent)
  "preflight", // checking disk, RAM, runtime version and profile
  "downloading",
  "verifying", // hashes done while downloading; signature and sizes checked here
  "staged", // files in their content-addressed folder, fsynced
  "activating", // old runner stopped, `current` switched, new runner starting
  "health_check", // loaded; reference prompt and tokens/s floor
  "active", // done: the device runs the new model
  "failed", // stopped before switching (preflight, download, verify): the old model never stopped running
  "rolled_back", // switched, then failed the health gate or was rolled back: the previous model is active again
  "aborted", // stopped by an operator before activation
] as const;
export const RolloutDeviceState = z.enum(ROLLOUT_DEVICE_STATES);
export type RolloutDeviceState = z.infer<typeof RolloutDeviceState>;

/** States a device is in while working; the others are terminal. */
export const ROLLOUT_ACTIVE_STATES: readonly RolloutDeviceState[] = [
  "preflight",
  "downloading",
  "verifying",
  "staged",
  "activating",
  "health_check",
];

/** Why a device's rollout failed, as a stable code (the message says it for people). */
export const ROLLOUT_ERROR_CODES = [
  "disk_full", // preflight: not enough free disk for the new files while the previous model is kept (or ENOSPC while writing)
  "insufficient_memory", // preflight: not enough RAM for the model
  "unsupported_runtime", // preflight: the runner cannot load this runtime / version / profile
  "bad_signature", // the manifest's signature does not verify with the server's key the agent enrolled with
  "bad_manifest", // the manifest is malformed (e.g. a file name with a path separator)
  "download_failed", // HTTP errors after all retries
  "hash_mismatch", // the downloaded bytes do not have the manifest's sha256 (corrupt or truncated)
  "load_failed", // the new runner did not start or load the model
  "reference_mismatch", // the reference prompt gave other token ids than the manifest's
  "too_slow", // decode tokens/s under the rollout's floor
  "timeout", // the device did not finish within the rollout's per-device timeout
  "device_offline", // the device went offline and did not come back in time (server side)
  "aborted", // an operator aborted the rollout
  "rolled_back", // an operator rolled the device back to its previous model
  "internal", // anything else; the message says what
] as const;
export const RolloutErrorCode = z.enum(ROLLOUT_ERROR_CODES);
export type RolloutErrorCode = z.infer<typeof RolloutErrorCode>;

export const RolloutError = z.object({ code: RolloutErrorCode, message: z.string().max(2000) });
export type RolloutError = z.infer<typeof RolloutError>;

/** What the health gate checks after activation. */
export const HealthGate = z.object({
  /** Run the manifest's reference prompt (and compare ids when it has them). */
  referenceCheck: z.boolean().default(true),
  /** Fail when decode tokens/s on the reference prompt is under this; null = no floor. */
  minDecodeTokS: z.number().positive().max(100_000).nullable().default(null),
  /** Loading the model and the reference prompt must finish within this. */
  timeoutMs: z
    .number()
    .int()
    .positive()
    .max(6 * 3600_000)
    .default(600_000),
});
export type HealthGate = z.infer<typeof HealthGate>;

export const RolloutApplyCommand = z.object({
  type: z.literal("rollout.apply"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  rolloutId: RolloutId,
  artifactId: ArtifactId,
  signed: SignedManifest,
  /**
   * Where the files are fetched from: `${downloadUrl}/${file.sha256}`. An absolute URL, or a
   * path ("/api/artifacts/blobs") resolved against the server URL the agent enrolled with.
   */
  downloadUrl: z.string().min(1).max(2000),
  health: HealthGate,
  /**
   * The server's try for this device, from 1 (absent = 1). A retry after a failure is the same
   * rollout with a higher attempt: a device whose rollout ended failed / rolled_back / aborted on
   * a lower attempt starts it again (from a clean download state); the same or a lower attempt is
   * a re-delivery and is answered with the current state, never with a second download.
   */
  attempt: z.number().int().min(1).max(100).optional(),
});
export type RolloutApplyCommand = z.infer<typeof RolloutApplyCommand>;

/** Stops a rollout on the device if it has not switched models yet (a switched device finishes its health gate). */
export const RolloutAbortCommand = z.object({
  type: z.literal("rollout.abort"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  rolloutId: RolloutId,
});
export type RolloutAbortCommand = z.infer<typeof RolloutAbortCommand>;

/** Switches the device back to the model it ran before the rollout (kept on disk for this). */
export const RolloutRollbackCommand = z.object({
  type: z.literal("rollout.rollback"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  rolloutId: RolloutId,
});
export type RolloutRollbackCommand = z.infer<typeof RolloutRollbackCommand>;

export const RolloutProgressEvent = z.object({
  kind: z.literal("rollout.progress"),
  ts: timestamp,
  rolloutId: RolloutId,
  artifactId: ArtifactId,
  state: RolloutDeviceState,
  bytesDone: z.number().int().nonnegative(),
  bytesTotal: z.number().int().nonnegative(),
  /** Bytes/s over the last few seconds; null before there is a measure. */
  rateBps: z.number().nonnegative().nullable(),
  etaSeconds: z.number().nonnegative().nullable(),
  /**
   * The rollout.apply \`attempt\` (the server's try) this report belongs to. The server ignores a
   * report of a lower attempt than the device's current one (a late message from an earlier try,
   * e.g. its \`failed\` re-sent after the server had retried) and counts it. Absent from agents older
   * than it: the server then falls back to the report's timestamp (docs/rollout.md).
   */
  serverAttempt: z.number().int().min(1).max(100).optional(),
});
export type RolloutProgressEvent = z.infer<typeof RolloutProgressEvent>;

export const RolloutStateEvent = z.object({
  kind: z.literal("rollout.state"),
  ts: timestamp,
  rolloutId: RolloutId,
  artifactId: ArtifactId,
  state: RolloutDeviceState,
  /** Download attempts so far (a failed hash or HTTP error retries from a clean state). */
  attempt: z.number().int().nonnegative(),
  error: RolloutError.nullable(),
  /**
   * The rollout.apply \`attempt\` (the server's try) this report belongs to. The server ignores a
   * report of a lower attempt than the device's current one (a late message from an earlier try,
   * e.g. its \`failed\` re-sent after the server had retried) and counts it. Absent from agents older
   * than it: the server then falls back to the report's timestamp (docs/rollout.md).
   */
  serverAttempt: z.number().int().min(1).max(100).optional(),
});
export type RolloutStateEvent = z.infer<typeof RolloutStateEvent>;

// ---------------------------------------------------------------- strategy (server side)

export const RolloutStrategy = z.object({
  /** Devices that go first, alone; the rest waits until they are all active. 0 = no canary. */
  canary: z.number().int().nonnegative().max(1000).default(1),
  /** After the canaries, devices in flight at once. */
  batchSize: z.number().int().positive().max(1000).default(5),
  /** Devices downloading at once (the server's uplink is shared). */
  maxConcurrentDownloads: z.number().int().positive().max(1000).default(3),
  /** Failed devices at which the rollout pauses (an operator resumes or aborts). */
  failureThreshold: z.number().int().positive().max(1000).default(1),
  /** A device that has not reached a terminal state this long after it was sent the rollout fails with `timeout`. */
  deviceTimeoutMs: z
    .number()
    .int()
    .positive()
    .max(7 * 86_400_000)
    .default(3 * 3600_000),
  /** Times a failed device is retried (a new rollout.apply) before it counts as failed. */
  retries: z.number().int().nonnegative().max(10).default(1),
  health: HealthGate.default({ referenceCheck: true, minDecodeTokS: null, timeoutMs: 600_000 }),
});
export type RolloutStrategy = z.infer<typeof RolloutStrategy>;

export const ROLLOUT_STATES = ["running", "paused", "completed", "failed", "aborted"] as const;
export const RolloutState = z.enum(ROLLOUT_STATES);
export type RolloutState = z.infer<typeof RolloutState>;

/**
 * RAM a device needs beyond the model file to load an ExecuTorch or llama.cpp model (the
 * model is mapped, the KV cache, the runner and the OS need the rest). The agent refuses a
 * model in preflight when its total RAM is under model size + this (insufficient_memory);
 * the server's rollout preflight applies the same rule to the RAM the device last reported.
 */
export const MODEL_RAM_HEADROOM_BYTES = 512 * 1024 * 1024;

/**
 * `rollouts.preflight`: whether each device can load the artifact, before a rollout starts.
 * `reasons` block the rollout (the server refuses to start it with them; the device would
 * refuse the same way every time); `notes` do not (the device's own preflight decides).
 */
export const RolloutDeviceFit = z.object({
  deviceId: z.string(),
  name: z.string(),
  online: z.boolean(),
  ok: z.boolean(),
  reasons: z.array(z.string()),
  notes: z.array(z.string()),
  /** The device runs this artifact already (it counts as done). */
  runsIt: z.boolean(),
});
export type RolloutDeviceFit = z.infer<typeof RolloutDeviceFit>;

export const RolloutPreflightDto = z.object({
  artifactId: ArtifactId,
  devices: z.array(RolloutDeviceFit),
  /** How many of `devices` can load it. */
  ok: z.number().int().nonnegative(),
});
export type RolloutPreflightDto = z.infer<typeof RolloutPreflightDto>;
