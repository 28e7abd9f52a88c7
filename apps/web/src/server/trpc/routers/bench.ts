import { z } from "zod";
import { BenchRunDto } from "@orchard/contracts";
import { BenchComparison, BenchRunSummary } from "../../../lib/bench.ts";
import { CreateBenchRunInput } from "../../services/benchmarks.ts";
import { protectedProcedure, router } from "../init.ts";

const runId = z.object({ id: z.string().min(1).max(64) });

export const benchRouter = router({
  /** Newest first. */
  list: protectedProcedure
    .input(z.object({ limit: z.number().int().min(1).max(1000).default(100) }).default({ limit: 100 }))
    .output(z.array(BenchRunSummary))
    .query(({ ctx, input }) => ctx.services.benchmarks.list(input.limit)),

  get: protectedProcedure
    .input(runId)
    .output(BenchRunDto)
    .query(({ ctx, input }) => ctx.services.benchmarks.get(input.id)),

  /** Starts a run on the devices; progress and results arrive as `bench:changed` over socket.io. */
  create: protectedProcedure
    .input(CreateBenchRunInput)
    .output(BenchRunDto)
    .mutation(({ ctx, input }) => ctx.services.benchmarks.create(input)),

  remove: protectedProcedure
    .input(runId)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.benchmarks.remove(input.id)),

  /** Two runs side by side: rows paired by device and prompt, decode/prefill tok/s and TTFT of each with the change in %. */
  compare: protectedProcedure
    .input(z.object({ a: z.string().min(1).max(64), b: z.string().min(1).max(64) }))
    .output(BenchComparison)
    .query(({ ctx, input }) => ctx.services.benchmarks.compare(input.a, input.b)),
});
