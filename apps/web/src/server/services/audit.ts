/**
 * The audit log: who did what to which device, rollout, model, user or key, and
 * sign-in lockouts. Entries are written by the request handlers (tRPC procedures and
 * REST routes), where the caller is known, after the action succeeded; the only
 * module that touches the AuditEvent table. The actor's name is copied into the
 * entry, so entries outlive deleted users.
 */
import { z } from "zod";
import type { Prisma } from "../db/client.ts";
import type { Logger } from "../log.ts";
import type { Principal } from "./auth.ts";

import { AUDIT_ACTIONS, type AuditAction } from "@orchard/client";

export { AUDIT_ACTIONS, type AuditAction };

/**
 * Who acted: a signed-in principal, or a caller that is not a user (a device with an enrollment token, a failed sign-in,
 * an operator at the server's console: npm run reset-admin-password).
 */
export type AuditActor = Pick<Principal, "userId" | "username"> & { via: Principal["via"] | "enrollment_token" | "login" | "console" };

export const AuditEventDto = z.object({
  id: z.string(),
  at: z.number(),
  actor: z.object({ userId: z.string().nullable(), username: z.string(), via: z.string() }),
  action: z.string(),
  target: z.object({ type: z.string(), id: z.string().nullable() }),
  detail: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEventDto = z.infer<typeof AuditEventDto>;

export const AuditListInput = z.object({
  action: z.enum(AUDIT_ACTIONS).optional(),
  actor: z.string().trim().min(1).max(64).optional(),
  limit: z.number().int().min(1).max(500).default(100),
  /** nextCursor of the previous page. */
  cursor: z
    .string()
    .regex(/^\d{1,19}$/, "cursor is the nextCursor of a previous page")
    .optional(),
});
export type AuditListInput = z.infer<typeof AuditListInput>;

export class AuditService {
  constructor(
    private readonly prisma: Prisma,
    private readonly log: Logger,
  ) {}

  /**
   * Writes one entry. The action already happened: a failure to write is logged (with
   * everything the entry held) rather than reported to the caller as if the action failed.
   */
  async record(
    actor: AuditActor,
    action: AuditAction,
    target: { type: string; id?: string | null },
    detail?: Record<string, unknown>,
  ): Promise<void> {
    try {
      await this.prisma.auditEvent.create({
        data: {
          actorUserId: actor.userId,
          actorUsername: actor.username,
          actorVia: actor.via,
          action,
          targetType: target.type,
          targetId: target.id ?? null,
          ...(detail ? { detail: detail as object } : {}),
        },
      });
    } catch (err) {
      this.log.error("audit entry not written", { error: (err as Error).message, actor: actor.username, action, target, detail });
    }
  }

  /** Newest first; pass nextCursor as cursor for the next page. */
  async list(input: AuditListInput): Promise<{ items: AuditEventDto[]; nextCursor: string | null }> {
    const rows = await this.prisma.auditEvent.findMany({
      where: {
        ...(input.action ? { action: input.action } : {}),
        ...(input.actor ? { actorUsername: input.actor } : {}),
        ...(input.cursor ? { id: { lt: BigInt(input.cursor) } } : {}),
      },
      orderBy: { id: "desc" },
      take: input.limit + 1,
    });
    const page = rows.slice(0, input.limit);
    return {
      items: page.map((r) => ({
        id: r.id.toString(),
        at: r.at.getTime(),
        actor: { userId: r.actorUserId, username: r.actorUsername, via: r.actorVia },
        action: r.action,
        target: { type: r.targetType, id: r.targetId },
        detail:
          r.detail !== null && typeof r.detail === "object" && !Array.isArray(r.detail) ? (r.detail as Record<string, unknown>) : null,
      })),
      nextCursor: rows.length > input.limit ? page[page.length - 1]!.id.toString() : null,
    };
  }
}
