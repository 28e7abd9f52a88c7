import { z } from "zod";
import { serializeSessionCookie, clearSessionCookie } from "../../http/cookies.ts";
import { LoginFailedError } from "../../services/auth.ts";
import { Password } from "../../services/users.ts";
import { publicProcedure, router, viewerProcedure } from "../init.ts";

export const authRouter = router({
  /**
   * Refused with TOO_MANY_REQUESTS after ORCHARD_LOGIN_MAX_FAILURES failures in 15 minutes for the username from this
   * address, or 10 times that for the address or the username alone (services/login-limiter.ts).
   */
  login: publicProcedure
    .input(z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) }))
    .output(z.object({ username: z.string(), role: z.string() }))
    .mutation(async ({ ctx, input }) => {
      try {
        const { token, expiresAt, principal } = await ctx.services.auth.login(input.username, input.password, {
          ip: ctx.clientIp,
          userAgent: ctx.userAgent,
        });
        ctx.setCookie(serializeSessionCookie(token, expiresAt, ctx.origin.startsWith("https:")));
        // Failed sign-ins are not audited one by one (anyone can make them; the server log has them): the lockout is.
        await ctx.services.audit.record(principal, "auth.signed_in", { type: "user", id: principal.userId }, { ip: ctx.clientIp ?? null });
        return { username: principal.username, role: principal.role };
      } catch (err) {
        if (err instanceof LoginFailedError && err.lockedOut) {
          await ctx.services.audit.record(
            { userId: null, username: input.username, via: "login" },
            "auth.locked_out",
            { type: "user", id: input.username },
            { ip: ctx.clientIp ?? null },
          );
        }
        throw err;
      }
    }),
  logout: viewerProcedure.output(z.object({ ok: z.literal(true) })).mutation(async ({ ctx }) => {
    if (ctx.sessionToken) await ctx.services.auth.logout(ctx.sessionToken);
    ctx.setCookie(clearSessionCookie());
    return { ok: true as const };
  }),
  me: viewerProcedure
    .output(z.object({ username: z.string(), role: z.enum(["viewer", "operator", "admin"]), via: z.string() }))
    .query(({ ctx }) => ({ username: ctx.principal.username, role: ctx.principal.role, via: ctx.principal.via })),
  /** Any signed-in user, for their own account: proves the current password; their other sessions end. */
  changePassword: viewerProcedure
    .input(z.object({ currentPassword: z.string().min(1).max(256), newPassword: Password }))
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      await ctx.services.users.changeOwnPassword(ctx.principal, input, ctx.sessionToken);
      await ctx.services.audit.record(ctx.principal, "user.password_changed", { type: "user", id: ctx.principal.userId });
    }),
});
