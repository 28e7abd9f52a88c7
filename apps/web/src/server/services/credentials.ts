/**
 * Broker credential rotation without re-enrolling (docs/protocol.md, "Credential
 * rotation"). The server makes a new password, keeps its hash as *pending* beside
 * the current one (both open the broker and the device's HTTP downloads), and
 * sends it in `credentials.rotate` on the device's own command topic. The agent
 * stores it and answers `command.result` ok; only then does the server make it the
 * only password, in the broker (Mosquitto holds one password per client) and in the
 * database, and the broker drops the device's connection so it logs in with it.
 * A device that is offline, or whose answer is lost, is sent the rotation again
 * when it comes back online; the old password keeps working until it confirms.
 * The new password lives only in this process's memory until it is confirmed (the
 * database keeps its sha256): after a restart a fresh one is sent instead.
 */
import { randomUUID } from "node:crypto";
import type { DeviceEvent, DeviceStatus } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { BrokerAccounts } from "../mqtt/accounts.ts";
import { newSecret, sha256 } from "../auth/secrets.ts";
import type { FleetService } from "./fleet.ts";
import type { ServerLink } from "../mqtt/link.ts";

export interface RotationResult {
  state: "applied" | "pending";
  message: string;
}

interface InFlight {
  commandId: string;
  password: string;
  hash: string;
  sentAt: number;
  waiters: ((applied: boolean) => void)[];
}

export const DEFAULT_CREDENTIAL_OPTIONS = {
  /** How long rotate() waits for an online device to confirm before answering "pending". */
  confirmWaitMs: 10_000,
  /** An online status re-sends a pending rotation at most this often (agents publish status on model changes too). */
  resendAfterMs: 30_000,
};

export class CredentialService {
  private readonly inflight = new Map<string, InFlight>();
  private readonly onEvent = (id: string, event: DeviceEvent) => void this.handleEvent(id, event);
  private readonly onStatus = (id: string, status: DeviceStatus) => {
    if (status.state === "online" && this.fleet.rotationPending(id)) void this.resend(id);
  };

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly accounts: BrokerAccounts,
    private readonly publish: ServerLink["publishCommand"],
    private readonly log: Logger,
    private readonly opts = DEFAULT_CREDENTIAL_OPTIONS,
    private readonly now: () => number = Date.now,
  ) {
    fleet.on("event", this.onEvent);
    fleet.on("status", this.onStatus);
  }

  close(): void {
    this.fleet.off("event", this.onEvent);
    this.fleet.off("status", this.onStatus);
    for (const f of this.inflight.values()) for (const w of f.waiters) w(false);
    this.inflight.clear();
  }

  /** Starts a rotation (or restarts a pending one); waits a little for an online device to confirm it. */
  async rotate(id: string): Promise<RotationResult> {
    if (this.accounts.mode === "manual") {
      throw new AppError(
        "conflict",
        "This server cannot change passwords on its MQTT broker (MQTT_DYNSEC_USERNAME/MQTT_DYNSEC_PASSWORD are not set): re-enroll the device to give it new credentials, or give the server the broker's dynamic-security admin account.",
      );
    }
    const device = this.fleet.get(id);
    if (!device) throw new AppError("not_found", `No device ${id}.`);
    const entry = await this.issue(id);
    if (!device.online) {
      return {
        state: "pending",
        message: "The device is offline: it gets its new password when it reconnects, and its current one keeps working until then.",
      };
    }
    const applied = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.opts.confirmWaitMs);
      entry.waiters.push((ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
      void this.send(id, entry);
    });
    return applied
      ? { state: "applied", message: "The device stored its new password and logged in with it; the old one no longer works." }
      : {
          state: "pending",
          message:
            "The device has not confirmed its new password yet: it is sent again when the device reconnects, and its current password keeps working until it confirms.",
        };
  }

  /** A new pending password: its hash in the database and the fleet (both passwords now open the broker and HTTP), the password in memory. */
  private async issue(id: string): Promise<InFlight> {
    const password = newSecret();
    const hash = sha256(password);
    const { count } = await this.prisma.device.updateMany({ where: { id }, data: { mqttPendingPasswordHash: hash } });
    if (count === 0) throw new AppError("not_found", `No device ${id}.`);
    const current = await this.prisma.device.findUnique({ where: { id }, select: { mqttPasswordHash: true } });
    this.fleet.credentialsChanged(id, { current: current!.mqttPasswordHash, pending: hash });
    const previous = this.inflight.get(id);
    const entry: InFlight = { commandId: randomUUID(), password, hash, sentAt: 0, waiters: previous?.waiters ?? [] };
    this.inflight.set(id, entry);
    this.log.info("credential rotation started", { device: id });
    return entry;
  }

  private async send(id: string, entry: InFlight): Promise<void> {
    entry.sentAt = this.now();
    await this.publish(id, { type: "credentials.rotate", id: entry.commandId, ts: this.now(), password: entry.password }).catch(
      (err: Error) =>
        this.log.warn("could not send credentials.rotate; sent again when the device reconnects", { device: id, error: err.message }),
    );
  }

  /** The device came online with a rotation pending: send it again (a fresh password when this process lost the last one). */
  private async resend(id: string): Promise<void> {
    try {
      let entry = this.inflight.get(id);
      if (entry && this.now() - entry.sentAt < this.opts.resendAfterMs) return;
      if (entry) entry.commandId = randomUUID();
      else entry = await this.issue(id);
      await this.send(id, entry);
    } catch (err) {
      this.log.warn("could not resume a credential rotation", { device: id, error: (err as Error).message });
    }
  }

  private async handleEvent(id: string, event: DeviceEvent): Promise<void> {
    if (event.kind !== "command.result") return;
    const entry = this.inflight.get(id);
    if (!entry || entry.commandId !== event.commandId) return;
    if (!event.ok) {
      // The agent could not store it (e.g. a read-only or full disk): nothing changes, the old password stays.
      this.log.warn("the device could not store its new password; the rotation stays pending", { device: id, reason: event.message });
      return;
    }
    try {
      // The broker first: once it holds the new password (and dropped the device, which logs in again with it),
      // the database makes it the only one for HTTP too.
      await this.accounts.setDevicePassword(id, entry.password);
      await this.prisma.device.updateMany({
        where: { id, mqttPendingPasswordHash: entry.hash },
        data: { mqttPasswordHash: entry.hash, mqttPendingPasswordHash: null, credentialsRotatedAt: new Date(this.now()) },
      });
      this.fleet.credentialsChanged(id, { current: entry.hash, pending: null });
      if (this.inflight.get(id) === entry) this.inflight.delete(id);
      this.log.info("credential rotation applied", { device: id });
      for (const w of entry.waiters) w(true);
    } catch (err) {
      this.log.error("applying a confirmed credential rotation failed; it is sent again when the device reconnects", {
        device: id,
        error: (err as Error).message,
      });
    }
  }
}
