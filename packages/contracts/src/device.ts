/**
 * Payloads a device (the agent on a Pi) publishes over MQTT, and the commands it
 * receives. Every field a device reports about hardware that may not exist on the
 * machine (thermal zone, vcgencmd) is nullable: null means "not readable here",
 * never a guess.
 */
import { z } from "zod";
import { ArtifactId, ArtifactRuntime } from "./artifact.ts";
import { BenchProgressEvent, BenchResultEvent, BenchRunCommand } from "./bench.ts";
import { ChatCancelCommand, ChatStartCommand } from "./chat.ts";
import { refuseNul, Timestamp } from "./primitives.ts";
import { RolloutAbortCommand, RolloutApplyCommand, RolloutProgressEvent, RolloutRollbackCommand, RolloutStateEvent } from "./rollout.ts";

/** Largest MQTT payload the server accepts from a device; bigger ones are dropped and counted. */
export const MAX_DEVICE_PAYLOAD_BYTES = 256 * 1024;

/**
 * Most samples in one telemetry message (a catch-up after reconnecting is split into
 * messages of this size). A sample is under 1 KiB of JSON, so a full message stays
 * well below MAX_DEVICE_PAYLOAD_BYTES.
 */
export const TELEMETRY_MAX_SAMPLES_PER_MESSAGE = 100;

const bytes = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 53);
const timestamp = Timestamp; // ms since the epoch, before 2100 (primitives.ts)
const percent = z.number().min(0).max(100);

export const RUNNER_STATES = [
  "stopped", // not started (no model configured) or shut down on purpose
  "starting", // process spawned, waiting for its `ready` line
  "ready", // loaded and serving
  "crashed", // exited unexpectedly; a restart is scheduled
  "crash_loop", // crashed too often in a short window; restarts are slowed right down
] as const;
export const RunnerState = z.enum(RUNNER_STATES);
export type RunnerState = z.infer<typeof RunnerState>;

export const RUNNER_BACKENDS = ["sim", "executorch", "llamacpp"] as const;
export const RunnerBackend = z.enum(RUNNER_BACKENDS);
export type RunnerBackend = z.infer<typeof RunnerBackend>;

export const RunnerStatus = z.object({
  state: RunnerState,
  backend: RunnerBackend,
  /** The model the runner reports in its `ready` line (for `sim`, a label saying it is simulated). */
  model: z.string().max(256).nullable(),
  pid: z.number().int().positive().nullable(),
  rssBytes: bytes.nullable(),
  maxContext: z.number().int().positive().nullable(),
  loadMs: z.number().nonnegative().nullable(),
  /** Restarts since the agent started. */
  restarts: z.number().int().nonnegative(),
  /** Why the runner last stopped or failed to start, if it did. */
  lastError: z.string().max(2000).nullable(),
  /** The runner program's own version from its `ready` line (orchard-runner, not the engine); null before the first ready. */
  version: z.string().max(64).nullable().default(null),
});
export type RunnerStatus = z.infer<typeof RunnerStatus>;

export const ActiveModel = z.object({
  name: z.string().min(1).max(256),
  /** sha256 of the model file. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .nullable(),
  // Set for models that came through a rollout; absent otherwise (and from older agents).
  artifactId: ArtifactId.nullish(),
  version: z.string().max(64).nullish(),
  runtime: ArtifactRuntime.nullish(),
});
export type ActiveModel = z.infer<typeof ActiveModel>;

/**
 * Retained on `status`. The agent's last will is the `offline` variant. The server stores
 * it (the device row), so no string in it may hold a NUL.
 */
const deviceStatus = z.discriminatedUnion("state", [
  z.object({
    state: z.literal("online"),
    ts: timestamp,
    agentVersion: z.string().min(1).max(64),
    hostname: z.string().max(255),
    arch: z.string().max(32),
    runner: RunnerStatus,
    activeModel: ActiveModel.nullable(),
    /** The model kept on disk for a rollback; absent or null when there is none. */
    previousModel: ActiveModel.nullish(),
    /**
     * The runtimes this device's runners can load (what `--capabilities` said, e.g. "sim",
     * "executorch", "llama.cpp"); absent from older agents and until the runners answered.
     */
    runtimes: z.array(z.string().min(1).max(32)).max(16).nullish(),
  }),
  z.object({
    state: z.literal("offline"),
    /** Absent in the last will (it is composed at connect time); set on a clean shutdown. */
    ts: timestamp.optional(),
    reason: z.enum(["shutdown", "lost"]),
  }),
]);
export const DeviceStatus = refuseNul(deviceStatus);
export type DeviceStatus = z.infer<typeof DeviceStatus>;

/** Decoded `vcgencmd get_throttled` bits (Raspberry Pi firmware). */
export const ThrottleFlags = z.object({
  raw: z.number().int().nonnegative().max(0xfffff),
  underVoltage: z.boolean(),
  armFreqCapped: z.boolean(),
  throttled: z.boolean(),
  softTempLimit: z.boolean(),
  underVoltageOccurred: z.boolean(),
  armFreqCappedOccurred: z.boolean(),
  throttledOccurred: z.boolean(),
  softTempLimitOccurred: z.boolean(),
});
export type ThrottleFlags = z.infer<typeof ThrottleFlags>;

/** Decodes the bits of `vcgencmd get_throttled` (e.g. 0x50005): bits 0-3 now, bits 16-19 since boot. */
export function decodeThrottle(raw: number): ThrottleFlags {
  const bit = (n: number) => (raw & (1 << n)) !== 0;
  return {
    raw,
    underVoltage: bit(0),
    armFreqCapped: bit(1),
    throttled: bit(2),
    softTempLimit: bit(3),
    underVoltageOccurred: bit(16),
    armFreqCappedOccurred: bit(17),
    throttledOccurred: bit(18),
    softTempLimitOccurred: bit(19),
  };
}

/**
 * One telemetry sample, read from the real system. Bounds reject impossible values
 * (a SoC at 10,000 °C, negative memory) instead of charting them.
 */
export const TelemetrySample = z.object({
  ts: timestamp,
  cpuPercent: percent.nullable(),
  load1: z.number().nonnegative().max(10_000),
  load5: z.number().nonnegative().max(10_000),
  load15: z.number().nonnegative().max(10_000),
  memTotalBytes: bytes,
  memAvailableBytes: bytes,
  swapTotalBytes: bytes,
  swapUsedBytes: bytes,
  diskTotalBytes: bytes.nullable(),
  diskFreeBytes: bytes.nullable(),
  socTempC: z.number().min(-40).max(150).nullable(),
  throttle: ThrottleFlags.nullable(),
  runnerRssBytes: bytes.nullable(),
  /** Decode tokens/s over the last window, null when nothing was generated in it. */
  tokensPerSecond: z.number().nonnegative().max(100_000).nullable(),
  // Fields below were added after the first agents shipped: absent means null.
  /** Prompt-feed (prefill) tokens/s over the same window as tokensPerSecond, null when nothing was prefilled in it. */
  prefillTokensPerSecond: z.number().nonnegative().max(1_000_000).nullable().default(null),
  /** Tokens generated since the previous sample (counted as they stream), for fleet throughput; null when unknown. */
  generatedTokens: z.number().int().nonnegative().max(10_000_000).nullable().default(null),
  /** Generations the device holds right now (running + queued), null when unknown. */
  activeGenerations: z.number().int().nonnegative().max(1000).nullable().default(null),
  /** ARM core clock (`vcgencmd measure_clock arm`), Hz; null where unreadable. */
  cpuFreqHz: z.number().int().nonnegative().max(10_000_000_000).nullable().default(null),
  /** Board power summed over the PMIC rails (`vcgencmd pmic_read_adc`, Pi 5 only), watts; null where unreadable. */
  boardPowerW: z.number().nonnegative().max(200).nullable().default(null),
});
export type TelemetrySample = z.infer<typeof TelemetrySample>;

/** `telemetry` carries one or more samples: samples taken while offline are sent in order after reconnecting. */
export const TelemetryMessage = refuseNul(
  z.object({
    samples: z.array(TelemetrySample).min(1).max(TELEMETRY_MAX_SAMPLES_PER_MESSAGE),
  }),
);
export type TelemetryMessage = z.infer<typeof TelemetryMessage>;

/**
 * Things that happened on a device, published on `events` at QoS 1. The server stores each
 * as jsonb, so no string in it may hold a NUL (a runner's stderr can contain one: the agent
 * replaces it, the server refuses it).
 */
const deviceEvent = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("runner.state"),
    ts: timestamp,
    runner: RunnerStatus,
  }),
  z.object({
    kind: z.literal("runner.exit"),
    ts: timestamp,
    code: z.number().int().nullable(),
    signal: z.string().max(32).nullable(),
    /** Last lines the runner wrote to stderr, to tell an operator why. */
    stderrTail: z.string().max(4000),
    restartInMs: z.number().int().nonnegative(),
  }),
  z.object({
    kind: z.literal("command.result"),
    ts: timestamp,
    commandId: z.string().min(1).max(64),
    ok: z.boolean(),
    message: z.string().max(2000),
  }),
  BenchProgressEvent,
  BenchResultEvent,
  RolloutProgressEvent,
  RolloutStateEvent,
]);
export const DeviceEvent = refuseNul(deviceEvent);
export type DeviceEvent = z.infer<typeof DeviceEvent>;

/**
 * A new broker password for this device (credential rotation, see docs/protocol.md). The agent stores
 * it as its *next* password beside the one that works, answers with `command.result` once it is on
 * disk, and from then on tries it first (falling back to the old one while the broker refuses it).
 */
export const CredentialsRotateCommand = z.object({
  type: z.literal("credentials.rotate"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  /** The new broker (and HTTP Basic) password: the same shape as the one given at enrollment. */
  password: z.string().min(16).max(256),
});
export type CredentialsRotateCommand = z.infer<typeof CredentialsRotateCommand>;

/** Commands from the server, published on `cmd` at QoS 1. Every command has an id; re-delivery is harmless. */
export const DeviceCommand = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ping"), id: z.string().min(1).max(64), ts: timestamp }),
  z.object({ type: z.literal("runner.restart"), id: z.string().min(1).max(64), ts: timestamp }),
  ChatStartCommand,
  ChatCancelCommand,
  BenchRunCommand,
  RolloutApplyCommand,
  RolloutAbortCommand,
  RolloutRollbackCommand,
  CredentialsRotateCommand,
]);
export type DeviceCommand = z.infer<typeof DeviceCommand>;
