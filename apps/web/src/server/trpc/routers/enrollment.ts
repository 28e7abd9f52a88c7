import { z } from "zod";
import { OptionalDeviceName } from "../../services/device-names.ts";
import { router, adminProcedure } from "../init.ts";

export const enrollmentRouter = router({
  /** Creates a single-use token and the exact commands to run on the Pi. */
  create: adminProcedure
    .input(
      z.object({
        /** The name the device gets (a taken one gets a suffix at enrollment); empty: the Pi's hostname. */
        deviceName: OptionalDeviceName.optional(),
        ttlMinutes: z
          .number()
          .int()
          .min(5)
          .max(7 * 24 * 60)
          .default(60),
      }),
    )
    .output(z.object({ id: z.string(), token: z.string(), expiresAt: z.number(), serverUrl: z.string(), commands: z.array(z.string()) }))
    .mutation(async ({ ctx, input }) => {
      const { id, token, expiresAt } = await ctx.services.enrollment.createToken({
        deviceName: input.deviceName,
        ttlMinutes: input.ttlMinutes,
        createdById: ctx.principal.userId,
      });
      await ctx.services.audit.record(
        ctx.principal,
        "enrollment.token_created",
        { type: "enrollment_token", id },
        { deviceName: input.deviceName || null, ttlMinutes: input.ttlMinutes },
      );
      const serverUrl = ctx.origin;
      return {
        id,
        token,
        expiresAt,
        serverUrl,
        commands: [
          `sudo -u orchard orchard-agent enroll --server ${serverUrl} --token ${token} --data-dir /var/lib/orchard-agent`,
          "sudo systemctl enable --now orchard-agent",
        ],
      };
    }),

  listPending: adminProcedure
    .output(z.array(z.object({ id: z.string(), deviceName: z.string().nullable(), createdAt: z.number(), expiresAt: z.number() })))
    .query(({ ctx }) => ctx.services.enrollment.listPending()),

  revoke: adminProcedure
    .input(z.object({ id: z.string() }))
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.enrollment.revoke(input.id)),
});
