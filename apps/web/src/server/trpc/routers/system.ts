import { z } from "zod";
import { router, viewerProcedure } from "../init.ts";

export const systemRouter = router({
  info: viewerProcedure
    .output(
      z.object({
        version: z.string(),
        db: z.enum(["pglite", "postgresql"]),
        broker: z.object({ embedded: z.boolean(), url: z.string(), connected: z.boolean() }),
      }),
    )
    .query(({ ctx }) => ctx.services.system.info()),
});
