import { z } from "zod";
import { serializeSessionCookie, clearSessionCookie } from "../../http/cookies.ts";
import { protectedProcedure, publicProcedure, router } from "../init.ts";

export const authRouter = router({
  login: publicProcedure
    .input(z.object({ username: z.string().min(1).max(64), password: z.string().min(1).max(256) }))
    .output(z.object({ username: z.string() }))
    .mutation(async ({ ctx, input }) => {
      const { token, expiresAt, principal } = await ctx.services.auth.login(input.username, input.password);
      ctx.setCookie(serializeSessionCookie(token, expiresAt, ctx.origin.startsWith("https:")));
      return { username: principal.username };
    }),
  logout: protectedProcedure.output(z.object({ ok: z.literal(true) })).mutation(async ({ ctx }) => {
    if (ctx.sessionToken) await ctx.services.auth.logout(ctx.sessionToken);
    ctx.setCookie(clearSessionCookie());
    return { ok: true as const };
  }),
  me: protectedProcedure
    .output(z.object({ username: z.string(), role: z.string(), via: z.string() }))
    .query(({ ctx }) => ({ username: ctx.principal.username, role: ctx.principal.role, via: ctx.principal.via })),
});
