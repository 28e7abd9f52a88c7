/**
 * socket.io events between the server and the dashboard. The server emits fleet
 * changes to every signed-in browser and telemetry to browsers watching a device.
 */
import { z } from "zod";
import { ActiveModel, DeviceEvent, RunnerStatus, TelemetrySample } from "./device.ts";
import { ArtifactRuntime } from "./artifact.ts";
import { BenchDeviceResult, BenchPrompt } from "./bench.ts";
import { ChatErrorCode, GenerationStats } from "./chat.ts";
import { RolloutDeviceState, RolloutError, RolloutState, RolloutStrategy } from "./rollout.ts";

/** A device tag: 1-32 characters, lower-case letters, digits and '-', starting with a letter or digit. */
export const DeviceTag = z
  .string()
  .min(1, "A tag cannot be empty.")
  .max(32, "A tag may be at most 32 characters long.")
  .regex(/^[a-z0-9][a-z0-9-]*$/, "A tag uses lower-case letters, digits and '-' (and starts with a letter or digit).");
export const MAX_DEVICE_TAGS = 16;

/** One row of the fleet table, as the server keeps it and the browser shows it. */
export const DeviceSummary = z.object({
  id: z.string(),
  name: z.string(),
  hostname: z.string().nullable(),
  arch: z.string().nullable(),
  online: z.boolean(),
  /** ms since the epoch of the last message from the device, null if it never connected. */
  lastSeenAt: z.number().nullable(),
  agentVersion: z.string().nullable(),
  runner: RunnerStatus.nullable(),
  activeModel: ActiveModel.nullable(),
  telemetry: TelemetrySample.nullable(),
  enrolledAt: z.number(),
  /** Labels to target rollouts by ("kitchen", "pi5-8gb"): lower-case letters, digits and '-'. */
  tags: z.array(z.string()).default([]),
  /** The model kept on disk for a rollback, from the device's status; null when there is none (or not reported yet). */
  previousModel: ActiveModel.nullable().default(null),
  /** The runtimes the device can load (from its status); null when it has not said. */
  runtimes: z.array(z.string()).nullable().default(null),
  /**
   * "Generating now" (throughput.ts): tokens/s the device streamed over its last telemetry interval, computed by the
   * server from its newest two samples; 0 while idle, null before its first sample.
   */
  generatingTokensPerSecond: z.number().nonnegative().nullable().default(null),
});
export type DeviceSummary = z.infer<typeof DeviceSummary>;

export const DeviceTelemetryEvent = z.object({
  deviceId: z.string(),
  samples: z.array(TelemetrySample),
});
export type DeviceTelemetryEvent = z.infer<typeof DeviceTelemetryEvent>;

export const DeviceRemovedEvent = z.object({ deviceId: z.string() });

export const DeviceEventMessage = z.object({ deviceId: z.string(), event: DeviceEvent });
export type DeviceEventMessage = z.infer<typeof DeviceEventMessage>;

/** `connect_error` data when the handshake has no valid session or API key. */
export const SOCKET_UNAUTHORIZED = "unauthorized";

/** A message of a conversation, as the dashboard shows it. */
export const ConversationMessageDto = z.object({
  id: z.string(),
  role: z.enum(["user", "assistant"]),
  content: z.string(),
  status: z.enum(["complete", "streaming", "cancelled", "error"]),
  errorCode: z.string().nullable(),
  error: z.string().nullable(),
  stats: GenerationStats.nullable(),
  createdAt: z.number(),
});
export type ConversationMessageDto = z.infer<typeof ConversationMessageDto>;

/** Errors the server adds to the device's own (ChatErrorCode) when relaying a chat. */
export const SERVER_CHAT_ERROR_CODES = [
  "device_offline", // offline when asked, or went offline during the answer
  "device_silent", // stopped reporting on the request (no heartbeat)
  "not_acknowledged", // never confirmed it received the request
  "not_saved", // the answer arrived but the server could not store it (database unavailable)
] as const;
export const RelayChatErrorCode = z.union([ChatErrorCode, z.enum(SERVER_CHAT_ERROR_CODES)]);
export type RelayChatErrorCode = z.infer<typeof RelayChatErrorCode>;

/** What a watched conversation's answer is doing (to tell a slow device from a stuck one). */
export const ChatPhase = z.enum(["sent", "queued", "prefill", "decoding"]);
export type ChatPhase = z.infer<typeof ChatPhase>;

export interface ChatStatusEvent {
  conversationId: string;
  messageId: string;
  phase: ChatPhase;
  queuePosition: number;
}
export interface ChatTokensEvent {
  conversationId: string;
  messageId: string;
  /** Chunk number from 0; a browser that sees a gap re-reads the message when it is done. */
  seq: number;
  text: string;
  /** Tokens generated so far in this answer. */
  tokens: number;
  /** When the agent read the chunk's first token from the runner (ms since epoch). */
  ts: number;
}
export interface ChatErrorEvent {
  conversationId: string;
  messageId: string;
  code: RelayChatErrorCode;
  message: string;
}

// ---------------------------------------------------------------- fleet overview

/** Fleet-wide figures right now, pushed every few seconds to every signed-in browser. */
export const FleetTotals = z.object({
  ts: z.number(),
  devicesTotal: z.number().int().nonnegative(),
  devicesOnline: z.number().int().nonnegative(),
  /** "Generating now (whole fleet)": the sum over online devices of their `generatingTokensPerSecond`. */
  tokensPerSecond: z.number().nonnegative(),
  /** Generations held by devices (running + queued), from their latest samples. */
  activeGenerations: z.number().int().nonnegative(),
  alertsActive: z.number().int().nonnegative(),
});
export type FleetTotals = z.infer<typeof FleetTotals>;

// ---------------------------------------------------------------- alerts

export const ALERT_KINDS = [
  "offline", // the device stopped reporting (last will or stale)
  "throttled", // the firmware is throttling the CPU now
  "under_voltage", // the supply is below spec now
  "temperature", // SoC temperature above the threshold
  "disk_low", // free disk below the threshold
  "crash_loop", // the runner keeps crashing
] as const;
export const AlertKind = z.enum(ALERT_KINDS);
export type AlertKind = z.infer<typeof AlertKind>;

export const AlertDto = z.object({
  id: z.string(),
  deviceId: z.string(),
  deviceName: z.string(),
  kind: AlertKind,
  /** What fired it, for people: "SoC 86.2 °C (threshold 80 °C)". */
  message: z.string(),
  startedAt: z.number(),
  /** null while the alert is active. */
  clearedAt: z.number().nullable(),
});
export type AlertDto = z.infer<typeof AlertDto>;

// ---------------------------------------------------------------- benchmarks

export const BENCH_DEVICE_STATES = ["pending", "running", "done", "failed"] as const;
export const BenchDeviceState = z.enum(BENCH_DEVICE_STATES);

export const BenchDeviceRunDto = z.object({
  deviceId: z.string(),
  deviceName: z.string(),
  state: BenchDeviceState,
  completed: z.number().int().nonnegative(),
  total: z.number().int().nonnegative(),
  error: z.string().nullable(),
  result: BenchDeviceResult.nullable(),
  startedAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
});
export type BenchDeviceRunDto = z.infer<typeof BenchDeviceRunDto>;

export const BenchRunDto = z.object({
  id: z.string(),
  name: z.string(),
  createdAt: z.number(),
  /** running until every device is done or failed. */
  state: z.enum(["running", "finished"]),
  maxNewTokens: z.number().int().positive(),
  prompts: z.array(BenchPrompt),
  devices: z.array(BenchDeviceRunDto),
});
export type BenchRunDto = z.infer<typeof BenchRunDto>;

// ---------------------------------------------------------------- runtime comparisons

export const RUNTIME_COMPARISON_STATES = ["running", "completed", "failed", "cancelled"] as const;
export const RuntimeComparisonState = z.enum(RUNTIME_COMPARISON_STATES);
export type RuntimeComparisonState = z.infer<typeof RuntimeComparisonState>;

/** What a running comparison does now: switching the device to a model, benchmarking it, putting the original back. */
export const RUNTIME_COMPARISON_PHASES = ["rolling_out", "benchmarking", "restoring", "done"] as const;
export const RuntimeComparisonPhase = z.enum(RUNTIME_COMPARISON_PHASES);
export type RuntimeComparisonPhase = z.infer<typeof RuntimeComparisonPhase>;

/** One model of a comparison: the rollout that put it on the device (null when it already ran it) and its benchmark run. */
export const RuntimeComparisonStep = z.object({
  artifactId: z.string(),
  name: z.string(),
  version: z.string(),
  runtime: ArtifactRuntime,
  rolloutId: z.string().nullable(),
  runId: z.string().nullable(),
  state: z.enum(["pending", "rolling_out", "benchmarking", "done", "failed", "skipped"]),
  error: z.string().nullable(),
});
export type RuntimeComparisonStep = z.infer<typeof RuntimeComparisonStep>;

export const RuntimeComparisonDto = z.object({
  id: z.string(),
  name: z.string(),
  deviceId: z.string(),
  deviceName: z.string(),
  state: RuntimeComparisonState,
  phase: RuntimeComparisonPhase,
  /** Index into `steps` of the model being worked on. */
  stepIndex: z.number().int().nonnegative(),
  /** The step for people: "Rolling out tiny-gguf 1 (llama.cpp)…", "Benchmarking sim-model 1 (sim): 3/10 prompts". */
  stepText: z.string(),
  /** Prompts done of the current benchmark, null outside one. */
  progress: z.object({ completed: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).nullable(),
  steps: z.array(RuntimeComparisonStep),
  originalArtifactId: z.string().nullable(),
  restoreRolloutId: z.string().nullable(),
  error: z.string().nullable(),
  cancelRequested: z.boolean(),
  maxNewTokens: z.number().int().positive(),
  promptCount: z.number().int().nonnegative(),
  createdAt: z.number(),
  updatedAt: z.number(),
  finishedAt: z.number().nullable(),
});
export type RuntimeComparisonDto = z.infer<typeof RuntimeComparisonDto>;

// ---------------------------------------------------------------- rollouts

/** One device of a rollout, as the Rollouts page shows it. */
export const RolloutDeviceDto = z.object({
  deviceId: z.string(),
  deviceName: z.string(),
  /** Whether the device is online now (an offline device's rollout waits for it, up to the device timeout). */
  online: z.boolean(),
  /** Planning order: canaries first. */
  position: z.number().int().nonnegative(),
  canary: z.boolean(),
  state: RolloutDeviceState,
  /** rollout.apply sent for the current try; false while the device waits for its turn. */
  sent: z.boolean(),
  /** Tries so far (1 = the first); a retry after a failure is a new try. */
  attempt: z.number().int().nonnegative(),
  bytesDone: z.number().nonnegative(),
  bytesTotal: z.number().nonnegative(),
  rateBps: z.number().nonnegative().nullable(),
  etaSeconds: z.number().nonnegative().nullable(),
  error: RolloutError.nullable(),
  /** The failure was acknowledged by resuming the rollout: it no longer counts toward the failure threshold. */
  acknowledged: z.boolean(),
  /** Failed, and will be tried again (retries left). */
  willRetry: z.boolean(),
  /** The artifact the device ran before the rollout (what a rollback returns to); null when unknown or none. */
  previousArtifactId: z.string().nullable(),
  sentAt: z.number().nullable(),
  updatedAt: z.number(),
  finishedAt: z.number().nullable(),
});
export type RolloutDeviceDto = z.infer<typeof RolloutDeviceDto>;

export const RolloutCounts = z.object({
  total: z.number().int().nonnegative(),
  /** Not sent yet. */
  waiting: z.number().int().nonnegative(),
  /** Sent, working (preflight … health_check). */
  inFlight: z.number().int().nonnegative(),
  active: z.number().int().nonnegative(),
  /** failed, or rolled back by the health gate (operator rollbacks and aborts are counted apart). */
  failed: z.number().int().nonnegative(),
  rolledBack: z.number().int().nonnegative(),
  aborted: z.number().int().nonnegative(),
});
export type RolloutCounts = z.infer<typeof RolloutCounts>;

/** A rollout without its devices (the list). */
export const RolloutSummaryDto = z.object({
  id: z.string(),
  name: z.string(),
  artifactId: z.string(),
  artifactName: z.string(),
  artifactVersion: z.string(),
  artifactRuntime: ArtifactRuntime,
  state: RolloutState,
  /** Why it is paused (failure threshold, a canary failed, an operator), for people; null unless paused. */
  pausedReason: z.string().nullable(),
  strategy: RolloutStrategy,
  counts: RolloutCounts,
  createdAt: z.number(),
  updatedAt: z.number(),
  finishedAt: z.number().nullable(),
});
export type RolloutSummaryDto = z.infer<typeof RolloutSummaryDto>;

export const RolloutDto = RolloutSummaryDto.extend({ devices: z.array(RolloutDeviceDto) });
export type RolloutDto = z.infer<typeof RolloutDto>;

/** Server → browser. */
export interface ServerToClientEvents {
  /** A device row changed (status, runner, telemetry summary). Coalesced per device. */
  "fleet:device": (device: DeviceSummary) => void;
  "fleet:removed": (event: z.infer<typeof DeviceRemovedEvent>) => void;
  /** New telemetry samples of a watched device. */
  "device:telemetry": (event: DeviceTelemetryEvent) => void;
  /** Something happened on a watched device (runner state, exit, command result). */
  "device:event": (event: DeviceEventMessage) => void;
  /** A message was added to a watched conversation (e.g. from another browser). */
  "chat:message": (event: { conversationId: string; message: ConversationMessageDto }) => void;
  "chat:status": (event: ChatStatusEvent) => void;
  "chat:tokens": (event: ChatTokensEvent) => void;
  /** The answer finished (complete or cancelled), with its final text and stats. */
  "chat:done": (event: { conversationId: string; message: ConversationMessageDto }) => void;
  "chat:error": (event: ChatErrorEvent) => void;
  /** Fleet-wide figures, every few seconds. */
  "fleet:totals": (totals: FleetTotals) => void;
  /** An alert started or cleared. */
  "alert:changed": (alert: AlertDto) => void;
  /** A benchmark run changed (a device started, progressed, finished). */
  "bench:changed": (run: BenchRunDto) => void;
  /** A runtime comparison changed (its step, a benchmark's progress, the end). Coalesced per comparison. */
  "bench:comparison": (comparison: RuntimeComparisonDto) => void;
  /** A rollout changed (a device moved on or progressed, paused, finished). Coalesced per rollout. */
  "rollout:changed": (rollout: RolloutDto) => void;
}

/** Browser → server. */
export interface ClientToServerEvents {
  "device:watch": (deviceId: string) => void;
  "device:unwatch": (deviceId: string) => void;
  "chat:watch": (conversationId: string) => void;
  "chat:unwatch": (conversationId: string) => void;
}

export const SOCKET_PATH = "/socket.io";
