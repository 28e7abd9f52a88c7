import { z } from "zod";
import { FleetTotals } from "@orchard/contracts";
import { FleetOverviewData, TelemetryRangeName } from "@orchard/client";
import { router, viewerProcedure } from "../init.ts";

export const fleetRouter = router({
  /** Fleet-wide figures now (also pushed as `fleet:totals` every 2 s). */
  totals: viewerProcedure.output(FleetTotals).query(({ ctx }) => ctx.services.throughput.totals()),

  /**
   * The fleet overview: fleet tokens/s and devices reporting over the range (per-minute
   * rollups grouped into buckets), every device's decode tokens/s sparkline over the last
   * 30 minutes, and the totals now.
   */
  overview: viewerProcedure
    .input(z.object({ range: TelemetryRangeName }))
    .output(FleetOverviewData)
    .query(({ ctx, input }) => ctx.services.throughput.overview(input.range)),
});
