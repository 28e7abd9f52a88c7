/**
 * Commands from the server (`cmd` topic), validated with the contracts'
 * DeviceCommand (the `cmd` schema of TOPIC_MAP) and dispatched through one lookup table, one handler per type.
 * Each command is answered with a `command.result` event, unless its handler
 * answers elsewhere (chat commands answer on the request's chat topic). A command
 * id seen recently is ignored (re-delivery must be harmless), and a command that
 * fails validation is answered with ok:false when it carries a usable id (or by
 * the `invalid` hook, when that takes it).
 */
import { type DeviceCommand, type DeviceEvent, MAX_DEVICE_PAYLOAD_BYTES, decode } from "@orchard/contracts";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { RecentIds } from "./recent-ids.js";

export interface CommandReply {
  ok: boolean;
  message: string;
}

export type CommandType = DeviceCommand["type"];
/** A handler's reply becomes the `command.result`; null means the handler answered on its own channel. */
export type CommandHandlers = {
  [T in CommandType]: (command: Extract<DeviceCommand, { type: T }>) => Promise<CommandReply | null>;
};

export interface CommandDispatcherOptions {
  handlers: CommandHandlers;
  /** Sends the `command.result` event. */
  reply: (event: Extract<DeviceEvent, { kind: "command.result" }>) => void;
  /**
   * Sees a command that failed validation (parsed JSON, and why) before it is answered
   * with `command.result`; returns true when it answered it itself.
   */
  invalid?: (json: unknown, reason: string) => boolean;
  logger: Logger;
  clock?: Clock;
  rememberIds?: number;
}

const COMMAND_ID = /^.{1,64}$/s;

export class CommandDispatcher {
  readonly #opts: CommandDispatcherOptions;
  readonly #clock: Clock;
  readonly #seen: RecentIds;
  readonly #log: Logger;

  constructor(options: CommandDispatcherOptions) {
    this.#opts = options;
    this.#clock = options.clock ?? systemClock;
    this.#seen = new RecentIds(options.rememberIds ?? 100);
    this.#log = options.logger.child({ component: "commands" });
  }

  #reply(commandId: string, ok: boolean, message: string): void {
    this.#opts.reply({ kind: "command.result", ts: this.#clock.now(), commandId, ok, message: message.slice(0, 2000) });
  }

  /** Handles one payload from the `cmd` topic; never throws. */
  async handle(payload: Buffer): Promise<void> {
    if (payload.length > MAX_DEVICE_PAYLOAD_BYTES) {
      this.#log.warn("command ignored: payload too large", { bytes: payload.length, max: MAX_DEVICE_PAYLOAD_BYTES });
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(payload.toString("utf8"));
    } catch {
      this.#log.warn("command ignored: not JSON", { bytes: payload.length });
      return;
    }
    const rawId = typeof json === "object" && json !== null && "id" in json ? (json as { id: unknown }).id : undefined;
    const id = typeof rawId === "string" && COMMAND_ID.test(rawId) ? rawId : undefined;

    if (id !== undefined && !this.#seen.add(id)) {
      this.#log.debug("duplicate command ignored", { commandId: id });
      return;
    }

    const parsed = decode("cmd", json);
    if (!parsed.success) {
      const type = typeof json === "object" && json !== null && "type" in json ? (json as { type: unknown }).type : undefined;
      const known = Object.keys(this.#opts.handlers);
      const reason =
        typeof type === "string" && !known.includes(type)
          ? `unsupported command type ${JSON.stringify(type).slice(0, 80)} (this agent handles: ${known.join(", ")})`
          : `invalid command: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`;
      this.#log.warn("invalid command", { commandId: id, reason });
      if (this.#opts.invalid?.(json, reason)) return;
      if (id !== undefined) this.#reply(id, false, reason);
      return;
    }

    const command = parsed.data;
    this.#log.info("command received", { commandId: command.id, type: command.type });
    const handler = this.#opts.handlers[command.type] as (c: DeviceCommand) => Promise<CommandReply | null>;
    let reply: CommandReply | null;
    try {
      reply = await handler(command);
    } catch (error) {
      reply = { ok: false, message: `${command.type} failed: ${(error as Error).message}` };
    }
    if (reply) this.#reply(command.id, reply.ok, reply.message);
  }
}
