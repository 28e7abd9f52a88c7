import { z } from "zod";
import { RolloutDto, RolloutPreflightDto, RolloutSummaryDto } from "@orchard/contracts";
import { CreateRolloutInput, PreflightInput } from "../../services/rollouts.ts";
import { router, operatorProcedure, viewerProcedure } from "../init.ts";

const rolloutId = z.object({ id: z.string().min(1).max(64) });

export const rolloutsRouter = router({
  /** Newest first, without their devices (counts only). */
  list: viewerProcedure
    .input(z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 }))
    .output(z.array(RolloutSummaryDto))
    .query(({ ctx, input }) => ctx.services.rollouts.list(input.limit)),

  get: viewerProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .query(({ ctx, input }) => ctx.services.rollouts.get(input.id)),

  /**
   * Whether each device can load the model, and why not, as `create` would decide it (New rollout shows it
   * before submit); the whole fleet when no device and no tag is given.
   */
  preflight: viewerProcedure
    .input(PreflightInput)
    .output(RolloutPreflightDto)
    .query(({ ctx, input }) => ctx.services.rollouts.preflight(input)),

  /** Starts a rollout; its progress arrives as `rollout:changed` over socket.io. */
  create: operatorProcedure
    .input(CreateRolloutInput)
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.create(input, ctx.principal.userId);
      await ctx.services.audit.record(
        ctx.principal,
        "rollout.created",
        { type: "rollout", id: rollout.id },
        { name: rollout.name, artifactId: input.artifactId, devices: rollout.devices.length },
      );
      return rollout;
    }),

  /** Stops sending the model to more devices; devices already working finish. */
  pause: operatorProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.pause(input.id);
      await ctx.services.audit.record(ctx.principal, "rollout.paused", { type: "rollout", id: input.id }, { name: rollout.name });
      return rollout;
    }),

  /** Carries on after a pause; the failures so far no longer count toward the failure threshold. */
  resume: operatorProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.resume(input.id);
      await ctx.services.audit.record(ctx.principal, "rollout.resumed", { type: "rollout", id: input.id }, { name: rollout.name });
      return rollout;
    }),

  /** Stops the rollout: devices that have not switched models stop, the others finish their health check. */
  abort: operatorProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.abort(input.id);
      await ctx.services.audit.record(ctx.principal, "rollout.aborted", { type: "rollout", id: input.id }, { name: rollout.name });
      return rollout;
    }),

  /** Stops the rollout if it is still going and switches every device that runs its model back to its previous model. */
  rollback: operatorProcedure
    .input(rolloutId)
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.rollback(input.id);
      await ctx.services.audit.record(ctx.principal, "rollout.rolled_back", { type: "rollout", id: input.id }, { name: rollout.name });
      return rollout;
    }),

  /** Switches one device back to its previous model. */
  rollbackDevice: operatorProcedure
    .input(rolloutId.extend({ deviceId: z.string().min(1).max(64) }))
    .output(RolloutDto)
    .mutation(async ({ ctx, input }) => {
      const rollout = await ctx.services.rollouts.rollbackDevice(input.id, input.deviceId);
      await ctx.services.audit.record(
        ctx.principal,
        "rollout.device_rolled_back",
        { type: "rollout", id: input.id },
        { name: rollout.name, deviceId: input.deviceId },
      );
      return rollout;
    }),

  /** The rollout that installed the device's active model (what "Roll back" on the device page uses); null when none did. */
  ofDevice: viewerProcedure
    .input(z.object({ deviceId: z.string().min(1).max(64) }))
    .output(z.object({ rolloutId: z.string(), name: z.string() }).nullable())
    .query(({ ctx, input }) => ctx.services.rollouts.rolloutOfActiveModel(input.deviceId)),
});
