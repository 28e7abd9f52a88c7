/**
 * Chat between the server and a device: the `chat.start` / `chat.cancel` commands
 * (on the device's `cmd` topic) and what the device streams back on
 * `orchard/v1/devices/{id}/chat/{requestId}`. Tokens travel in small QoS 0 chunks;
 * `accepted`, `done` and `error` at QoS 1. `done` repeats the whole answer, so a lost
 * chunk never loses text. A device working on a request sends `progress` at least
 * every CHAT_HEARTBEAT_MS, so the server can tell a slow device from a silent one.
 */
import { z } from "zod";
import { Timestamp } from "./primitives.ts";
import { ChatMessage } from "./runner.ts";

/** How often a device reports on a request it holds (queued, prefilling or decoding). */
export const CHAT_HEARTBEAT_MS = 5_000;
/** Chats a device holds at once (running + waiting) unless configured otherwise. */
export const CHAT_DEFAULT_QUEUE_LIMIT = 4;
/** Longest single chat message a user may send, in characters. */
export const CHAT_MAX_MESSAGE_CHARS = 32_000;

const requestId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const timestamp = Timestamp; // ms since the epoch, before 2100 (primitives.ts)

/** How an answer is sampled; the defaults are what the dashboard and the API use when a client says nothing. */
export const ChatSampling = z.object({
  maxNewTokens: z.number().int().positive().max(8192).default(256),
  /** 0 = greedy (the reference deployment's setting). */
  temperature: z.number().min(0).max(2).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 32 - 1)
    .optional(),
});
export type ChatSampling = z.infer<typeof ChatSampling>;

export const ChatStartCommand = z.object({
  type: z.literal("chat.start"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  requestId,
  /** Conversation id: the device maps it to a runner session so a continued conversation reuses the KV cache. */
  session: z.string().min(1).max(128),
  messages: z.array(ChatMessage).min(1).max(1000),
  ...ChatSampling.shape,
});
export type ChatStartCommand = z.infer<typeof ChatStartCommand>;

export const ChatCancelCommand = z.object({
  type: z.literal("chat.cancel"),
  id: z.string().min(1).max(64),
  ts: timestamp,
  requestId,
});
export type ChatCancelCommand = z.infer<typeof ChatCancelCommand>;

/** Per-answer statistics, as shown under each answer and stored with it. */
export const GenerationStats = z.object({
  backend: z.string(),
  model: z.string().nullable(),
  modelSha256: z.string().nullable(),
  finishReason: z.enum(["stop", "length", "cancelled"]),
  promptTokens: z.number().int().nonnegative(),
  reusedTokens: z.number().int().nonnegative(),
  generatedTokens: z.number().int().nonnegative(),
  /** From accepting the request to starting its generation (time in the device's queue); the user waits queueMs + ttftMs for the first token. */
  queueMs: z.number().nonnegative(),
  ttftMs: z.number().nonnegative(),
  prefillMs: z.number().nonnegative(),
  decodeMs: z.number().nonnegative(),
  prefillTokS: z.number().nonnegative(),
  decodeTokS: z.number().nonnegative(),
  peakRssBytes: z.number().int().nonnegative(),
  socTempC: z.number().min(-40).max(150).nullable(),
  /** vcgencmd get_throttled bits at the end of the answer, null where unreadable. */
  throttleRaw: z.number().int().nonnegative().nullable(),
});
export type GenerationStats = z.infer<typeof GenerationStats>;

export const CHAT_ERROR_CODES = [
  "queue_full", // the device already holds its limit of chats
  "not_ready", // the runner is not loaded (starting, crashed, switching models)
  "context_full", // the conversation no longer fits in the model's context
  "runner_exited", // the runner died during the answer (it is being restarted)
  "bad_request", // the device refused the request as malformed
  "model_error", // the engine failed
  "duplicate", // a second chat.start (another command id) for a request the device already has; the first one carries on
] as const;
export const ChatErrorCode = z.enum(CHAT_ERROR_CODES);
export type ChatErrorCode = z.infer<typeof ChatErrorCode>;

export const ChatStreamMessage = z.discriminatedUnion("type", [
  /** The device took the request; `queuePosition` 0 means it runs now. QoS 1. */
  z.object({ type: z.literal("accepted"), requestId, ts: timestamp, queuePosition: z.number().int().nonnegative() }),
  /** Heartbeat while the request is held. QoS 0. */
  z.object({
    type: z.literal("progress"),
    requestId,
    ts: timestamp,
    phase: z.enum(["queued", "prefill", "decoding"]),
    queuePosition: z.number().int().nonnegative(),
    generatedTokens: z.number().int().nonnegative(),
  }),
  /**
   * One or more tokens, in order (`seq` counts chunks from 0). `ts` is when the agent
   * read the chunk's first token from the runner (the relay benchmark measures from it). QoS 0.
   */
  z.object({
    type: z.literal("tokens"),
    requestId,
    seq: z.number().int().nonnegative(),
    ts: timestamp,
    text: z.string().max(64 * 1024),
    count: z.number().int().positive(),
  }),
  /** The whole answer and its statistics. QoS 1. */
  z.object({ type: z.literal("done"), requestId, ts: timestamp, text: z.string().max(200_000), stats: GenerationStats }),
  /**
   * The request failed or was refused; nothing more follows — except after `duplicate`, which
   * refuses only the repeated chat.start while the original request carries on. QoS 1.
   */
  z.object({ type: z.literal("error"), requestId, ts: timestamp, code: ChatErrorCode, message: z.string().max(2000) }),
]);
export type ChatStreamMessage = z.infer<typeof ChatStreamMessage>;
