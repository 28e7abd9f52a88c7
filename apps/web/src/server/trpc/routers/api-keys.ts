import { z } from "zod";
import { protectedProcedure, router } from "../init.ts";

const ApiKeySummary = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  owner: z.string(),
  createdAt: z.number(),
  lastUsedAt: z.number().nullable(),
});

export const apiKeysRouter = router({
  list: protectedProcedure.output(z.array(ApiKeySummary)).query(({ ctx }) => ctx.services.apiKeys.list()),
  /** The key itself is returned only here, once. */
  create: protectedProcedure
    .input(z.object({ name: z.string().trim().min(1).max(64) }))
    .output(z.object({ key: z.string(), summary: ApiKeySummary }))
    .mutation(({ ctx, input }) => ctx.services.apiKeys.create({ name: input.name, userId: ctx.principal.userId })),
  revoke: protectedProcedure
    .input(z.object({ id: z.string() }))
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.apiKeys.revoke(input.id)),
});
