/**
 * The signed-in user's own account (the Account page): their sessions, listed and ended.
 * Any role; always the caller's own data (an admin sees only their own sessions here).
 * The password is changed with auth.changePassword, which ends the other sessions.
 */
import { z } from "zod";
import { AppError } from "../../errors.ts";
import type { Principal } from "../../services/auth.ts";
import { router, viewerProcedure } from "../init.ts";

const OwnSessionDto = z.object({
  id: z.string(),
  createdAt: z.number(),
  lastSeenAt: z.number(),
  expiresAt: z.number(),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  current: z.boolean(),
});

function ownUserId(principal: Principal): string {
  if (!principal.userId)
    throw new AppError("bad_request", "The bootstrap API key (ORCHARD_API_KEY) is no user account: it has no sessions.");
  return principal.userId;
}

export const accountRouter = router({
  /** The caller's sessions that have not expired, the most recently used first; `current` is the one this request came with. */
  sessions: viewerProcedure
    .output(z.array(OwnSessionDto))
    .query(({ ctx }) => (ctx.principal.userId ? ctx.services.auth.listSessions(ctx.principal.userId, ctx.sessionToken) : [])),

  /** Ends one of the caller's other sessions: its cookie is refused from the next request on. */
  revokeSession: viewerProcedure
    .input(z.object({ id: z.string().regex(/^[0-9a-f]{64}$/, "a session id from account.sessions") }))
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const userId = ownUserId(ctx.principal);
      await ctx.services.auth.revokeSession(userId, input.id, ctx.sessionToken);
      await ctx.services.audit.record(ctx.principal, "auth.sessions_revoked", { type: "user", id: userId }, { count: 1 });
    }),

  /** Ends every session of the caller but this one; returns how many ended. Only from a session ("others" of an API key is unclear). */
  revokeOtherSessions: viewerProcedure.output(z.object({ count: z.number().int() })).mutation(async ({ ctx }) => {
    const userId = ownUserId(ctx.principal);
    if (ctx.principal.via !== "session" || !ctx.sessionToken) {
      throw new AppError(
        "bad_request",
        "Sign in with a browser to end your other sessions: an API key is no session, so it has no others.",
      );
    }
    const count = await ctx.services.auth.revokeOtherSessions(userId, ctx.sessionToken);
    if (count > 0)
      await ctx.services.audit.record(ctx.principal, "auth.sessions_revoked", { type: "user", id: userId }, { count, others: true });
    return { count };
  }),
});
