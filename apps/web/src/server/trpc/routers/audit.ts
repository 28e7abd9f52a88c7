import { z } from "zod";
import { AuditEventDto, AuditListInput } from "../../services/audit.ts";
import { adminProcedure, router } from "../init.ts";

export const auditRouter = router({
  /** Newest first, optionally one action or one actor (username); pass nextCursor as cursor for the next page. */
  list: adminProcedure
    .input(AuditListInput)
    .output(z.object({ items: z.array(AuditEventDto), nextCursor: z.string().nullable() }))
    .query(({ ctx, input }) => ctx.services.audit.list(input)),
});
