/**
 * socket.io events between the server and the dashboard. The server emits fleet
 * changes to every signed-in browser and telemetry to browsers watching a device.
 */
import { z } from "zod";
import { ActiveModel, DeviceEvent, RunnerStatus, TelemetrySample } from "./device.ts";

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

/** Server → browser. */
export interface ServerToClientEvents {
  /** A device row changed (status, runner, telemetry summary). Coalesced per device. */
  "fleet:device": (device: DeviceSummary) => void;
  "fleet:removed": (event: z.infer<typeof DeviceRemovedEvent>) => void;
  /** New telemetry samples of a watched device. */
  "device:telemetry": (event: DeviceTelemetryEvent) => void;
  /** Something happened on a watched device (runner state, exit, command result). */
  "device:event": (event: DeviceEventMessage) => void;
}

/** Browser → server. */
export interface ClientToServerEvents {
  "device:watch": (deviceId: string) => void;
  "device:unwatch": (deviceId: string) => void;
}

export const SOCKET_PATH = "/socket.io";
