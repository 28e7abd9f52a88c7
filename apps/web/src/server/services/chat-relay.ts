/**
 * Runs one generation on one device and relays what the device streams back:
 * publishes `chat.start` (and `chat.cancel`), follows the request through
 * accepted → progress → tokens → done|error on the device's chat topic, and turns
 * silence, a lost device or a missing acknowledgement into a clear error instead
 * of a hang. Memory only: the per-token path never touches the database. The
 * dashboard's conversations and the OpenAI-compatible API both sit on top of it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import {
  CHAT_HEARTBEAT_MS,
  type ChatMessage,
  type ChatStreamMessage,
  type DeviceCommand,
  type DeviceSummary,
  type GenerationStats,
  type RelayChatErrorCode,
} from "@orchard/contracts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FleetService } from "./fleet.ts";

export interface GenerationRequest {
  deviceId: string;
  /** Runner session: the conversation, so a continued conversation reuses the device's KV cache. */
  session: string;
  messages: ChatMessage[];
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
}

export type GenerationEvent =
  | { type: "status"; phase: "sent" | "queued" | "prefill" | "decoding"; queuePosition: number }
  | { type: "tokens"; seq: number; text: string; tokens: number; ts: number };

export type GenerationOutcome =
  { ok: true; text: string; stats: GenerationStats } | { ok: false; code: RelayChatErrorCode; message: string; partialText: string };

export interface Generation {
  requestId: string;
  deviceId: string;
  /** Called for each status change and token chunk, in order. */
  onEvent(listener: (event: GenerationEvent) => void): void;
  readonly outcome: Promise<GenerationOutcome>;
  /** The text received so far. */
  partialText(): string;
  cancel(): Promise<void>;
}

interface Active {
  requestId: string;
  deviceId: string;
  deviceName: string;
  text: string;
  tokens: number;
  nextSeq: number;
  lastHeardAt: number;
  accepted: boolean;
  cancelRequested: boolean;
  listeners: ((event: GenerationEvent) => void)[];
  settle: (outcome: GenerationOutcome) => void;
}

export interface ChatRelayOptions {
  /** How long a device has to confirm it received a request. */
  acceptTimeoutMs: number;
  /** How long a device that holds a request may go without a word (it heartbeats every CHAT_HEARTBEAT_MS). */
  silenceTimeoutMs: number;
}

export const DEFAULT_RELAY_OPTIONS: ChatRelayOptions = { acceptTimeoutMs: 15_000, silenceTimeoutMs: 4 * CHAT_HEARTBEAT_MS };

export class ChatRelay {
  private readonly active = new Map<string, Active>();
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    private readonly fleet: FleetService,
    private readonly publish: (deviceId: string, command: DeviceCommand) => Promise<void>,
    private readonly opts: ChatRelayOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.watchdog = setInterval(() => this.checkSilence(), 1000);
    this.watchdog.unref();
    fleet.on("device", (device) => this.onDevice(device));
    fleet.on("removed", (deviceId) => this.failDevice(deviceId, "device_offline", "The device was deleted."));
  }

  /** Why this device cannot take a chat now, or null when it can. */
  unavailableReason(device: DeviceSummary | null): string | null {
    if (!device) return "No such device.";
    if (!device.online) return `${device.name} is offline.`;
    const runner = device.runner;
    if (!runner || runner.state === "stopped") return `${device.name} has no model running.`;
    if (runner.state === "starting") return `${device.name} is loading its model; try again in a moment.`;
    if (runner.state === "crashed") return `${device.name}'s runner crashed and is restarting; try again in a moment.`;
    if (runner.state === "crash_loop") return `${device.name}'s runner keeps crashing (${runner.lastError ?? "see its events"}).`;
    return null;
  }

  /** Chats this server has in flight on a device (for picking an idle one). */
  inFlight(deviceId: string): number {
    let n = 0;
    for (const a of this.active.values()) if (a.deviceId === deviceId) n++;
    return n;
  }

  async start(request: GenerationRequest): Promise<Generation> {
    const device = this.fleet.get(request.deviceId);
    const reason = this.unavailableReason(device);
    if (reason) throw new AppError("unavailable", reason);
    const requestId = randomBytes(12).toString("base64url");
    let settle!: (outcome: GenerationOutcome) => void;
    const outcome = new Promise<GenerationOutcome>((resolve) => {
      settle = resolve;
    });
    const entry: Active = {
      requestId,
      deviceId: request.deviceId,
      deviceName: device!.name,
      text: "",
      tokens: 0,
      nextSeq: 0,
      lastHeardAt: this.now(),
      accepted: false,
      cancelRequested: false,
      listeners: [],
      settle: (o) => {
        if (this.active.delete(requestId)) settle(o);
      },
    };
    this.active.set(requestId, entry);
    try {
      await this.publish(request.deviceId, {
        type: "chat.start",
        id: randomUUID(),
        ts: this.now(),
        requestId,
        session: request.session,
        messages: request.messages,
        maxNewTokens: request.maxNewTokens,
        temperature: request.temperature,
        topP: request.topP,
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
      });
    } catch (err) {
      this.active.delete(requestId);
      throw new AppError("unavailable", `Could not send the request to ${device!.name}: ${(err as Error).message}`);
    }
    return {
      requestId,
      deviceId: request.deviceId,
      onEvent: (listener) => {
        entry.listeners.push(listener);
        listener({ type: "status", phase: "sent", queuePosition: 0 });
      },
      outcome,
      partialText: () => entry.text,
      cancel: () => this.cancel(requestId),
    };
  }

  /** Asks the device to stop; the device answers with `done` (finishReason cancelled) and the partial text. */
  async cancel(requestId: string): Promise<void> {
    const a = this.active.get(requestId);
    if (!a || a.cancelRequested) return;
    a.cancelRequested = true;
    await this.publish(a.deviceId, { type: "chat.cancel", id: randomUUID(), ts: this.now(), requestId }).catch((err: Error) =>
      this.log.warn("could not send chat.cancel", { requestId, error: err.message }),
    );
  }

  /** A message from a device's chat topic (already validated against the contract). */
  handle(deviceId: string, message: ChatStreamMessage): void {
    const a = this.active.get(message.requestId);
    if (!a || a.deviceId !== deviceId) {
      this.log.debug("chat message for a request this server does not hold", {
        deviceId,
        requestId: message.requestId,
        type: message.type,
      });
      return;
    }
    a.lastHeardAt = this.now();
    switch (message.type) {
      case "accepted":
        a.accepted = true;
        this.emit(a, { type: "status", phase: message.queuePosition > 0 ? "queued" : "prefill", queuePosition: message.queuePosition });
        break;
      case "progress":
        a.accepted = true;
        this.emit(a, { type: "status", phase: message.phase, queuePosition: message.queuePosition });
        break;
      case "tokens":
        a.accepted = true;
        // QoS 0 chunks can be lost or, across a reconnect, repeated; `done` carries the full text anyway.
        if (message.seq < a.nextSeq) return;
        a.nextSeq = message.seq + 1;
        a.text += message.text;
        a.tokens += message.count;
        this.emit(a, { type: "tokens", seq: message.seq, text: message.text, tokens: a.tokens, ts: message.ts });
        break;
      case "done":
        a.settle({ ok: true, text: message.text, stats: message.stats });
        break;
      case "error":
        // `duplicate` refuses a repeated chat.start, not the request this server is following.
        if (message.code === "duplicate") {
          this.log.warn("device refused a repeated chat.start", { deviceId, requestId: message.requestId });
          return;
        }
        a.settle({ ok: false, code: message.code, message: message.message, partialText: a.text });
        break;
    }
  }

  close(): void {
    clearInterval(this.watchdog);
    for (const a of [...this.active.values()]) {
      a.settle({ ok: false, code: "device_offline", message: "The server is shutting down.", partialText: a.text });
    }
  }

  private emit(a: Active, event: GenerationEvent): void {
    for (const listener of a.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error("chat listener failed", { error: (err as Error).message });
      }
    }
  }

  private onDevice(device: DeviceSummary): void {
    if (!device.online) this.failDevice(device.id, "device_offline", `${device.name} went offline during the answer.`);
  }

  private failDevice(deviceId: string, code: RelayChatErrorCode, message: string): void {
    for (const a of [...this.active.values()]) {
      if (a.deviceId === deviceId) a.settle({ ok: false, code, message, partialText: a.text });
    }
  }

  /** Fails requests whose device went quiet; runs every second, public for tests with a fake clock. */
  checkSilence(): void {
    const now = this.now();
    for (const a of [...this.active.values()]) {
      const quiet = now - a.lastHeardAt;
      if (!a.accepted && quiet > this.opts.acceptTimeoutMs) {
        a.settle({
          ok: false,
          code: "not_acknowledged",
          message: `${a.deviceName} did not confirm the request within ${Math.round(this.opts.acceptTimeoutMs / 1000)} s; it may be overloaded or its agent may be outdated.`,
          partialText: a.text,
        });
      } else if (a.accepted && quiet > this.opts.silenceTimeoutMs) {
        a.settle({
          ok: false,
          code: "device_silent",
          message: `${a.deviceName} stopped reporting on this answer ${Math.round(quiet / 1000)} s ago.`,
          partialText: a.text,
        });
      }
    }
  }
}
