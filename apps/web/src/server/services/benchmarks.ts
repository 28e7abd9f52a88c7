/**
 * Benchmark runs: the standard prompt set sent to several devices at once, and
 * what each device reports back. Creating a run stores it with one row per device,
 * fails devices that cannot run it now (offline, runner not ready) at once, and
 * publishes `bench.run` to the others. The agents answer on their events topic with
 * `bench.progress` after each prompt and one `bench.result`; the fleet hands those
 * events here. A device that goes offline or stops making progress for the stall
 * timeout fails; a run is finished when none of its devices is pending or running.
 *
 * Every state change is written to the database before it is announced, so a server
 * restart loses nothing: device runs still waiting are picked up again at start
 * (their stall timers restart) and a result that arrives later still lands.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { z } from "zod";
import {
  BENCH_DEFAULT_MAX_NEW_TOKENS,
  BENCH_STANDARD_PROMPTS,
  BenchDeviceResult,
  BenchDeviceState,
  BenchPrompt,
  type BenchRunDto,
  type DeviceCommand,
  type DeviceEvent,
  type DeviceSummary,
} from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { compareRuns, runTableRows, type BenchComparison, type BenchRunSummary, benchToCsv, benchToMarkdown } from "@orchard/client";
import type { FleetService } from "./fleet.ts";
import { CoalescedAnnouncer, KeyedSerial } from "./keyed-work.ts";

export const MAX_BENCH_DEVICES = 200;

/** What a caller may ask for; defaults fill the rest. */
export const CreateBenchRunInput = z.object({
  name: z.string().trim().max(120, "A run name may be at most 120 characters long.").optional(),
  deviceIds: z
    .array(z.string().min(1).max(64))
    .min(1, "Choose at least one device.")
    .max(MAX_BENCH_DEVICES, `A run may include at most ${MAX_BENCH_DEVICES} devices.`),
  prompts: z.array(BenchPrompt).min(1).max(20).optional(),
  maxNewTokens: z.number().int().min(1).max(2048).optional(),
});
export type CreateBenchRunInput = z.infer<typeof CreateBenchRunInput>;

export interface BenchmarkEvents {
  changed: [BenchRunDto];
}

export interface BenchmarkOptions {
  /** A device that reports no progress on a run for this long fails (a Pi may spend minutes on one long prompt). */
  stallTimeoutMs: number;
  /** Changes to one run within this window are announced once. */
  emitCoalesceMs: number;
}

export const DEFAULT_BENCH_OPTIONS: BenchmarkOptions = { stallTimeoutMs: 10 * 60_000, emitCoalesceMs: 250 };

const OPEN_STATES = ["pending", "running"];

interface Waiting {
  runId: string;
  deviceId: string;
  deviceName: string;
  /** The id of the `bench.run` command, to recognise the agent's refusal (an agent without benchmarks answers with command.result). */
  commandId: string;
  /** When the run was sent or the device last reported progress on it. */
  lastHeardAt: number;
}

type RunRow = {
  id: string;
  name: string;
  createdAt: Date;
  maxNewTokens: number;
  prompts: unknown;
  finishedAt: Date | null;
  devices: {
    deviceId: string;
    deviceName: string;
    state: string;
    completed: number;
    total: number;
    error: string | null;
    result: unknown;
    startedAt: Date | null;
    finishedAt: Date | null;
  }[];
};

export function toBenchRunDto(row: RunRow): BenchRunDto {
  const prompts = z.array(BenchPrompt).safeParse(row.prompts);
  return {
    id: row.id,
    name: row.name,
    createdAt: row.createdAt.getTime(),
    state: row.finishedAt ? "finished" : "running",
    maxNewTokens: row.maxNewTokens,
    prompts: prompts.success ? prompts.data : [],
    devices: row.devices
      .map((d) => {
        const state = BenchDeviceState.safeParse(d.state);
        const result = d.result === null ? null : BenchDeviceResult.safeParse(d.result);
        return {
          deviceId: d.deviceId,
          deviceName: d.deviceName,
          state: state.success ? state.data : "failed",
          completed: d.completed,
          total: d.total,
          error: d.error,
          result: result?.success ? result.data : null,
          startedAt: d.startedAt?.getTime() ?? null,
          finishedAt: d.finishedAt?.getTime() ?? null,
        };
      })
      .sort((a, b) => a.deviceName.localeCompare(b.deviceName) || a.deviceId.localeCompare(b.deviceId)),
  };
}

/** Why a device cannot start a benchmark now, or null when it can. */
export function benchUnavailableReason(device: DeviceSummary): string | null {
  if (!device.online) return `${device.name} was offline when the run started.`;
  const runner = device.runner;
  if (!runner || runner.state === "stopped") return `${device.name} has no model running.`;
  if (runner.state === "starting") return `${device.name} was still loading its model; run it again when it is ready.`;
  if (runner.state === "crashed") return `${device.name}'s runner had crashed and was restarting.`;
  if (runner.state === "crash_loop") return `${device.name}'s runner keeps crashing (${runner.lastError ?? "see its events"}).`;
  return null;
}

/** "Benchmark 2026-11-28 06:40 UTC" */
export function defaultRunName(ts: number): string {
  return `Benchmark ${new Date(ts).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A file name for an export: the run's name made safe, and its id so two runs never collide. */
export function exportFileName(run: { id: string; name: string }, ext: "csv" | "md"): string {
  const slug = run.name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60);
  return `${slug || "benchmark"}-${run.id}.${ext}`;
}

export class BenchmarkService extends EventEmitter<BenchmarkEvents> {
  /** Device runs that wait for the device, by `${runId}/${deviceId}`. */
  private readonly waiting = new Map<string, Waiting>();
  /** Per-run queues, so the writes of one run happen in the order its events arrived. */
  private readonly writes: KeyedSerial;
  private readonly announcer: CoalescedAnnouncer;
  private readonly watchdog: NodeJS.Timeout;
  private readonly onEvent = (deviceId: string, event: DeviceEvent) => this.handleEvent(deviceId, event);
  private readonly onDevice = (device: DeviceSummary) => {
    if (!device.online) this.failDevice(device.id, `${device.name} went offline during the run.`);
  };
  private readonly onRemoved = (deviceId: string) => this.forgetDevice(deviceId);

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly publish: (deviceId: string, command: DeviceCommand) => Promise<void>,
    private readonly opts: BenchmarkOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.writes = new KeyedSerial((run, err) => log.error("recording a benchmark change failed", { run, error: err.message }));
    this.announcer = new CoalescedAnnouncer(
      opts.emitCoalesceMs,
      async (id) => {
        const run = await this.load(id);
        if (run) this.emit("changed", run);
      },
      (run, err) => log.warn("could not announce a benchmark change", { run, error: err.message }),
    );
    fleet.on("event", this.onEvent);
    fleet.on("device", this.onDevice);
    fleet.on("removed", this.onRemoved);
    this.watchdog = setInterval(() => this.checkStalls(), Math.min(5_000, Math.max(100, opts.stallTimeoutMs / 4)));
    this.watchdog.unref();
  }

  /**
   * After a (re)start: device runs that were waiting keep waiting, with their stall
   * timers started afresh; runs whose devices all ended but that were not marked
   * finished (a crash in between) are finished now. Call before the MQTT link connects.
   */
  async recover(): Promise<number> {
    const open = await this.prisma.benchmarkDeviceRun.findMany({ where: { state: { in: OPEN_STATES } } });
    const now = this.now();
    for (const d of open) {
      this.waiting.set(key(d.runId, d.deviceId), {
        runId: d.runId,
        deviceId: d.deviceId,
        deviceName: d.deviceName,
        commandId: "",
        lastHeardAt: now,
      });
    }
    const unfinished = await this.prisma.benchmarkRun.findMany({ where: { finishedAt: null }, select: { id: true } });
    for (const { id } of unfinished) await this.finishIfDone(id);
    return open.length;
  }

  async list(limit = 100): Promise<BenchRunSummary[]> {
    const rows = await this.prisma.benchmarkRun.findMany({
      orderBy: { createdAt: "desc" },
      take: limit,
      include: { devices: { select: { state: true } } },
    });
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: r.createdAt.getTime(),
      finishedAt: r.finishedAt?.getTime() ?? null,
      state: r.finishedAt ? "finished" : "running",
      maxNewTokens: r.maxNewTokens,
      promptCount: Array.isArray(r.prompts) ? r.prompts.length : 0,
      devices: r.devices.length,
      done: r.devices.filter((d) => d.state === "done").length,
      failed: r.devices.filter((d) => d.state === "failed").length,
    }));
  }

  async get(id: string): Promise<BenchRunDto> {
    const run = await this.load(id);
    if (!run) throw new AppError("not_found", `No benchmark run ${id} (it may have been deleted).`);
    return run;
  }

  async compare(aId: string, bId: string): Promise<BenchComparison> {
    if (aId === bId) throw new AppError("bad_request", "Choose two different runs to compare.");
    const [a, b] = await Promise.all([this.get(aId), this.get(bId)]);
    return compareRuns(a, b);
  }

  /** The run's results table as a file (the same columns as the dashboard and `orchard bench`). */
  async export(id: string, format: "csv" | "md"): Promise<{ fileName: string; contentType: string; body: string }> {
    const run = await this.get(id);
    const rows = runTableRows(run);
    return format === "csv"
      ? { fileName: exportFileName(run, "csv"), contentType: "text/csv; charset=utf-8", body: benchToCsv(rows) }
      : { fileName: exportFileName(run, "md"), contentType: "text/markdown; charset=utf-8", body: benchToMarkdown(rows) };
  }

  async create(input: CreateBenchRunInput): Promise<BenchRunDto> {
    const parsed = CreateBenchRunInput.safeParse(input);
    if (!parsed.success) throw new AppError("bad_request", parsed.error.issues[0]?.message ?? "Invalid benchmark run.");
    const { deviceIds, maxNewTokens = BENCH_DEFAULT_MAX_NEW_TOKENS } = parsed.data;
    const prompts = parsed.data.prompts ?? [...BENCH_STANDARD_PROMPTS];
    const promptIds = new Set(prompts.map((p) => p.id));
    if (promptIds.size !== prompts.length) throw new AppError("bad_request", "Each prompt of a run needs its own id.");

    const devices: DeviceSummary[] = [];
    for (const id of new Set(deviceIds)) {
      const device = this.fleet.get(id);
      if (!device) throw new AppError("not_found", `No device ${id} (it may have been deleted).`);
      devices.push(device);
    }
    const now = this.now();
    const runId = randomBytes(12).toString("base64url");
    const name = parsed.data.name || defaultRunName(now);
    const plan = devices.map((device) => ({ device, reason: benchUnavailableReason(device) }));
    await this.prisma.benchmarkRun.create({
      data: {
        id: runId,
        name,
        createdAt: new Date(now),
        maxNewTokens,
        prompts,
        devices: {
          create: plan.map(({ device, reason }) => ({
            deviceId: device.id,
            deviceName: device.name,
            state: reason ? "failed" : "pending",
            total: prompts.length,
            error: reason,
            finishedAt: reason ? new Date(now) : null,
          })),
        },
      },
    });
    this.log.info("benchmark run created", { run: runId, devices: devices.length, unavailable: plan.filter((p) => p.reason).length });

    const sends = plan
      .filter((p) => !p.reason)
      .map(({ device }) => {
        const w: Waiting = { runId, deviceId: device.id, deviceName: device.name, commandId: randomUUID(), lastHeardAt: now };
        this.waiting.set(key(runId, device.id), w);
        return w;
      });
    await Promise.all(
      sends.map((w) =>
        this.publish(w.deviceId, { type: "bench.run", id: w.commandId, ts: now, runId, prompts, maxNewTokens }).catch((err: Error) =>
          this.failDevice(w.deviceId, `Could not send the benchmark to ${w.deviceName}: ${err.message}`, runId),
        ),
      ),
    );
    await this.writes.settle(runId);
    await this.finishIfDone(runId);
    const run = await this.get(runId);
    this.emit("changed", run);
    return run;
  }

  async remove(id: string): Promise<void> {
    await this.writes.settle(id);
    const { count } = await this.prisma.benchmarkRun.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", `No benchmark run ${id} (it may have been deleted already).`);
    for (const [k, w] of this.waiting) if (w.runId === id) this.waiting.delete(k);
    this.announcer.cancel(id);
  }

  // ------------------------------------------------------------ device side

  private handleEvent(deviceId: string, event: DeviceEvent): void {
    if (event.kind === "command.result") {
      this.handleCommandResult(deviceId, event.commandId, event.ok, event.message);
      return;
    }
    if (event.kind !== "bench.progress" && event.kind !== "bench.result") return;
    const k = key(event.runId, deviceId);
    const w = this.waiting.get(k);
    if (!w) {
      this.log.debug("benchmark event for a run this server is not waiting for", { deviceId, run: event.runId, kind: event.kind });
      return;
    }
    w.lastHeardAt = this.now();
    const at = new Date(this.now());
    if (event.kind === "bench.progress") {
      this.enqueue(event.runId, async () => {
        await this.prisma.benchmarkDeviceRun.updateMany({
          where: { runId: event.runId, deviceId, state: { in: OPEN_STATES } },
          data: { state: "running", completed: Math.min(event.completed, event.total), total: event.total },
        });
        await this.prisma.benchmarkDeviceRun.updateMany({
          where: { runId: event.runId, deviceId, startedAt: null },
          data: { startedAt: at },
        });
      });
      return;
    }
    // The result ends the device's part: anything later for it is ignored.
    this.waiting.delete(k);
    const ok = event.ok && event.result !== null;
    const error = ok ? null : (event.error ?? "The device reported a failure without a reason.");
    this.enqueue(event.runId, async () => {
      const row = await this.prisma.benchmarkDeviceRun.findUnique({ where: { runId_deviceId: { runId: event.runId, deviceId } } });
      if (!row || !OPEN_STATES.includes(row.state)) return;
      await this.prisma.benchmarkDeviceRun.update({
        where: { runId_deviceId: { runId: event.runId, deviceId } },
        data: {
          state: ok ? "done" : "failed",
          error,
          result: event.result ?? undefined,
          completed: event.result?.prompts.length ?? row.completed,
          startedAt: row.startedAt ?? at,
          finishedAt: at,
        },
      });
      if (!ok) this.log.info("a device failed its benchmark", { run: event.runId, deviceId, error });
      await this.finishIfDone(event.runId);
    });
  }

  /** The agent's answer to `bench.run` itself: a refusal (e.g. an agent too old for benchmarks) fails the device at once. */
  private handleCommandResult(deviceId: string, commandId: string, ok: boolean, message: string): void {
    for (const [k, w] of this.waiting) {
      if (w.deviceId !== deviceId || w.commandId !== commandId) continue;
      if (ok) {
        w.lastHeardAt = this.now();
        return;
      }
      this.waiting.delete(k);
      this.fail(w, `${w.deviceName} refused the benchmark: ${message}`);
      return;
    }
  }

  /** Fails the device's open runs (all of them, or the one given) with a reason a person can act on. */
  private failDevice(deviceId: string, reason: string, onlyRunId?: string): void {
    for (const [k, w] of this.waiting) {
      if (w.deviceId !== deviceId || (onlyRunId !== undefined && w.runId !== onlyRunId)) continue;
      this.waiting.delete(k);
      this.fail(w, reason);
    }
  }

  private fail(w: Waiting, reason: string): void {
    const at = new Date(this.now());
    this.enqueue(w.runId, async () => {
      await this.prisma.benchmarkDeviceRun.updateMany({
        where: { runId: w.runId, deviceId: w.deviceId, state: { in: OPEN_STATES } },
        data: { state: "failed", error: reason, finishedAt: at },
      });
      await this.finishIfDone(w.runId);
    });
  }

  /** A deleted device's rows went with it (cascade); its runs may be finished now. */
  private forgetDevice(deviceId: string): void {
    for (const [k, w] of this.waiting) {
      if (w.deviceId !== deviceId) continue;
      this.waiting.delete(k);
      this.enqueue(w.runId, () => this.finishIfDone(w.runId));
    }
  }

  /** Fails device runs that made no progress for the stall timeout; runs on a timer, public for tests with a fake clock. */
  checkStalls(): void {
    const now = this.now();
    for (const [k, w] of this.waiting) {
      const quiet = now - w.lastHeardAt;
      if (quiet <= this.opts.stallTimeoutMs) continue;
      this.waiting.delete(k);
      this.fail(w, `${w.deviceName} reported no progress for ${formatMinutes(quiet)}; the run stopped waiting for it.`);
    }
  }

  /** Whether the device has a benchmark run it has not finished. */
  deviceBusy(deviceId: string): boolean {
    for (const w of this.waiting.values()) if (w.deviceId === deviceId) return true;
    return false;
  }

  /** Device runs still waiting for their device (for tests and the log). */
  waitingCount(): number {
    return this.waiting.size;
  }

  /** Waits until every queued write is done and every change announced. */
  async idle(): Promise<void> {
    await this.writes.idle();
    await this.announcer.flush();
  }

  async close(): Promise<void> {
    clearInterval(this.watchdog);
    this.fleet.off("event", this.onEvent);
    this.fleet.off("device", this.onDevice);
    this.fleet.off("removed", this.onRemoved);
    await this.idle();
    this.announcer.close();
  }

  // ------------------------------------------------------------ internals

  private async finishIfDone(runId: string): Promise<void> {
    const open = await this.prisma.benchmarkDeviceRun.count({ where: { runId, state: { in: OPEN_STATES } } });
    if (open > 0) return;
    const { count } = await this.prisma.benchmarkRun.updateMany({
      where: { id: runId, finishedAt: null },
      data: { finishedAt: new Date(this.now()) },
    });
    if (count > 0) this.log.info("benchmark run finished", { run: runId });
  }

  private enqueue(runId: string, work: () => Promise<void>): void {
    this.writes.enqueue(runId, work, { then: () => this.announcer.schedule(runId) });
  }

  private async load(id: string): Promise<BenchRunDto | null> {
    const row = await this.prisma.benchmarkRun.findUnique({ where: { id }, include: { devices: true } });
    return row ? toBenchRunDto(row) : null;
  }
}

function key(runId: string, deviceId: string): string {
  return `${runId}/${deviceId}`;
}

function formatMinutes(ms: number): string {
  const min = Math.round(ms / 60_000);
  return min >= 1 ? `${min} min` : `${Math.round(ms / 1000)} s`;
}
