import { z } from "zod";
import { AlertDto } from "@orchard/contracts";
import { router, viewerProcedure } from "../init.ts";

const deviceId = z.string().min(1).max(64);

export const alertsRouter = router({
  /** Open alerts, newest first (optionally of one device). */
  active: viewerProcedure
    .input(z.object({ deviceId: deviceId.optional() }).optional())
    .output(z.array(AlertDto))
    .query(({ ctx, input }) => ctx.services.alerts.active({ deviceId: input?.deviceId })),

  /** Alerts, active and cleared, newest start first; pass nextCursor as cursor for the next page. */
  list: viewerProcedure
    .input(
      z.object({
        deviceId: deviceId.optional(),
        activeOnly: z.boolean().default(false),
        limit: z.number().int().min(1).max(500).default(100),
        cursor: z.string().min(1).max(100).optional(),
      }),
    )
    .output(z.object({ items: z.array(AlertDto), nextCursor: z.string().nullable() }))
    .query(({ ctx, input }) => ctx.services.alerts.list(input)),
});
