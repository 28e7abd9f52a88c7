/**
 * Runtime comparisons as every place shows them (dashboard, export, `orchard bench
 * compare`): each model's benchmark rows in the standard results columns, and the
 * models side by side with their factors against the first. The comparison's DTO and
 * its socket event are in socket.ts.
 */
import { z } from "zod";
import { benchTableRows, sideBySide, type BenchTableRow, type SideBySide } from "./bench.ts";
import { BenchRunDto, RuntimeComparisonDto, type RuntimeComparisonStep } from "./socket.ts";

const PerModel = z.array(z.number().nullable());
const PerMetric = z.object({
  ttftMs: PerModel,
  prefillTokS: PerModel,
  decodeTokS: PerModel,
  peakRssBytes: PerModel,
  energyJPerToken: PerModel,
});

/** The zod form of `SideBySide` (bench.ts), for API outputs. */
export const SideBySideSchema = z.object({
  models: z.array(
    z.object({ label: z.string(), backend: z.string().nullable(), tempBeforeC: z.number().nullable(), tempAfterC: z.number().nullable() }),
  ),
  rows: z.array(z.object({ prompt: z.string(), aggregate: z.boolean(), values: PerMetric, speedup: PerMetric })),
}) satisfies z.ZodType<SideBySide>;

/** A comparison with each model's benchmark run (null before it ran) and the models side by side. */
export const RuntimeComparisonDetail = z.object({
  comparison: RuntimeComparisonDto,
  runs: z.array(BenchRunDto.nullable()),
  sideBySide: SideBySideSchema,
});
export type RuntimeComparisonDetail = z.infer<typeof RuntimeComparisonDetail>;

/** "tiny-gguf 1 (llama.cpp)" */
export function stepLabel(step: Pick<RuntimeComparisonStep, "name" | "version" | "runtime">): string {
  return `${step.name} ${step.version} (${step.runtime})`;
}

/** The side-by-side table of a comparison's runs, in step order (a model without a result shows n/a). */
export function comparisonSideBySide(c: Pick<RuntimeComparisonDto, "steps">, runs: readonly (BenchRunDto | null)[]): SideBySide {
  return sideBySide(c.steps.map((s, i) => ({ label: stepLabel(s), result: runs[i]?.devices[0]?.result ?? null })));
}

/** Every model's rows in the standard results columns; the Run column names the model. */
export function comparisonTableRows(c: Pick<RuntimeComparisonDto, "steps">, runs: readonly (BenchRunDto | null)[]): BenchTableRow[] {
  return c.steps.flatMap((s, i) => {
    const d = runs[i]?.devices[0];
    return d?.result ? benchTableRows(stepLabel(s), d.deviceName, d.result) : [];
  });
}
