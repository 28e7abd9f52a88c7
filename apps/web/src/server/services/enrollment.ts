/**
 * Enrollment: an operator creates a single-use, expiring token in the dashboard;
 * a Pi trades it for a device id and its own broker credentials. The only module
 * that touches EnrollmentToken; it creates Device rows.
 */
import type { EnrollRequest, EnrollResponse } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { newDeviceId, newSecret, sha256 } from "../auth/secrets.ts";
import type { FleetService } from "./fleet.ts";
import type { BrokerAccounts } from "../mqtt/accounts.ts";

export const ENROLLMENT_TOKEN_PREFIX = "oet_";

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
    const deviceId = newDeviceId();
    const password = newSecret();
    const name = token.deviceName ?? request.hostname;
    // The broker account first: if the broker refuses, the token stays unused and the Pi can try again.
    if (this.accounts) {
      await this.accounts.provisionDevice(deviceId, password).catch((err: Error) => {
        throw new AppError("unavailable", `The MQTT broker did not create this device's account (${err.message}); try enrolling again.`);
      });
    }
    const device = await this.prisma
      .$transaction(async (tx) => {
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
            name,
            hostname: request.hostname,
            arch: request.arch,
            agentVersion: request.agentVersion,
            mqttPasswordHash: sha256(password),
          },
        });
      })
      .catch(async (err: unknown) => {
        await this.accounts?.removeDevice(deviceId).catch(() => undefined);
        throw err;
      });
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
