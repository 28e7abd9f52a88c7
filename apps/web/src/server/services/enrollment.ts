/**
 * Enrollment: an operator creates a single-use, expiring token in the dashboard;
 * a Pi trades it for a device id and its own broker credentials. The only module
 * that touches EnrollmentToken; it creates Device rows.
 */
import { EnrollRequest, type EnrollResponse } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { newDeviceId, newSecret, sha256 } from "../auth/secrets.ts";
import type { FleetService } from "./fleet.ts";
import type { BrokerAccounts } from "../mqtt/accounts.ts";
import { CONTROL_MESSAGE, freeDeviceName, isUniqueViolation, withoutControl } from "./device-names.ts";

export const ENROLLMENT_TOKEN_PREFIX = "oet_";

/**
 * What the server accepts at POST /api/enroll: the contract, and no control characters in what is
 * stored (a NUL made the insert fail with a 500; a newline in a hostname is no hostname either).
 */
export const EnrollInput = EnrollRequest.extend({
  hostname: EnrollRequest.shape.hostname.refine(withoutControl, CONTROL_MESSAGE),
  arch: EnrollRequest.shape.arch.refine(withoutControl, CONTROL_MESSAGE),
  agentVersion: EnrollRequest.shape.agentVersion.refine(withoutControl, CONTROL_MESSAGE),
});
/** Attempts at a free name when another enrollment takes it at the same moment. */
const NAME_ATTEMPTS = 5;

export interface PendingToken {
  id: string;
  deviceName: string | null;
  createdAt: number;
  expiresAt: number;
}

export class EnrollmentService {
  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly now: () => number = Date.now,
    /** The artifact-signing public key agents get with their credentials (SPKI DER, base64); none in tests that do not sign. */
    private readonly artifactPublicKey: string | null = null,
    /** Where the device's broker account is made (nothing to do for the embedded broker, which reads the database). */
    private readonly accounts: Pick<BrokerAccounts, "provisionDevice" | "removeDevice"> | null = null,
  ) {}

  /** A fresh device id that is no device's name either (a name may not be another device's id, nor an id another's name). */
  private async newId(): Promise<string> {
    for (;;) {
      const id = newDeviceId();
      const clash = await this.prisma.device.findFirst({ where: { OR: [{ id }, { name: { equals: id, mode: "insensitive" } }] } });
      if (!clash) return id;
    }
  }

  /** Returns the token itself exactly once; only its hash is stored. */
  async createToken(input: {
    deviceName?: string;
    ttlMinutes: number;
    createdById: string | null;
  }): Promise<{ token: string; id: string; expiresAt: number }> {
    const token = newSecret(ENROLLMENT_TOKEN_PREFIX);
    const expiresAt = new Date(this.now() + input.ttlMinutes * 60_000);
    const row = await this.prisma.enrollmentToken.create({
      data: { hash: sha256(token), deviceName: input.deviceName || null, createdById: input.createdById, expiresAt },
    });
    return { token, id: row.id, expiresAt: expiresAt.getTime() };
  }

  async listPending(): Promise<PendingToken[]> {
    const rows = await this.prisma.enrollmentToken.findMany({
      where: { usedAt: null, expiresAt: { gt: new Date(this.now()) } },
      orderBy: { createdAt: "desc" },
    });
    return rows.map((r) => ({ id: r.id, deviceName: r.deviceName, createdAt: r.createdAt.getTime(), expiresAt: r.expiresAt.getTime() }));
  }

  async revoke(id: string): Promise<void> {
    const { count } = await this.prisma.enrollmentToken.deleteMany({ where: { id, usedAt: null } });
    if (count === 0) throw new AppError("not_found", "No unused enrollment token with that id.");
  }

  /** Trades a token for a device and its broker credentials. Single use, even under concurrent attempts. */
  async enroll(request: EnrollRequest, mqttUrl: string): Promise<EnrollResponse> {
    const hash = sha256(request.token);
    const token = await this.prisma.enrollmentToken.findUnique({ where: { hash } });
    if (!token) {
      throw new AppError(
        "unauthorized",
        "This enrollment token is not valid. Create a new one on the dashboard's Enroll page and copy the command again.",
      );
    }
    if (token.usedAt) {
      throw new AppError(
        "gone",
        `This enrollment token was already used on ${token.usedAt.toISOString()} (device ${token.deviceId}). Tokens work once: create a new one on the Enroll page.`,
      );
    }
    const now = this.now();
    if (token.expiresAt.getTime() <= now) {
      throw new AppError("gone", `This enrollment token expired at ${token.expiresAt.toISOString()}. Create a new one on the Enroll page.`);
    }
    const deviceId = await this.newId();
    const password = newSecret();
    // The broker account first: if the broker refuses, the token stays unused and the Pi can try again.
    if (this.accounts) {
      await this.accounts.provisionDevice(deviceId, password).catch((err: Error) => {
        throw new AppError("unavailable", `The MQTT broker did not create this device's account (${err.message}); try enrolling again.`);
      });
    }
    const create = () =>
      this.prisma.$transaction(async (tx) => {
        // The conditional update is what makes the token single-use when two Pis race with it.
        const claimed = await tx.enrollmentToken.updateMany({
          where: { id: token.id, usedAt: null },
          data: { usedAt: new Date(now), deviceId },
        });
        if (claimed.count !== 1) {
          throw new AppError(
            "gone",
            "This enrollment token was just used by another device. Tokens work once: create a new one on the Enroll page.",
          );
        }
        return tx.device.create({
          data: {
            id: deviceId,
            // Unique (device-names.ts): a taken name gets a suffix ("kitchen-2").
            name: await freeDeviceName(tx, token.deviceName ?? request.hostname, deviceId),
            hostname: request.hostname,
            arch: request.arch,
            agentVersion: request.agentVersion,
            mqttPasswordHash: sha256(password),
          },
        });
      });
    const device = await (async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await create();
        } catch (err) {
          // Another enrollment took the same name between our look and our insert (the unique index decides): look again.
          if (!isUniqueViolation(err) || attempt >= NAME_ATTEMPTS) throw err;
        }
      }
    })().catch(async (err: unknown) => {
      await this.accounts?.removeDevice(deviceId).catch(() => undefined);
      throw err;
    });
    const name = device.name;
    this.fleet.added(device);
    return {
      deviceId,
      name,
      mqttUrl,
      mqttUsername: deviceId,
      mqttPassword: password,
      ...(this.artifactPublicKey ? { artifactPublicKey: this.artifactPublicKey } : {}),
    };
  }
}
