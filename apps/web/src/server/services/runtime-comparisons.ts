/**
 * Runtime comparisons: one device, several models (typically one per runtime), one
 * click. For each model in turn the device is switched to it when it does not run it
 * already (a single-device rollout through RolloutService: no canary, health gate on)
 * and the standard benchmark runs on it (BenchmarkService); at the end the device is
 * switched back to the model it started with (a rollout of that artifact), also after
 * a failed step or a cancel.
 *
 * The comparison is a row whose `phase` and `stepIndex` say where it is; `advance()`
 * reads it, looks at the rollout or benchmark run of the current step, and takes the
 * next step (plan from stored state, then act). It runs whenever something it waits
 * for changes: the rollout service's and the benchmark service's `changed` events, the
 * device's status (a model that became ready), a cancel. Nothing waits on a timer, and
 * a server restart only has to call `recover()`: the rollouts and benchmark runs
 * resume in their own services, and the comparison picks up from its row.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { z } from "zod";
import {
  BENCH_DEFAULT_MAX_NEW_TOKENS,
  BENCH_STANDARD_PROMPTS,
  BenchPrompt,
  ROLLOUT_ACTIVE_STATES,
  RuntimeComparisonPhase,
  RuntimeComparisonState,
  RuntimeComparisonStep,
  Sha256Hex,
  runtimeRefusal,
  comparisonSideBySide,
  comparisonTableRows,
  stepLabel,
  type BenchRunDto,
  type DeviceSummary,
  type RolloutDto,
  type RuntimeComparisonDetail,
  type RuntimeComparisonDto,
} from "@orchard/contracts";
import { benchToCsv, comparisonMarkdown } from "@orchard/client";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { benchUnavailableReason, exportFileName, type BenchmarkService } from "./benchmarks.ts";
import type { FleetService } from "./fleet.ts";
import { CoalescedAnnouncer, KeyedSerial } from "./keyed-work.ts";
import type { RolloutService } from "./rollouts.ts";

export const MAX_COMPARE_MODELS = 8;

export const CompareRuntimesInput = z.object({
  name: z.string().trim().max(120, "A comparison name may be at most 120 characters long.").optional(),
  deviceId: z.string().min(1, "Choose a device.").max(64),
  artifactIds: z
    .array(Sha256Hex)
    .min(2, "Choose at least two models to compare.")
    .max(MAX_COMPARE_MODELS, `Compare at most ${MAX_COMPARE_MODELS} models at once.`),
  prompts: z.array(BenchPrompt).min(1).max(20).optional(),
  maxNewTokens: z.number().int().min(1).max(2048).optional(),
});
export type CompareRuntimesInput = z.input<typeof CompareRuntimesInput>;

export interface RuntimeComparisonEvents {
  changed: [RuntimeComparisonDto];
}

export interface RuntimeComparisonOptions {
  /** Changes to one comparison within this window are announced once. */
  emitCoalesceMs: number;
  /** The rollouts a comparison makes fail a device that has not finished within this. */
  rolloutTimeoutMs: number;
  /** The health gate's limit for loading the model and answering the reference prompt. */
  healthTimeoutMs: number;
}

export const DEFAULT_COMPARISON_OPTIONS: RuntimeComparisonOptions = {
  emitCoalesceMs: 250,
  rolloutTimeoutMs: 60 * 60_000,
  healthTimeoutMs: 600_000,
};

type Row = {
  id: string;
  name: string;
  deviceId: string;
  deviceName: string;
  steps: unknown;
  originalArtifactId: string | null;
  state: string;
  phase: string;
  stepIndex: number;
  restoreRolloutId: string | null;
  error: string | null;
  cancelRequested: boolean;
  maxNewTokens: number;
  prompts: unknown;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
};

interface Comparison {
  id: string;
  name: string;
  deviceId: string;
  deviceName: string;
  steps: RuntimeComparisonStep[];
  originalArtifactId: string | null;
  state: RuntimeComparisonState;
  phase: RuntimeComparisonPhase;
  stepIndex: number;
  restoreRolloutId: string | null;
  error: string | null;
  cancelRequested: boolean;
  maxNewTokens: number;
  prompts: BenchPrompt[];
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

function fromRow(row: Row): Comparison {
  const steps = z.array(RuntimeComparisonStep).safeParse(row.steps);
  const prompts = z.array(BenchPrompt).safeParse(row.prompts);
  const state = RuntimeComparisonState.safeParse(row.state);
  const phase = RuntimeComparisonPhase.safeParse(row.phase);
  return {
    id: row.id,
    name: row.name,
    deviceId: row.deviceId,
    deviceName: row.deviceName,
    steps: steps.success ? steps.data : [],
    originalArtifactId: row.originalArtifactId,
    state: state.success ? state.data : "failed",
    phase: phase.success ? phase.data : "done",
    stepIndex: row.stepIndex,
    restoreRolloutId: row.restoreRolloutId,
    error: row.error ?? (steps.success && prompts.success ? null : "The comparison's record is unreadable."),
    cancelRequested: row.cancelRequested,
    maxNewTokens: row.maxNewTokens,
    prompts: prompts.success ? prompts.data : [],
    createdAt: row.createdAt.getTime(),
    updatedAt: row.updatedAt.getTime(),
    finishedAt: row.finishedAt?.getTime() ?? null,
  };
}

/** "Runtimes on pi-1 2026-11-28 06:40 UTC" */
export function defaultComparisonName(deviceName: string, ts: number): string {
  return `Runtimes on ${deviceName} ${new Date(ts).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** Whether the device runs the artifact and its runner is ready for prompts. */
function runsReady(device: DeviceSummary, artifactId: string | null): boolean {
  return device.online && device.runner?.state === "ready" && (device.activeModel?.artifactId ?? null) === artifactId;
}

const ROLLOUT_OPEN = ["running", "paused"];

export class RuntimeComparisonService extends EventEmitter<RuntimeComparisonEvents> {
  /** Running comparisons: their device and the rollouts and runs they wait for, to route events. */
  private readonly open = new Map<string, { deviceId: string; watches: Set<string> }>();
  private readonly writes: KeyedSerial;
  private readonly announcer: CoalescedAnnouncer;
  private readonly queued = new Set<string>();
  /** Devices of comparisons being created, so two creates cannot both take a device. */
  private readonly reserved = new Set<string>();
  private readonly onRollout = (r: RolloutDto) => this.wake(r.id);
  private readonly onRun = (run: BenchRunDto) => this.wake(run.id);
  private readonly onDevice = (d: DeviceSummary) => this.wakeDevice(d.id);
  private readonly onRemoved = (deviceId: string) => this.wakeDevice(deviceId);

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly rollouts: RolloutService,
    private readonly benchmarks: BenchmarkService,
    private readonly opts: RuntimeComparisonOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.writes = new KeyedSerial((id, err) => log.error("a runtime comparison step failed", { comparison: id, error: err.message }));
    this.announcer = new CoalescedAnnouncer(
      opts.emitCoalesceMs,
      async (id) => {
        const c = await this.find(id);
        if (c) this.emit("changed", await this.toDto(c, true));
      },
      (id, err) => log.warn("could not announce a runtime comparison change", { comparison: id, error: err.message }),
    );
    rollouts.on("changed", this.onRollout);
    benchmarks.on("changed", this.onRun);
    fleet.on("device", this.onDevice);
    fleet.on("removed", this.onRemoved);
  }

  /** After a (re)start: every running comparison carries on from its row. Call after the rollout and benchmark services recovered. */
  async recover(): Promise<number> {
    const rows = await this.prisma.runtimeComparison.findMany({ where: { state: "running" } });
    for (const row of rows) {
      const c = fromRow(row);
      this.track(c);
      this.kick(c.id);
    }
    return rows.length;
  }

  // ------------------------------------------------------------ queries

  async list(limit = 100): Promise<RuntimeComparisonDto[]> {
    const rows = await this.prisma.runtimeComparison.findMany({ orderBy: { createdAt: "desc" }, take: limit });
    return Promise.all(rows.map((row) => this.toDto(fromRow(row), false)));
  }

  async get(id: string): Promise<RuntimeComparisonDto> {
    const c = await this.find(id);
    if (!c) throw new AppError("not_found", `No runtime comparison ${id}.`);
    return this.toDto(c, true);
  }

  async detail(id: string): Promise<RuntimeComparisonDetail> {
    const comparison = await this.get(id);
    const runs = await Promise.all(
      comparison.steps.map((s) => (s.runId ? this.benchmarks.get(s.runId).catch(() => null) : Promise.resolve(null))),
    );
    return { comparison, runs, sideBySide: comparisonSideBySide(comparison, runs) };
  }

  /** Every model's results in the standard columns (Run = the model), plus the side-by-side table in Markdown. */
  async export(id: string, format: "csv" | "md"): Promise<{ fileName: string; contentType: string; body: string }> {
    const { comparison, runs, sideBySide: table } = await this.detail(id);
    const rows = comparisonTableRows(comparison, runs);
    if (format === "csv")
      return { fileName: exportFileName(comparison, "csv"), contentType: "text/csv; charset=utf-8", body: benchToCsv(rows) };
    return {
      fileName: exportFileName(comparison, "md"),
      contentType: "text/markdown; charset=utf-8",
      body: comparisonMarkdown(comparison, table, rows),
    };
  }

  // ------------------------------------------------------------ operator actions

  async create(raw: CompareRuntimesInput, createdById: string | null): Promise<RuntimeComparisonDto> {
    const parsed = CompareRuntimesInput.safeParse(raw);
    if (!parsed.success) throw new AppError("bad_request", parsed.error.issues[0]?.message ?? "Invalid runtime comparison.");
    const input = parsed.data;
    if (new Set(input.artifactIds).size !== input.artifactIds.length) throw new AppError("bad_request", "Choose each model only once.");
    const prompts = input.prompts ?? [...BENCH_STANDARD_PROMPTS];
    if (new Set(prompts.map((p) => p.id)).size !== prompts.length) throw new AppError("bad_request", "Each prompt needs its own id.");

    const device = this.fleet.get(input.deviceId);
    if (!device) throw new AppError("not_found", `No device ${input.deviceId} (it may have been deleted).`);
    if (!device.online) throw new AppError("unavailable", `${device.name} is offline; a comparison needs it online.`);
    const notReady = benchUnavailableReason(device);
    if (notReady) throw new AppError("conflict", notReady.replace(" when the run started", ""));
    const original = device.activeModel?.artifactId ?? null;
    if (!original) {
      throw new AppError(
        "conflict",
        `${device.name} runs a model that did not come from a rollout (${device.activeModel?.name ?? device.runner?.model ?? "unknown"}), so it could not be put back after the comparison. Roll out a model to it first.`,
      );
    }
    const artifacts = await this.prisma.artifact.findMany({
      where: { id: { in: input.artifactIds } },
      select: { id: true, name: true, version: true, runtime: true },
    });
    const steps: RuntimeComparisonStep[] = input.artifactIds.map((id) => {
      const a = artifacts.find((x) => x.id === id);
      if (!a) throw new AppError("not_found", `No model ${id} (it may have been deleted).`);
      const runtime = RuntimeComparisonStep.shape.runtime.safeParse(a.runtime);
      if (!runtime.success)
        throw new AppError("bad_request", `${a.name} ${a.version} has a runtime this server does not know (${a.runtime}).`);
      const refusal = runtimeRefusal(device, a.runtime);
      if (refusal) throw new AppError("bad_request", `${refusal} (${a.name} ${a.version})`);
      return {
        artifactId: id,
        name: a.name,
        version: a.version,
        runtime: runtime.data,
        rolloutId: null,
        runId: null,
        state: "pending",
        error: null,
      };
    });
    if (this.reserved.has(device.id)) throw new AppError("conflict", `${device.name} is in a comparison being started.`);
    this.reserved.add(device.id);
    try {
      const running = await this.prisma.runtimeComparison.findFirst({ where: { deviceId: device.id, state: "running" } });
      if (running)
        throw new AppError("conflict", `${device.name} is already in a runtime comparison (${running.name}); cancel it or wait for it.`);
      this.rollouts.assertDevicesFree([device.id]);
      if (this.benchmarks.deviceBusy(device.id))
        throw new AppError("conflict", `${device.name} is running a benchmark; wait for it to finish.`);

      const now = this.now();
      const id = randomBytes(12).toString("base64url");
      steps[0]!.state = "rolling_out";
      const row = await this.prisma.runtimeComparison.create({
        data: {
          id,
          name: input.name || defaultComparisonName(device.name, now),
          deviceId: device.id,
          deviceName: device.name,
          steps,
          originalArtifactId: original,
          state: "running",
          phase: "rolling_out",
          stepIndex: 0,
          maxNewTokens: input.maxNewTokens ?? BENCH_DEFAULT_MAX_NEW_TOKENS,
          prompts,
          createdById,
          createdAt: new Date(now),
          updatedAt: new Date(now),
        },
      });
      const c = fromRow(row);
      this.log.info("runtime comparison started", { comparison: id, device: device.id, models: steps.length });
      this.track(c);
      this.kick(id);
      await this.writes.settle(id);
      const dto = await this.get(id);
      this.emit("changed", dto);
      return dto;
    } finally {
      this.reserved.delete(device.id);
    }
  }

  /** Stops after the current step and puts the original model back (a rollout in progress is aborted). */
  async cancel(id: string): Promise<RuntimeComparisonDto> {
    let failure: unknown;
    this.writes.enqueue(
      id,
      async () => {
        const c = await this.find(id);
        if (!c) throw new AppError("not_found", `No runtime comparison ${id}.`);
        if (c.state !== "running") throw new AppError("conflict", `${c.name} is ${c.state} already.`);
        if (c.cancelRequested) return;
        c.cancelRequested = true;
        await this.save(c);
        this.log.info("runtime comparison cancelled", { comparison: id });
      },
      { onError: (err) => (failure = err) },
    );
    await this.writes.settle(id);
    if (failure) throw failure;
    this.kick(id);
    await this.writes.settle(id);
    return this.get(id);
  }

  /** Waits until every queued step is done and every change announced. */
  async idle(): Promise<void> {
    await this.writes.idle();
    await this.announcer.flush();
  }

  async close(): Promise<void> {
    this.rollouts.off("changed", this.onRollout);
    this.benchmarks.off("changed", this.onRun);
    this.fleet.off("device", this.onDevice);
    this.fleet.off("removed", this.onRemoved);
    await this.idle();
    this.announcer.close();
  }

  // ------------------------------------------------------------ the state machine

  private track(c: Comparison): void {
    const watches = new Set<string>();
    for (const s of c.steps) {
      if (s.rolloutId) watches.add(s.rolloutId);
      if (s.runId) watches.add(s.runId);
    }
    if (c.restoreRolloutId) watches.add(c.restoreRolloutId);
    this.open.set(c.id, { deviceId: c.deviceId, watches });
  }

  private wake(rolloutOrRunId: string): void {
    for (const [id, o] of this.open) if (o.watches.has(rolloutOrRunId)) this.kick(id);
  }

  private wakeDevice(deviceId: string): void {
    for (const [id, o] of this.open) if (o.deviceId === deviceId) this.kick(id);
  }

  /** Queues one `advance` (several wake-ups before it runs make one). */
  private kick(id: string): void {
    if (this.queued.has(id)) return;
    this.queued.add(id);
    this.writes.enqueue(id, () => {
      this.queued.delete(id);
      return this.advance(id);
    });
  }

  /** Looks at the comparison and what its current step waits for, and takes the next step if there is one. */
  private async advance(id: string): Promise<void> {
    const c = await this.find(id);
    if (!c || c.state !== "running") {
      this.open.delete(id);
      return;
    }
    const device = this.fleet.get(c.deviceId);
    if (!device) {
      c.error ??= `${c.deviceName} was deleted during the comparison.`;
      return this.finish(c, "failed");
    }
    if (c.phase === "restoring") return this.restore(c, device);
    if (c.cancelRequested || c.error || c.phase === "done") return this.startRestore(c);

    const step = c.steps[c.stepIndex];
    if (!step) return this.startRestore(c);
    if (c.phase === "rolling_out") return this.rollOut(c, step, device);
    return this.bench(c, step, device);
  }

  private async rollOut(c: Comparison, step: RuntimeComparisonStep, device: DeviceSummary): Promise<void> {
    const toBench = async () => {
      Object.assign(step, { state: "benchmarking" });
      c.phase = "benchmarking";
      await this.save(c);
      return this.bench(c, step, device);
    };
    if (!step.rolloutId) {
      if (runsReady(device, step.artifactId)) return toBench();
      if (device.activeModel?.artifactId === step.artifactId) return; // its runner is (re)starting: wait for ready
      let rollout: RolloutDto;
      try {
        rollout = await this.rollouts.create(
          {
            name: `${c.name} · ${stepLabel(step)}`,
            artifactId: step.artifactId,
            deviceIds: [c.deviceId],
            strategy: this.strategy(),
          },
          null,
        );
      } catch (err) {
        return this.failStep(c, step, `${stepLabel(step)} could not be rolled out to ${device.name}: ${(err as Error).message}`);
      }
      step.rolloutId = rollout.id;
      this.open.get(c.id)?.watches.add(rollout.id);
      await this.save(c);
      this.log.info("runtime comparison rolling out", { comparison: c.id, rollout: rollout.id, artifact: step.artifactId });
      return;
    }
    const rollout = await this.rollouts.get(step.rolloutId).catch(() => null);
    if (!rollout) return this.failStep(c, step, `The rollout of ${stepLabel(step)} was deleted.`);
    const d = rollout.devices.find((x) => x.deviceId === c.deviceId);
    const failed = d && (d.state === "failed" || d.state === "rolled_back" || d.state === "aborted") && !d.willRetry;
    if (failed || rollout.state === "failed" || rollout.state === "aborted" || rollout.state === "paused") {
      if (ROLLOUT_OPEN.includes(rollout.state)) await this.rollouts.abort(rollout.id).catch(() => undefined);
      const why = d?.error?.message ?? rollout.pausedReason ?? `the rollout ended ${rollout.state}`;
      return this.failStep(c, step, `${stepLabel(step)} could not be rolled out to ${device.name}: ${why}`);
    }
    // The device reports the new model while its health gate still runs: only a completed rollout counts.
    if (rollout.state === "completed" && runsReady(device, step.artifactId)) return toBench();
  }

  private async bench(c: Comparison, step: RuntimeComparisonStep, device: DeviceSummary): Promise<void> {
    if (!step.runId) {
      if (!runsReady(device, step.artifactId)) return; // e.g. the runner restarted meanwhile
      let run: BenchRunDto;
      try {
        run = await this.benchmarks.create({
          name: `${c.name} · ${stepLabel(step)}`,
          deviceIds: [c.deviceId],
          prompts: c.prompts,
          maxNewTokens: c.maxNewTokens,
        });
      } catch (err) {
        return this.failStep(c, step, `The benchmark of ${stepLabel(step)} could not start: ${(err as Error).message}`);
      }
      step.runId = run.id;
      this.open.get(c.id)?.watches.add(run.id);
      await this.save(c);
      if (run.state !== "finished") return;
    }
    const run = await this.benchmarks.get(step.runId).catch(() => null);
    if (!run) return this.failStep(c, step, `The benchmark run of ${stepLabel(step)} was deleted.`);
    if (run.state !== "finished") return;
    const d = run.devices.find((x) => x.deviceId === c.deviceId);
    if (!d || d.state !== "done") {
      return this.failStep(c, step, `The benchmark of ${stepLabel(step)} failed: ${d?.error ?? "the device has no result"}`);
    }
    step.state = "done";
    if (c.stepIndex + 1 < c.steps.length) {
      c.stepIndex += 1;
      c.steps[c.stepIndex]!.state = "rolling_out";
      c.phase = "rolling_out";
      await this.save(c);
      this.kick(c.id);
      return;
    }
    await this.startRestore(c);
  }

  private async failStep(c: Comparison, step: RuntimeComparisonStep, reason: string): Promise<void> {
    Object.assign(step, { state: "failed", error: reason });
    c.error = reason;
    this.log.info("runtime comparison step failed", { comparison: c.id, reason });
    await this.startRestore(c);
  }

  /** From here on only the original model matters: the steps not reached are skipped. */
  private async startRestore(c: Comparison): Promise<void> {
    for (const s of c.steps)
      if (s.state === "pending" || (c.cancelRequested && s.state !== "done" && s.state !== "failed")) s.state = "skipped";
    c.phase = "restoring";
    await this.save(c);
    const device = this.fleet.get(c.deviceId);
    if (device) await this.restore(c, device);
    else this.kick(c.id);
  }

  private async restore(c: Comparison, device: DeviceSummary): Promise<void> {
    const original = c.originalArtifactId;
    // A step's rollout still going (a cancel mid-download): stop it, and wait until the device has reported where
    // it ended (past activation an abort no longer stops it, so only then is its model known).
    let working = false;
    for (const s of c.steps) {
      if (!s.rolloutId) continue;
      const r = await this.rollouts.get(s.rolloutId).catch(() => null);
      if (r && ROLLOUT_OPEN.includes(r.state)) await this.rollouts.abort(r.id).catch(() => undefined);
      const d = r?.devices.find((x) => x.deviceId === c.deviceId);
      if (d && (ROLLOUT_ACTIVE_STATES.includes(d.state) || (d.state === "pending" && d.sent))) working = true;
    }
    if (working) return;
    if (!original) return this.finish(c); // refused at create; kept for rows written by other versions
    if (!c.restoreRolloutId) {
      // Never switched (or switched back by the health gate): nothing to restore.
      if (device.activeModel?.artifactId === original && device.runner?.state !== "starting") return this.finish(c);
      let rollout: RolloutDto;
      try {
        rollout = await this.rollouts.create(
          { name: `${c.name} · restore`, artifactId: original, deviceIds: [c.deviceId], strategy: this.strategy() },
          null,
        );
      } catch (err) {
        // The aborted step's rollout still holds the device until it reports: try again when it does.
        if (err instanceof AppError && err.code === "conflict") return;
        c.error = `${c.error ? `${c.error} ` : ""}The original model could not be restored: ${(err as Error).message}`;
        return this.finish(c, "failed");
      }
      c.restoreRolloutId = rollout.id;
      this.open.get(c.id)?.watches.add(rollout.id);
      await this.save(c);
      this.log.info("runtime comparison restoring the original model", { comparison: c.id, rollout: rollout.id });
      return;
    }
    const r = await this.rollouts.get(c.restoreRolloutId).catch(() => null);
    const d = r?.devices.find((x) => x.deviceId === c.deviceId);
    const failed =
      !r ||
      r.state === "failed" ||
      r.state === "aborted" ||
      r.state === "paused" ||
      (d && ["failed", "rolled_back", "aborted"].includes(d.state) && !d.willRetry);
    if (failed) {
      if (r && ROLLOUT_OPEN.includes(r.state)) await this.rollouts.abort(r.id).catch(() => undefined);
      const why = d?.error?.message ?? r?.pausedReason ?? (r ? `the rollout ended ${r.state}` : "its rollout was deleted");
      c.error = `${c.error ? `${c.error} ` : ""}The original model could not be restored: ${why}`;
      return this.finish(c, "failed");
    }
    // Completed, and the device reports the original model loaded (its status wakes us).
    if (r.state === "completed" && runsReady(device, original)) return this.finish(c);
  }

  private async finish(c: Comparison, state?: RuntimeComparisonState): Promise<void> {
    c.state = state ?? (c.error ? "failed" : c.cancelRequested ? "cancelled" : "completed");
    c.phase = "done";
    c.finishedAt = this.now();
    await this.save(c);
    this.open.delete(c.id);
    this.log.info(`runtime comparison ${c.state}`, { comparison: c.id, error: c.error });
  }

  private strategy() {
    return {
      canary: 0,
      batchSize: 1,
      maxConcurrentDownloads: 1,
      failureThreshold: 1,
      // A failed step ends the comparison at once (the agent already retries downloads itself).
      retries: 0,
      deviceTimeoutMs: this.opts.rolloutTimeoutMs,
      health: { referenceCheck: true, minDecodeTokS: null, timeoutMs: this.opts.healthTimeoutMs },
    };
  }

  // ------------------------------------------------------------ internals

  private async save(c: Comparison): Promise<void> {
    c.updatedAt = this.now();
    await this.prisma.runtimeComparison.update({
      where: { id: c.id },
      data: {
        steps: c.steps,
        state: c.state,
        phase: c.phase,
        stepIndex: c.stepIndex,
        restoreRolloutId: c.restoreRolloutId,
        error: c.error,
        cancelRequested: c.cancelRequested,
        updatedAt: new Date(c.updatedAt),
        finishedAt: c.finishedAt === null ? null : new Date(c.finishedAt),
      },
    });
    this.announcer.schedule(c.id);
  }

  private async find(id: string): Promise<Comparison | null> {
    const row = await this.prisma.runtimeComparison.findUnique({ where: { id } });
    return row ? fromRow(row) : null;
  }

  /** With `live`, the current rollout's device state and the benchmark's progress are looked up for the step text. */
  private async toDto(c: Comparison, live: boolean): Promise<RuntimeComparisonDto> {
    const step = c.steps[c.stepIndex];
    let stepText: string;
    let progress: RuntimeComparisonDto["progress"] = null;
    if (c.phase === "done") {
      stepText =
        c.state === "completed"
          ? `Done: ${c.steps.length} models compared, original model restored`
          : c.state === "cancelled"
            ? "Cancelled; original model restored"
            : `Failed: ${c.error ?? "no reason given"}`;
    } else if (c.phase === "restoring") {
      stepText = "Restoring the original model…";
      if (live && c.restoreRolloutId) {
        const r = await this.rollouts.get(c.restoreRolloutId).catch(() => null);
        const d = r?.devices[0];
        if (d) stepText = `Restoring the original model… (${d.state.replace("_", " ")})`;
      }
    } else if (c.phase === "rolling_out" && step) {
      stepText = `Rolling out ${stepLabel(step)}…`;
      if (live && step.rolloutId) {
        const r = await this.rollouts.get(step.rolloutId).catch(() => null);
        const d = r?.devices[0];
        if (d) {
          const pct = d.state === "downloading" && d.bytesTotal > 0 ? ` ${Math.floor((d.bytesDone / d.bytesTotal) * 100)}%` : "";
          stepText = `Rolling out ${stepLabel(step)}… (${d.state === "active" ? "loading" : d.state.replace("_", " ")}${pct})`;
        }
      }
    } else if (step) {
      const total = c.prompts.length;
      progress = { completed: 0, total };
      if (live && step.runId) {
        const run = await this.benchmarks.get(step.runId).catch(() => null);
        const d = run?.devices[0];
        if (d) progress = { completed: d.completed, total: d.total };
      }
      stepText = `Benchmarking ${stepLabel(step)}: ${progress.completed}/${progress.total} prompts`;
    } else {
      stepText = "";
    }
    if (c.cancelRequested && c.phase !== "done") stepText = `Cancelling: ${stepText}`;
    return {
      id: c.id,
      name: c.name,
      deviceId: c.deviceId,
      deviceName: this.fleet.get(c.deviceId)?.name ?? c.deviceName,
      state: c.state,
      phase: c.phase,
      stepIndex: c.stepIndex,
      stepText,
      progress,
      steps: c.steps,
      originalArtifactId: c.originalArtifactId,
      restoreRolloutId: c.restoreRolloutId,
      error: c.error,
      cancelRequested: c.cancelRequested,
      maxNewTokens: c.maxNewTokens,
      promptCount: c.prompts.length,
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
      finishedAt: c.finishedAt,
    };
  }
}
