import { z } from "zod";
import { roleAtLeast } from "../../services/auth.ts";
import { router, viewerProcedure } from "../init.ts";

const ApiKeySummary = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  owner: z.string(),
  role: z.string(),
  createdAt: z.number(),
  lastUsedAt: z.number().nullable(),
});

/** Every user manages their own keys (a key acts with its owner's role); admins see and revoke everyone's. */
export const apiKeysRouter = router({
  list: viewerProcedure.output(z.array(ApiKeySummary)).query(({ ctx }) => ctx.services.apiKeys.list(ctx.principal)),
  /**
   * The bootstrap key from ORCHARD_API_KEY (admin, no database row, cannot be revoked here), for admins when it is set;
   * null otherwise. Never the key itself: its last 4 characters when it is long.
   */
  bootstrap: viewerProcedure
    .output(z.object({ last4: z.string().nullable(), lastUsedAt: z.number().nullable() }).nullable())
    .query(({ ctx }) => (roleAtLeast(ctx.principal.role, "admin") ? ctx.services.auth.bootstrapKeyInfo() : null)),
  /** The key itself is returned only here, once. */
  create: viewerProcedure
    .input(z.object({ name: z.string().trim().min(1).max(64) }))
    .output(z.object({ key: z.string(), summary: ApiKeySummary }))
    .mutation(async ({ ctx, input }) => {
      const created = await ctx.services.apiKeys.create({ name: input.name, userId: ctx.principal.userId });
      await ctx.services.audit.record(
        ctx.principal,
        "api_key.created",
        { type: "api_key", id: created.summary.id },
        { name: created.summary.name, owner: created.summary.owner, prefix: created.summary.prefix },
      );
      return created;
    }),
  revoke: viewerProcedure
    .input(z.object({ id: z.string().min(1).max(64) }))
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const revoked = await ctx.services.apiKeys.revoke(input.id, ctx.principal);
      await ctx.services.audit.record(ctx.principal, "api_key.revoked", { type: "api_key", id: input.id }, revoked);
    }),
});
