/**
 * Whether a device can take a chat now, and if not why, in the words the server
 * uses when it refuses (services/chat-relay.ts `unavailableReason`). The server
 * has the last word; this only saves a round trip and explains disabled buttons.
 */
import type { DeviceSummary } from "@orchard/contracts";

export type ChatAvailability =
  | { ok: true }
  | {
      ok: false;
      /** One word for a badge: offline, loading, crashed, no model. */
      label: string;
      /** A sentence for a tooltip or a notice. */
      reason: string;
    };

export function chatAvailability(device: DeviceSummary | null | undefined): ChatAvailability {
  if (!device) return { ok: false, label: "deleted", reason: "This device is no longer in the fleet." };
  if (!device.online) return { ok: false, label: "offline", reason: `${device.name} is offline.` };
  const runner = device.runner;
  if (!runner || runner.state === "stopped") return { ok: false, label: "no model", reason: `${device.name} has no model running.` };
  if (runner.state === "starting") {
    return { ok: false, label: "loading", reason: `${device.name} is loading its model; try again in a moment.` };
  }
  if (runner.state === "crashed") {
    return { ok: false, label: "crashed", reason: `${device.name}'s runner crashed and is restarting; try again in a moment.` };
  }
  if (runner.state === "crash_loop") {
    return {
      ok: false,
      label: "crashed",
      reason: `${device.name}'s runner keeps crashing${runner.lastError ? ` (${runner.lastError})` : ""}.`,
    };
  }
  return { ok: true };
}

export function newChatHref(deviceId: string): string {
  return `/chat/new?device=${encodeURIComponent(deviceId)}`;
}
