/**
 * socket.io events between the server and the dashboard. The server emits fleet
 * changes to every signed-in browser and telemetry to browsers watching a device.
 */
import { z } from "zod";
import { ActiveModel, DeviceEvent, RunnerStatus, TelemetrySample } from "./device.ts";
import { ChatErrorCode, GenerationStats } from "./chat.ts";

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
}

/** Browser → server. */
export interface ClientToServerEvents {
  "device:watch": (deviceId: string) => void;
  "device:unwatch": (deviceId: string) => void;
  "chat:watch": (conversationId: string) => void;
  "chat:unwatch": (conversationId: string) => void;
}

export const SOCKET_PATH = "/socket.io";
