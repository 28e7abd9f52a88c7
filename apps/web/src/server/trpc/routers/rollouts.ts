import { z } from "zod";
import { RolloutDto, RolloutSummaryDto } from "@orchard/contracts";
import { CreateRolloutInput } from "../../services/rollouts.ts";
import { protectedProcedure, router } from "../init.ts";

const rolloutId = z.object({ id: z.string().min(1).max(64) });

export const rolloutsRouter = router({
  /** Newest first, without their devices (counts only). */
  list: protectedProcedure
    .input(z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 }))
    .output(z.array(RolloutSummaryDto))
    .query(({ ctx, input }) => ctx.services.rollouts.list(input.limit)),

  get: protectedProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .query(({ ctx, input }) => ctx.services.rollouts.get(input.id)),

  /** Starts a rollout; its progress arrives as `rollout:changed` over socket.io. */
  create: protectedProcedure
    .input(CreateRolloutInput)
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.create(input, ctx.principal.userId)),

  /** Stops sending the model to more devices; devices already working finish. */
  pause: protectedProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.pause(input.id)),

  /** Carries on after a pause; the failures so far no longer count toward the failure threshold. */
  resume: protectedProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.resume(input.id)),

  /** Stops the rollout: devices that have not switched models stop, the others finish their health check. */
  abort: protectedProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.abort(input.id)),

  /** Stops the rollout if it is still going and switches every device that runs its model back to its previous model. */
  rollback: protectedProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.rollback(input.id)),

  /** Switches one device back to its previous model. */
  rollbackDevice: protectedProcedure
    .input(rolloutId.extend({ deviceId: z.string().min(1).max(64) }))
    .output(RolloutDto)
    .mutation(({ ctx, input }) => ctx.services.rollouts.rollbackDevice(input.id, input.deviceId)),

  /** The rollout that installed the device's active model (what "Roll back" on the device page uses); null when none did. */
  ofDevice: protectedProcedure
    .input(z.object({ deviceId: z.string().min(1).max(64) }))
    .output(z.object({ rolloutId: z.string(), name: z.string() }).nullable())
    .query(({ ctx, input }) => ctx.services.rollouts.rolloutOfActiveModel(input.deviceId)),
});
