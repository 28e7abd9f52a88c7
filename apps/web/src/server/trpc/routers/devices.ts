import { randomUUID } from "node:crypto";
import { z } from "zod";
import { DeviceEvent, DeviceSummary, TelemetrySample } from "@orchard/contracts";
import { AppError } from "../../errors.ts";
import { TelemetrySeries } from "@orchard/client";
import { DeviceName } from "../../services/device-names.ts";
import { router, adminProcedure, operatorProcedure, viewerProcedure } from "../init.ts";

const deviceId = z.object({ id: z.string().min(1).max(64) });

export const devicesRouter = router({
  list: viewerProcedure.output(z.array(DeviceSummary)).query(({ ctx }) => ctx.services.fleet.list()),

  get: viewerProcedure
    .input(deviceId)
    .output(DeviceSummary)
    .query(({ ctx, input }) => {
      const device = ctx.services.fleet.get(input.id);
      if (!device) throw new AppError("not_found", `No device ${input.id}.`);
      return device;
    }),

  /** Raw samples since sinceMs (thinned to 2,000), for scripts; charts use telemetrySeries. */
  telemetry: viewerProcedure
    .input(deviceId.extend({ sinceMs: z.number().int().nonnegative() }))
    .output(z.array(TelemetrySample))
    .query(({ ctx, input }) => ctx.services.devices.telemetry(input.id, input.sinceMs)),

  /**
   * Telemetry for charts over [toMs - rangeMs, toMs] (toMs: now): raw samples for ranges
   * up to 3 h, per-minute rollups grouped into buckets for longer ones; at most 2,000 points.
   */
  telemetrySeries: viewerProcedure
    .input(
      deviceId.extend({
        rangeMs: z
          .number()
          .int()
          .min(60_000)
          .max(366 * 86_400_000),
        toMs: z.number().int().nonnegative().optional(),
      }),
    )
    .output(TelemetrySeries)
    .query(({ ctx, input }) => ctx.services.devices.telemetrySeries(input.id, input.rangeMs, input.toMs)),

  events: viewerProcedure
    .input(deviceId.extend({ limit: z.number().int().min(1).max(500).default(50) }))
    .output(z.array(z.object({ deviceId: z.string(), event: DeviceEvent })))
    .query(({ ctx, input }) => ctx.services.devices.events(input.id, input.limit)),

  /** Names are unique without regard to case and never another device's id (services/device-names.ts). */
  rename: operatorProcedure
    .input(deviceId.extend({ name: DeviceName }))
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const before = ctx.services.fleet.get(input.id)?.name;
      await ctx.services.devices.rename(input.id, input.name);
      await ctx.services.audit.record(ctx.principal, "device.renamed", { type: "device", id: input.id }, { from: before, to: input.name });
    }),

  /** Replaces the device's tags (rollouts can target devices by tag). */
  setTags: operatorProcedure
    .input(deviceId.extend({ tags: z.array(z.string().max(64)).max(64) }))
    .output(z.array(z.string()))
    .mutation(({ ctx, input }) => ctx.services.devices.setTags(input.id, input.tags)),

  remove: adminProcedure
    .input(deviceId)
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const name = ctx.services.fleet.get(input.id)?.name;
      await ctx.services.devices.remove(input.id);
      await ctx.services.audit.record(ctx.principal, "device.deleted", { type: "device", id: input.id }, { name });
    }),

  /**
   * Gives the device a new broker (and HTTP) password without re-enrolling it; the old one works until the
   * device confirms it stored the new one (docs/protocol.md). "pending" when it is offline or has not confirmed yet.
   */
  rotateCredentials: adminProcedure
    .input(deviceId)
    .output(z.object({ state: z.enum(["applied", "pending"]), message: z.string() }))
    .mutation(async ({ ctx, input }) => {
      const result = await ctx.services.credentials.rotate(input.id);
      await ctx.services.audit.record(
        ctx.principal,
        "device.credentials_rotated",
        { type: "device", id: input.id },
        { state: result.state },
      );
      return result;
    }),

  restartRunner: operatorProcedure
    .input(deviceId)
    .output(z.object({ commandId: z.string() }))
    .mutation(async ({ ctx, input }) => {
      const device = ctx.services.fleet.get(input.id);
      if (!device) throw new AppError("not_found", `No device ${input.id}.`);
      if (!device.online) throw new AppError("unavailable", `${device.name} is offline; the command would not reach it.`);
      const commandId = randomUUID();
      await ctx.services.link.publishCommand(input.id, { type: "runner.restart", id: commandId, ts: Date.now() });
      return { commandId };
    }),
});
