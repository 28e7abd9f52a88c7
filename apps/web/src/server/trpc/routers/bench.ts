import { z } from "zod";
import { BenchRunDto, RuntimeComparisonDetail, RuntimeComparisonDto } from "@orchard/contracts";
import { BenchComparison, BenchRunSummary } from "@orchard/client";
import { CreateBenchRunInput } from "../../services/benchmarks.ts";
import { CompareRuntimesInput } from "../../services/runtime-comparisons.ts";
import { router, operatorProcedure, viewerProcedure } from "../init.ts";

const runId = z.object({ id: z.string().min(1).max(64) });

export const benchRouter = router({
  /** Newest first. */
  list: viewerProcedure
    .input(z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 }))
    .output(z.array(BenchRunSummary))
    .query(({ ctx, input }) => ctx.services.benchmarks.list(input.limit)),

  get: viewerProcedure
    .input(runId)
    .output(BenchRunDto)
    .query(({ ctx, input }) => ctx.services.benchmarks.get(input.id)),

  /** Starts a run on the devices; progress and results arrive as `bench:changed` over socket.io. */
  create: operatorProcedure
    .input(CreateBenchRunInput)
    .output(BenchRunDto)
    .mutation(({ ctx, input }) => ctx.services.benchmarks.create(input)),

  remove: operatorProcedure
    .input(runId)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.benchmarks.remove(input.id)),

  /** Two runs side by side: rows paired by device and prompt, decode/prefill tok/s and TTFT of each with the change in %. */
  compare: viewerProcedure
    .input(z.object({ a: z.string().min(1).max(64), b: z.string().min(1).max(64) }))
    .output(BenchComparison)
    .query(({ ctx, input }) => ctx.services.benchmarks.compare(input.a, input.b)),

  /**
   * One click: each model in turn rolled out to the device (when it does not run it already) and benchmarked,
   * then the device's original model restored. Progress arrives as `bench:comparison` over socket.io.
   */
  compareRuntimes: operatorProcedure
    .input(CompareRuntimesInput)
    .output(RuntimeComparisonDto)
    .mutation(({ ctx, input }) => ctx.services.comparisons.create(input, ctx.principal.userId)),

  /** Runtime comparisons, newest first. */
  comparisons: viewerProcedure
    .input(z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 }))
    .output(z.array(RuntimeComparisonDto))
    .query(({ ctx, input }) => ctx.services.comparisons.list(input.limit)),

  /** A comparison with each model's benchmark run and the models side by side (factors against the first model). */
  comparison: viewerProcedure
    .input(runId)
    .output(RuntimeComparisonDetail)
    .query(({ ctx, input }) => ctx.services.comparisons.detail(input.id)),

  /** Stops after the current step and restores the device's original model. */
  cancelComparison: operatorProcedure
    .input(runId)
    .output(RuntimeComparisonDto)
    .mutation(({ ctx, input }) => ctx.services.comparisons.cancel(input.id)),
});
