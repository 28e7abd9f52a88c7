import { z } from "zod";
import { protectedProcedure, router } from "../init.ts";

export const systemRouter = router({
  info: protectedProcedure
    .output(
      z.object({
        version: z.string(),
        db: z.enum(["pglite", "postgresql"]),
        broker: z.object({ embedded: z.boolean(), url: z.string(), connected: z.boolean() }),
      }),
    )
    .query(({ ctx }) => ctx.services.system.info()),
});
