/**
 * Rollouts: an artifact sent to chosen devices (by id and/or tag) following a strategy
 * (canaries, batches, concurrent downloads, failure threshold, per-device timeout,
 * retries). The service keeps every rollout that still has work in memory, runs the
 * planner (rollout-planner.ts) on a timer and after every device event, sends
 * `rollout.apply` / `rollout.abort` / `rollout.rollback` through the MQTT link, and
 * follows the agents' `rollout.state` and `rollout.progress` events, which the fleet
 * hands over as ingestion delivers them.
 *
 * Every decision is written to the database before it is acted on (a device's try is
 * recorded as sent before the command goes out), state changes are written at once and
 * download progress at most every `progressWriteMs` per device. After a server restart
 * `recover()` loads what was in progress; each device that comes online is sent its
 * current command again (agents answer a repeated `rollout.apply` with their state,
 * never with a second download), so a rollout resumes where it stopped. Devices that
 * are offline keep their place until the device timeout. Browsers get `changed`
 * (coalesced per rollout).
 *
 * Commands only reach devices that are online (agents use clean MQTT sessions): a
 * device that is offline when its turn comes is recorded as sent and gets the command
 * when it connects; a sent device that has not answered is sent it again every
 * `resendMs` while online.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { z } from "zod";
import {
  ArtifactRuntime,
  DeviceTag,
  MAX_DEVICE_TAGS,
  ROLLOUT_ACTIVE_STATES,
  ROLLOUT_DEVICE_STATES,
  RolloutDeviceState,
  RolloutError,
  RolloutState,
  RolloutStrategy,
  Sha256Hex,
  manifestBytes,
  type RolloutPreflightDto,
  type DeviceCommand,
  type DeviceEvent,
  type DeviceSummary,
  type RolloutCounts,
  type RolloutDeviceDto,
  type RolloutDto,
  type RolloutErrorCode,
  type RolloutProgressEvent,
  type RolloutStateEvent,
  type RolloutSummaryDto,
  type SignedManifest,
} from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { Prisma as PrismaNs } from "../db/generated/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FleetService } from "./fleet.ts";
import { deviceOutcome, isInFlight, planRollout, type PauseDecision, type PlannerDevice } from "./rollout-planner.ts";
import { CoalescedAnnouncer, KeyedSerial } from "./keyed-work.ts";
import { deviceFit } from "./rollout-preflight.ts";

export const MAX_ROLLOUT_DEVICES = 1000;

export const CreateRolloutInput = z.object({
  name: z.string().trim().max(120, "A rollout name may be at most 120 characters long.").optional(),
  artifactId: Sha256Hex,
  deviceIds: z
    .array(z.string().min(1).max(64))
    .max(MAX_ROLLOUT_DEVICES, `A rollout may include at most ${MAX_ROLLOUT_DEVICES} devices.`)
    .default([]),
  /** Every device with any of these tags. */
  tags: z.array(DeviceTag).max(MAX_DEVICE_TAGS, `Target at most ${MAX_DEVICE_TAGS} tags.`).default([]),
  strategy: RolloutStrategy.prefault({}),
});
export type CreateRolloutInput = z.input<typeof CreateRolloutInput>;

/** rollouts.preflight: the model and the devices of a rollout that may be created (none: the whole fleet). */
export const PreflightInput = CreateRolloutInput.pick({ artifactId: true, deviceIds: true, tags: true });

export interface RolloutServiceEvents {
  changed: [RolloutDto];
}

export interface RolloutOptions {
  /** How often the planner runs for every rollout with work (it also runs after every device event). */
  tickMs: number;
  /** Download progress of one device is written at most this often (it is announced as it comes). */
  progressWriteMs: number;
  /** Changes to one rollout within this window are announced once. */
  emitCoalesceMs: number;
  /** A device sent a try that has not answered is sent it again this often while online. */
  resendMs: number;
  /** After a start, devices get this long to report before the device timeouts are checked. */
  recoveryGraceMs: number;
  /** Where agents fetch blobs: a path resolved against the agent's server URL, or absolute (ORCHARD_PUBLIC_URL). */
  downloadUrl: string;
  /** A device's report of an earlier try than its current one was ignored (counted in /metrics). */
  onStaleReport?: (report: StaleReport) => void;
}

/** A rollout report the service ignored because it belongs to an earlier try of that device. */
export interface StaleReport {
  state: RolloutDeviceState;
  /** The try the report says it belongs to. */
  serverAttempt: number;
  /** The device's current try. */
  current: number;
}

export const DEFAULT_ROLLOUT_OPTIONS: Omit<RolloutOptions, "downloadUrl"> = {
  tickMs: 1000,
  progressWriteMs: 2000,
  emitCoalesceMs: 250,
  resendMs: 30_000,
  recoveryGraceMs: 60_000,
};

/** `downloadUrl` for rollout.apply: a path unless ORCHARD_PUBLIC_URL is set. */
export function blobDownloadUrl(publicUrl: string | undefined): string {
  return publicUrl ? `${publicUrl.replace(/\/$/, "")}/api/artifacts/blobs` : "/api/artifacts/blobs";
}

/** A device's error as stored: the contract's, plus whether a resume acknowledged it. */
const StoredError = RolloutError.extend({ acknowledged: z.boolean().optional() });
type StoredError = z.infer<typeof StoredError>;

interface LiveDevice {
  deviceId: string;
  position: number;
  canary: boolean;
  state: RolloutDeviceState;
  attempt: number;
  bytesDone: number;
  bytesTotal: number;
  rateBps: number | null;
  etaSeconds: number | null;
  error: StoredError | null;
  previousArtifactId: string | null;
  sentAt: number | null;
  updatedAt: number;
  finishedAt: number | null;
  // In memory only.
  /** Progress newer than the database. */
  progressDirty: boolean;
  progressWrittenAt: number;
  /** When the current try's rollout.apply was last published (0: not yet). */
  publishedAt: number;
  /** The id of the last rollout.apply, to recognise the agent's refusal of it. */
  applyCommandId: string | null;
  /** Device clock: events at or before this belong to an earlier try. */
  staleBefore: number;
  lastEventTs: number;
  /** A rollback was asked for while the device was offline: sent when it connects. */
  rollbackRequested: boolean;
  /** When rollout.abort was last sent (0: never). */
  abortSentAt: number;
}

interface LiveRollout {
  id: string;
  name: string;
  artifactId: string;
  artifact: { name: string; version: string; runtime: ArtifactRuntime };
  strategy: RolloutStrategy;
  state: RolloutState;
  pausedReason: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
  devices: Map<string, LiveDevice>;
}

type RolloutRow = {
  id: string;
  name: string;
  artifactId: string;
  strategy: unknown;
  state: string;
  pausedReason: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  artifact: { name: string; version: string; runtime: string };
  devices: {
    deviceId: string;
    position: number;
    canary: boolean;
    state: string;
    attempt: number;
    bytesDone: bigint;
    bytesTotal: bigint;
    rateBps: number | null;
    etaSeconds: number | null;
    error: unknown;
    previousArtifactId: string | null;
    sentAt: Date | null;
    updatedAt: Date;
    finishedAt: Date | null;
  }[];
};

const ROLLOUT_INCLUDE = { artifact: { select: { name: true, version: true, runtime: true } }, devices: true } as const;
const TERMINAL_DEVICE_STATES: readonly RolloutDeviceState[] = ["active", "failed", "rolled_back", "aborted"];
/** States in which a device has not switched models yet: rollout.abort still stops it. */
const ABORTABLE_STATES: readonly RolloutDeviceState[] = ["pending", "preflight", "downloading", "verifying", "staged"];
/** States in which a device runs (or is switching to) the rollout's model: rollout.rollback applies. */
const ROLLBACKABLE_STATES: readonly RolloutDeviceState[] = ["activating", "health_check", "active"];
const FINISHED_STATES: readonly RolloutState[] = ["completed", "failed", "aborted"];
/** Timeout error codes the device may still prove wrong by reporting that it finished. */
const SERVER_TIMEOUT_CODES: readonly RolloutErrorCode[] = ["timeout", "device_offline"];

export function fromRow(row: RolloutRow, now: number): LiveRollout {
  const strategy = RolloutStrategy.safeParse(row.strategy);
  const runtime = ArtifactRuntime.safeParse(row.artifact.runtime);
  const state = RolloutState.safeParse(row.state);
  return {
    id: row.id,
    name: row.name,
    artifactId: row.artifactId,
    artifact: { name: row.artifact.name, version: row.artifact.version, runtime: runtime.success ? runtime.data : "executorch" },
    strategy: strategy.success ? strategy.data : RolloutStrategy.parse({}),
    state: state.success ? state.data : "failed",
    pausedReason: row.pausedReason,
    createdAt: row.createdAt.getTime(),
    updatedAt: row.updatedAt.getTime(),
    finishedAt: row.finishedAt?.getTime() ?? null,
    devices: new Map(
      row.devices.map((d) => {
        const st = RolloutDeviceState.safeParse(d.state);
        const error = d.error === null ? null : StoredError.safeParse(d.error);
        return [
          d.deviceId,
          {
            deviceId: d.deviceId,
            position: d.position,
            canary: d.canary,
            state: st.success ? st.data : "failed",
            attempt: d.attempt,
            bytesDone: Number(d.bytesDone),
            bytesTotal: Number(d.bytesTotal),
            rateBps: d.rateBps,
            etaSeconds: d.etaSeconds,
            error: error === null ? null : error.success ? error.data : { code: "internal", message: "unreadable error record" },
            previousArtifactId: d.previousArtifactId,
            sentAt: d.sentAt?.getTime() ?? null,
            updatedAt: d.updatedAt.getTime(),
            finishedAt: d.finishedAt?.getTime() ?? null,
            progressDirty: false,
            progressWrittenAt: now,
            publishedAt: 0,
            applyCommandId: null,
            staleBefore: 0,
            lastEventTs: 0,
            rollbackRequested: false,
            abortSentAt: 0,
          } satisfies LiveDevice,
        ];
      }),
    ),
  };
}

function plannerDevice(d: LiveDevice, online: boolean): PlannerDevice {
  return {
    deviceId: d.deviceId,
    position: d.position,
    canary: d.canary,
    state: d.state,
    attempt: d.attempt,
    sentAt: d.sentAt,
    online,
    error: d.error,
  };
}

export function rolloutCounts(devices: Iterable<Pick<LiveDevice, "state" | "sentAt">>): RolloutCounts {
  const c: RolloutCounts = { total: 0, waiting: 0, inFlight: 0, active: 0, failed: 0, rolledBack: 0, aborted: 0 };
  for (const d of devices) {
    c.total++;
    if (d.state === "pending" && d.sentAt === null) c.waiting++;
    else if (isInFlight(d)) c.inFlight++;
    else if (d.state === "active") c.active++;
    else if (d.state === "failed") c.failed++;
    else if (d.state === "rolled_back") c.rolledBack++;
    else if (d.state === "aborted") c.aborted++;
  }
  return c;
}

/** "Rollout 2026-11-28 06:40 UTC" */
export function defaultRolloutName(artifact: { name: string; version: string }, ts: number): string {
  return `${artifact.name} ${artifact.version} · ${new Date(ts).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export class RolloutService extends EventEmitter<RolloutServiceEvents> {
  /** Rollouts with work left (running, paused, or with devices still working), by id. */
  private readonly live = new Map<string, LiveRollout>();
  /** Per-rollout queues, so the changes of one rollout happen in order. */
  private readonly writes: KeyedSerial;
  private readonly announcer: CoalescedAnnouncer;
  /** Rollouts with a planning step queued (the timer does not pile up steps behind a slow database). */
  private readonly stepQueued = new Set<string>();
  /** Devices of rollouts being created, so two creates cannot both take a device. */
  private readonly reserved = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private readonly startedAt: number;
  /** Online flags as last seen, to act when a device connects. */
  private readonly online = new Map<string, boolean>();
  private readonly onEvent = (deviceId: string, event: DeviceEvent) => this.handleEvent(deviceId, event);
  private readonly onDevice = (device: DeviceSummary) => this.handleDevice(device);
  private readonly onRemoved = (deviceId: string) => this.forgetDevice(deviceId);

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly publish: (deviceId: string, command: DeviceCommand) => Promise<void>,
    private readonly artifacts: { getSigned(id: string): Promise<SignedManifest> },
    private readonly opts: RolloutOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.writes = new KeyedSerial((rollout, err) => log.error("recording a rollout change failed", { rollout, error: err.message }));
    this.announcer = new CoalescedAnnouncer(
      opts.emitCoalesceMs,
      async (id) => {
        const r = await this.find(id);
        if (r) this.emit("changed", this.toDto(r));
      },
      (rollout, err) => log.warn("could not announce a rollout change", { rollout, error: err.message }),
    );
    this.startedAt = now();
    for (const d of fleet.list()) this.online.set(d.id, d.online);
    fleet.on("event", this.onEvent);
    fleet.on("device", this.onDevice);
    fleet.on("removed", this.onRemoved);
    this.timer = setInterval(() => this.tick(), opts.tickMs);
    this.timer.unref();
  }

  /**
   * After a (re)start: loads every rollout that is running or paused, or that still has
   * devices working (an aborted rollout waits for them). Devices are sent their command
   * again as they come online. Call before the MQTT link connects. Returns how many.
   */
  async recover(): Promise<number> {
    const working = await this.prisma.rolloutDevice.findMany({
      where: { OR: [{ state: { in: [...ROLLOUT_ACTIVE_STATES] } }, { state: "pending", sentAt: { not: null } }] },
      select: { rolloutId: true },
      distinct: ["rolloutId"],
    });
    const rows = await this.prisma.rollout.findMany({
      where: { OR: [{ state: { in: ["running", "paused"] } }, { id: { in: working.map((w) => w.rolloutId) } }] },
      include: ROLLOUT_INCLUDE,
    });
    const now = this.now();
    for (const row of rows) this.live.set(row.id, fromRow(row, now));
    this.tick();
    return rows.length;
  }

  // ------------------------------------------------------------ queries

  /** Newest first. */
  async list(limit = 100): Promise<RolloutSummaryDto[]> {
    const rows = await this.prisma.rollout.findMany({ orderBy: { createdAt: "desc" }, take: limit, include: ROLLOUT_INCLUDE });
    const now = this.now();
    return rows.map((row) => {
      const { devices: _devices, ...summary } = this.toDto(this.live.get(row.id) ?? fromRow(row, now));
      return summary;
    });
  }

  async get(id: string): Promise<RolloutDto> {
    const r = await this.find(id);
    if (!r) throw new AppError("not_found", `No rollout ${id} (it may have been deleted with its model).`);
    return this.toDto(r);
  }

  // ------------------------------------------------------------ operator actions

  async create(raw: CreateRolloutInput, createdById: string | null): Promise<RolloutDto> {
    const parsed = CreateRolloutInput.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new AppError("bad_request", `Invalid rollout: ${issue.path.join(".")}${issue.path.length ? ": " : ""}${issue.message}`);
    }
    const input = parsed.data;
    const artifact = await this.prisma.artifact.findUnique({ where: { id: input.artifactId } });
    if (!artifact) throw new AppError("not_found", `No model ${input.artifactId} (it may have been deleted).`);
    // The manifest must be one an agent accepts before any device is involved.
    const signed = await this.artifacts.getSigned(input.artifactId);
    const bytesTotal = manifestBytes(signed.manifest);

    const targets = this.resolveTargets(input.deviceIds, input.tags);
    // The same check rollouts.preflight shows per device before submit (rollout-preflight.ts).
    const refusals = targets.flatMap((d) => deviceFit(d, input.artifactId, signed.manifest).reasons);
    if (refusals.length > 0) throw new AppError("bad_request", refusals.join(" "));
    this.refuseBusy(targets);
    for (const t of targets) this.reserved.add(t.id);
    try {
      return await this.createRollout(input, artifact, bytesTotal, targets, createdById);
    } finally {
      for (const t of targets) this.reserved.delete(t.id);
    }
  }

  private async createRollout(
    input: z.output<typeof CreateRolloutInput>,
    artifact: { name: string; version: string },
    bytesTotal: number,
    targets: DeviceSummary[],
    createdById: string | null,
  ): Promise<RolloutDto> {
    // Devices that need the model, online first, then by name; canaries are the first of those.
    const already = targets.filter((d) => d.activeModel?.artifactId === input.artifactId);
    const needing = targets
      .filter((d) => d.activeModel?.artifactId !== input.artifactId)
      .sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
    const canaries = Math.min(input.strategy.canary, needing.length);
    const now = this.now();
    const id = randomBytes(12).toString("base64url");
    const name = input.name || defaultRolloutName(artifact, now);
    const ordered = [...needing, ...already];
    await this.prisma.rollout.create({
      data: {
        id,
        name,
        artifactId: input.artifactId,
        strategy: input.strategy,
        state: needing.length === 0 ? "completed" : "running",
        createdById,
        createdAt: new Date(now),
        finishedAt: needing.length === 0 ? new Date(now) : null,
        devices: {
          create: ordered.map((d, position) => {
            const done = d.activeModel?.artifactId === input.artifactId;
            return {
              deviceId: d.id,
              position,
              canary: position < canaries,
              state: done ? "active" : "pending",
              bytesTotal: BigInt(bytesTotal),
              bytesDone: BigInt(done ? bytesTotal : 0),
              previousArtifactId: done ? (d.previousModel?.artifactId ?? null) : (d.activeModel?.artifactId ?? null),
              finishedAt: done ? new Date(now) : null,
            };
          }),
        },
      },
    });
    this.log.info("rollout created", {
      rollout: id,
      artifact: input.artifactId,
      devices: ordered.length,
      canaries,
      alreadyActive: already.length,
    });
    const row = await this.prisma.rollout.findUniqueOrThrow({ where: { id }, include: ROLLOUT_INCLUDE });
    const r = fromRow(row, now);
    if (r.state === "running") {
      this.live.set(id, r);
      this.queueStep(r);
      await this.writes.settle(id);
    }
    const dto = this.toDto(r);
    this.emit("changed", dto);
    return dto;
  }

  async pause(id: string): Promise<RolloutDto> {
    return this.act(id, async (r) => {
      if (r.state !== "running") throw new AppError("conflict", `${r.name} is ${r.state}; only a running rollout can be paused.`);
      await this.setState(r, "paused", "Paused by an operator.");
      this.log.info("rollout paused", { rollout: r.id });
    });
  }

  /** Carries on; the failures so far are acknowledged (they no longer count toward the failure threshold). */
  async resume(id: string): Promise<RolloutDto> {
    return this.act(id, async (r) => {
      if (r.state !== "paused") throw new AppError("conflict", `${r.name} is ${r.state}; only a paused rollout can be resumed.`);
      for (const d of r.devices.values()) {
        if (deviceOutcome(plannerDevice(d, false), r.strategy) === "failed" && d.error && !d.error.acknowledged) {
          d.error = { ...d.error, acknowledged: true };
          await this.writeDevice(r, d);
        }
      }
      await this.setState(r, "running", null);
      this.log.info("rollout resumed", { rollout: r.id });
      await this.step(r);
    });
  }

  /**
   * Stops the rollout: devices not sent yet are aborted, devices that have not switched
   * models are told to stop (rollout.abort); devices already switching finish their
   * health gate (roll them back to undo).
   */
  async abort(id: string): Promise<RolloutDto> {
    return this.act(id, async (r) => {
      if (r.state !== "running" && r.state !== "paused") throw new AppError("conflict", `${r.name} is ${r.state} already.`);
      await this.stop(r, "The rollout was aborted before this device's turn.");
      this.log.info("rollout aborted", { rollout: r.id });
    });
  }

  /**
   * Rolls the whole rollout back: stops it if it is still going (as abort does) and
   * switches every device that runs (or is switching to) its model back to the model
   * it ran before. Devices offline now get the rollback when they connect.
   */
  async rollback(id: string): Promise<RolloutDto> {
    return this.act(id, async (r) => {
      if (r.state === "running" || r.state === "paused") await this.stop(r, "The rollout was rolled back before this device's turn.");
      let sent = 0;
      for (const d of r.devices.values()) {
        if (!ROLLBACKABLE_STATES.includes(d.state) || !this.runsArtifact(d.deviceId, r.artifactId)) continue;
        d.rollbackRequested = true;
        sent += await this.sendRollback(r, d);
      }
      this.log.info("rollout rolled back", { rollout: r.id, sent });
    });
  }

  /** Switches one device of the rollout back to the model it ran before. */
  async rollbackDevice(id: string, deviceId: string): Promise<RolloutDto> {
    return this.act(id, async (r) => {
      const d = r.devices.get(deviceId);
      const device = this.fleet.get(deviceId);
      if (!d || !device) throw new AppError("not_found", `No device ${deviceId} in ${r.name}.`);
      if (!ROLLBACKABLE_STATES.includes(d.state)) {
        throw new AppError(
          "conflict",
          `${device.name} is ${d.state.replace("_", " ")} in this rollout; only a device running its model can be rolled back.`,
        );
      }
      if (!this.runsArtifact(deviceId, r.artifactId)) {
        throw new AppError(
          "conflict",
          `${device.name} no longer runs this rollout's model (it runs ${device.activeModel?.name ?? "another model"}).`,
        );
      }
      if (!device.online) throw new AppError("unavailable", `${device.name} is offline; the rollback would not reach it.`);
      await this.sendRollback(r, d);
      this.log.info("device rolled back", { rollout: r.id, device: deviceId });
    });
  }

  /** The rollout that put the device's active model there (for "Roll back" on the device page); null when none did. */
  async rolloutOfActiveModel(deviceId: string): Promise<{ rolloutId: string; name: string } | null> {
    const artifactId = this.fleet.get(deviceId)?.activeModel?.artifactId;
    if (!artifactId) return null;
    const row = await this.prisma.rolloutDevice.findFirst({
      where: { deviceId, state: { in: [...ROLLBACKABLE_STATES] }, rollout: { artifactId } },
      orderBy: { rollout: { createdAt: "desc" } },
      select: { rolloutId: true, rollout: { select: { name: true } } },
    });
    return row ? { rolloutId: row.rolloutId, name: row.rollout.name } : null;
  }

  // ------------------------------------------------------------ the loop

  /** Runs the planner for every rollout with work; on a timer, public for tests with a fake clock. */
  tick(): void {
    for (const r of this.live.values()) this.queueStep(r);
  }

  private queueStep(r: LiveRollout): void {
    if (this.stepQueued.has(r.id)) return;
    this.stepQueued.add(r.id);
    this.enqueue(r.id, () => {
      this.stepQueued.delete(r.id);
      return this.step(r);
    });
  }

  /** Waits until every queued change is written and announced. */
  async idle(): Promise<void> {
    await this.writes.idle();
    await this.announcer.flush();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.fleet.off("event", this.onEvent);
    this.fleet.off("device", this.onDevice);
    this.fleet.off("removed", this.onRemoved);
    await this.idle();
    // Progress not written yet: write it now, so a restart shows the newest figures.
    for (const r of this.live.values()) for (const d of r.devices.values()) if (d.progressDirty) await this.writeDevice(r, d);
    this.announcer.close();
  }

  /** One planning step for a rollout (inside its chain). */
  private async step(r: LiveRollout): Promise<void> {
    if (this.live.get(r.id) !== r) return;
    const now = this.now();
    const plan = planRollout({
      state: r.state,
      strategy: r.strategy,
      devices: [...r.devices.values()].map((d) => plannerDevice(d, this.isOnline(d.deviceId))),
      now,
      checkTimeouts: now >= this.startedAt + this.opts.recoveryGraceMs,
    });
    let changed = plan.timedOut.length > 0 || plan.finish !== null || plan.pause !== null || plan.send.length + plan.retry.length > 0;

    for (const t of plan.timedOut) {
      const d = r.devices.get(t.deviceId)!;
      const name = this.deviceName(d.deviceId);
      const minutes = Math.round(r.strategy.deviceTimeoutMs / 60_000);
      const message =
        t.code === "device_offline"
          ? `${name} went offline and did not come back within the device timeout (${minutes} min); it stopped at ${d.state.replace("_", " ")}.`
          : `${name} did not finish within the device timeout (${minutes} min); it was at ${d.state.replace("_", " ")}.`;
      const wasAbortable = ABORTABLE_STATES.includes(d.state);
      Object.assign(d, { state: "failed", error: { code: t.code, message }, finishedAt: now, rateBps: null, etaSeconds: null });
      await this.writeDevice(r, d);
      this.log.warn("a device timed out in a rollout", { rollout: r.id, device: d.deviceId, code: t.code });
      if (wasAbortable) await this.sendAbort(r, d);
    }

    if (plan.finish) {
      r.finishedAt = now;
      await this.setState(r, plan.finish, null);
      this.log.info(`rollout ${plan.finish}`, { rollout: r.id, ...rolloutCounts(r.devices.values()) });
    } else if (plan.pause) {
      const reason = this.pauseReason(r, plan.pause);
      await this.setState(r, "paused", reason);
      this.log.warn("rollout paused", { rollout: r.id, reason });
    }

    const dispatch = [...plan.retry.map((id) => ({ id, retry: true })), ...plan.send.map((id) => ({ id, retry: false }))];
    const toPublish: LiveDevice[] = [];
    for (const { id, retry } of dispatch) {
      const d = r.devices.get(id)!;
      if (retry) d.staleBefore = d.lastEventTs;
      Object.assign(d, {
        state: "pending",
        attempt: d.attempt + 1,
        sentAt: now,
        finishedAt: null,
        bytesDone: 0,
        rateBps: null,
        etaSeconds: null,
        publishedAt: 0,
      });
      await this.writeDevice(r, d); // recorded as sent before it is sent
      toPublish.push(d);
    }
    if (dispatch.length > 0) this.log.info("rollout sending", { rollout: r.id, devices: dispatch.map((x) => x.id), phase: plan.phase });

    for (const d of r.devices.values()) {
      // Sent, no answer yet: again every resendMs while online (a command to an offline device is lost).
      if (d.state === "pending" && d.sentAt !== null && !toPublish.includes(d) && now - d.publishedAt >= this.opts.resendMs) {
        if (r.state !== "aborted") toPublish.push(d);
      }
      if (d.progressDirty && now - d.progressWrittenAt >= this.opts.progressWriteMs) {
        await this.writeDevice(r, d);
        changed = true;
      }
    }
    for (const d of toPublish) await this.sendApply(r, d);

    if (changed) this.announcer.schedule(r.id);
    if (
      FINISHED_STATES.includes(r.state) &&
      ![...r.devices.values()].some((d) => isInFlight(d) || d.rollbackRequested || d.progressDirty)
    ) {
      this.live.delete(r.id);
    }
  }

  // ------------------------------------------------------------ device side

  private handleEvent(deviceId: string, event: DeviceEvent): void {
    if (event.kind === "rollout.state" || event.kind === "rollout.progress") {
      this.enqueue(event.rolloutId, async () => {
        const r = await this.ensureLive(event.rolloutId);
        const d = r?.devices.get(deviceId);
        if (!r || !d) {
          this.log.debug("rollout event for a rollout or device this server does not know", { deviceId, rollout: event.rolloutId });
          return;
        }
        if (this.isStale(r, d, event)) return;
        if (event.kind === "rollout.state") {
          await this.applyState(r, d, event);
          await this.step(r);
          this.announcer.schedule(r.id);
        } else if (this.applyProgress(d, event)) {
          if (this.now() - d.progressWrittenAt >= this.opts.progressWriteMs) await this.writeDevice(r, d);
          this.announcer.schedule(r.id);
        }
      });
      return;
    }
    if (event.kind === "command.result" && !event.ok) {
      for (const r of this.live.values()) {
        const d = r.devices.get(deviceId);
        if (!d || d.applyCommandId !== event.commandId) continue;
        this.enqueue(r.id, async () => {
          if (d.state !== "pending" || d.applyCommandId !== event.commandId) return;
          const message = `${this.deviceName(deviceId)} refused the rollout: ${event.message}`;
          Object.assign(d, { state: "failed", error: { code: "internal", message }, finishedAt: this.now() });
          d.lastEventTs = Math.max(d.lastEventTs, event.ts);
          await this.writeDevice(r, d);
          this.log.warn("a device refused rollout.apply", { rollout: r.id, device: deviceId, message: event.message });
          await this.step(r);
          this.announcer.schedule(r.id);
        });
      }
    }
  }

  /**
   * A report of an earlier try than the device's current one (its `serverAttempt` is lower):
   * a late message, e.g. the first try's `failed` said again after the server retried. Ignored
   * and counted. Reports without `serverAttempt` (older agents) are judged by their timestamp.
   */
  private isStale(r: LiveRollout, d: LiveDevice, e: RolloutStateEvent | RolloutProgressEvent): boolean {
    if (e.serverAttempt === undefined || e.serverAttempt >= d.attempt) return false;
    this.log.info("rollout report of an earlier try ignored", {
      rollout: r.id,
      device: d.deviceId,
      kind: e.kind,
      state: e.state,
      serverAttempt: e.serverAttempt,
      current: d.attempt,
    });
    try {
      this.opts.onStaleReport?.({ state: e.state, serverAttempt: e.serverAttempt, current: d.attempt });
    } catch (err) {
      this.log.warn("counting a stale rollout report failed", { error: (err as Error).message });
    }
    return true;
  }

  private async applyState(r: LiveRollout, d: LiveDevice, e: RolloutStateEvent): Promise<void> {
    // The try a report names is what counts; the timestamp only for agents that do not name it.
    if (e.serverAttempt === undefined && e.ts <= d.staleBefore) {
      this.log.debug("rollout state from an earlier try ignored", { rollout: r.id, device: d.deviceId, state: e.state });
      return;
    }
    if (!this.accepts(d, e.state)) {
      // The agent's answer to a repeated command, or news about a device the rollout is done with.
      if (ABORTABLE_STATES.includes(e.state) && e.state !== "pending" && r.state === "aborted") await this.sendAbort(r, d);
      return;
    }
    const now = this.now();
    d.lastEventTs = Math.max(d.lastEventTs, e.ts);
    const terminal = TERMINAL_DEVICE_STATES.includes(e.state);
    d.state = e.state;
    d.error = e.error;
    if (e.state !== "downloading") Object.assign(d, { rateBps: null, etaSeconds: null });
    if (e.state === "active" || e.state === "verifying" || e.state === "staged" || e.state === "activating" || e.state === "health_check") {
      d.bytesDone = d.bytesTotal;
    }
    d.finishedAt = terminal ? now : null;
    if (terminal) d.rollbackRequested = false;
    d.progressDirty = false;
    await this.writeDevice(r, d);
    if (e.state === "failed" || e.state === "rolled_back") {
      this.log.info(`a device ${e.state === "failed" ? "failed" : "rolled back"} in a rollout`, {
        rollout: r.id,
        device: d.deviceId,
        code: e.error?.code,
        error: e.error?.message,
      });
    }
    // Still working on a rollout that was aborted meanwhile (e.g. it was offline when it was aborted): tell it again.
    if (r.state === "aborted" && ABORTABLE_STATES.includes(e.state) && e.state !== "pending") await this.sendAbort(r, d);
  }

  /** Whether a reported state may replace the device's current one. */
  private accepts(d: LiveDevice, next: RolloutDeviceState): boolean {
    if (d.state === "pending" && d.sentAt === null) return false; // never sent: not from this server
    if (!TERMINAL_DEVICE_STATES.includes(d.state)) return true;
    if (d.state === "active") return next === "rolled_back"; // a rollback
    // Aborted by the server while the device was past the point of no return: it finishes its health gate.
    if (d.state === "aborted" && d.sentAt !== null) return ROLLBACKABLE_STATES.includes(next) || next === "rolled_back";
    // The server gave up waiting, but the device got there after all.
    if (d.state === "failed" && d.error && SERVER_TIMEOUT_CODES.includes(d.error.code)) return next === "active" || next === "rolled_back";
    return false;
  }

  /** Returns false when the event is not news. */
  private applyProgress(d: LiveDevice, e: RolloutProgressEvent): boolean {
    // Progress never moves a device back (a late message from a step it has left).
    if ((e.serverAttempt === undefined && e.ts <= d.staleBefore) || !isInFlight(d) || !ROLLOUT_ACTIVE_STATES.includes(e.state))
      return false;
    if (ROLLOUT_DEVICE_STATES.indexOf(e.state) < ROLLOUT_DEVICE_STATES.indexOf(d.state)) return false;
    d.lastEventTs = Math.max(d.lastEventTs, e.ts);
    d.state = e.state;
    Object.assign(d, {
      bytesDone: Math.min(e.bytesDone, e.bytesTotal),
      bytesTotal: e.bytesTotal,
      rateBps: e.rateBps,
      etaSeconds: e.etaSeconds,
      progressDirty: true,
      updatedAt: this.now(),
    });
    return true;
  }

  private handleDevice(device: DeviceSummary): void {
    const was = this.online.get(device.id) ?? false;
    this.online.set(device.id, device.online);
    if (was || !device.online) return;
    // Just connected: whatever it was sent may have been lost while it was away.
    for (const r of this.live.values()) {
      const d = r.devices.get(device.id);
      if (!d) continue;
      this.enqueue(r.id, async () => {
        if (d.rollbackRequested) await this.sendRollback(r, d);
        else if (isInFlight(d) && r.state === "aborted" && ABORTABLE_STATES.includes(d.state)) await this.sendAbort(r, d);
        else if (isInFlight(d) && r.state !== "aborted") await this.sendApply(r, d);
        this.announcer.schedule(r.id);
      });
    }
  }

  /** A deleted device's rows went with it (cascade). */
  private forgetDevice(deviceId: string): void {
    this.online.delete(deviceId);
    for (const r of this.live.values()) {
      if (!r.devices.delete(deviceId)) continue;
      this.queueStep(r);
    }
  }

  // ------------------------------------------------------------ commands

  private async sendApply(r: LiveRollout, d: LiveDevice): Promise<void> {
    if (!this.isOnline(d.deviceId)) return; // sent when it connects
    let signed: SignedManifest;
    try {
      signed = await this.artifacts.getSigned(r.artifactId);
    } catch (err) {
      this.log.error("cannot load the rollout's signed manifest", { rollout: r.id, error: (err as Error).message });
      return;
    }
    const commandId = randomUUID();
    d.applyCommandId = commandId;
    d.publishedAt = this.now();
    await this.publish(d.deviceId, {
      type: "rollout.apply",
      id: commandId,
      ts: this.now(),
      rolloutId: r.id,
      artifactId: r.artifactId,
      signed,
      downloadUrl: this.opts.downloadUrl,
      health: r.strategy.health,
      attempt: Math.max(1, d.attempt),
    }).catch((err: Error) => this.log.warn("could not send rollout.apply; will retry", { device: d.deviceId, error: err.message }));
  }

  private async sendAbort(r: LiveRollout, d: LiveDevice): Promise<void> {
    const now = this.now();
    if (!this.isOnline(d.deviceId) || now - d.abortSentAt < 5_000) return;
    d.abortSentAt = now;
    await this.publish(d.deviceId, { type: "rollout.abort", id: randomUUID(), ts: now, rolloutId: r.id }).catch((err: Error) =>
      this.log.warn("could not send rollout.abort", { device: d.deviceId, error: err.message }),
    );
  }

  /** Returns 1 when sent now, 0 when the device is offline (it gets it when it connects). */
  private async sendRollback(r: LiveRollout, d: LiveDevice): Promise<number> {
    if (!this.isOnline(d.deviceId)) {
      d.rollbackRequested = true;
      return 0;
    }
    d.rollbackRequested = false;
    await this.publish(d.deviceId, { type: "rollout.rollback", id: randomUUID(), ts: this.now(), rolloutId: r.id }).catch((err: Error) => {
      d.rollbackRequested = true;
      this.log.warn("could not send rollout.rollback; will retry when the device reconnects", { device: d.deviceId, error: err.message });
    });
    return 1;
  }

  // ------------------------------------------------------------ internals

  private async stop(r: LiveRollout, waitingMessage: string): Promise<void> {
    const now = this.now();
    const tell: LiveDevice[] = [];
    for (const d of r.devices.values()) {
      // Not sent, or sent and not started yet: aborted now (a device that started reports its own abort).
      if (d.state === "pending") {
        if (d.sentAt !== null) tell.push(d);
        const message = d.sentAt === null ? waitingMessage : "The rollout was aborted before this device started.";
        Object.assign(d, { state: "aborted", error: { code: "aborted", message }, finishedAt: now });
        await this.writeDevice(r, d);
      } else if (isInFlight(d) && ABORTABLE_STATES.includes(d.state)) {
        tell.push(d);
      }
    }
    r.finishedAt = now;
    await this.setState(r, "aborted", null);
    for (const d of tell) await this.sendAbort(r, d);
  }

  private resolveTargets(deviceIds: string[], tags: string[]): DeviceSummary[] {
    const chosen = new Map<string, DeviceSummary>();
    for (const id of deviceIds) {
      const device = this.fleet.get(id);
      if (!device) throw new AppError("not_found", `No device ${id} (it may have been deleted).`);
      chosen.set(id, device);
    }
    if (tags.length > 0) {
      const wanted = new Set(tags);
      const tagged = this.fleet.list().filter((d) => d.tags.some((t) => wanted.has(t)));
      if (tagged.length === 0) {
        throw new AppError("bad_request", `No device has the ${tags.length === 1 ? "tag" : "tags"} ${tags.join(", ")}.`);
      }
      for (const d of tagged) chosen.set(d.id, d);
    }
    if (chosen.size === 0) throw new AppError("bad_request", "Choose at least one device or tag.");
    if (chosen.size > MAX_ROLLOUT_DEVICES)
      throw new AppError("bad_request", `A rollout may include at most ${MAX_ROLLOUT_DEVICES} devices.`);
    return [...chosen.values()];
  }

  /** Throws a conflict when any of the devices is in a rollout that still has work for it (for callers that start rollouts later). */
  assertDevicesFree(deviceIds: readonly string[]): void {
    this.refuseBusy(deviceIds.map((id) => this.fleet.get(id)).filter((d): d is DeviceSummary => d !== null));
  }

  /**
   * Whether each device can load the artifact, as `create` decides it (rollout-preflight.ts), and
   * whether it is in another rollout already; every device when no device and no tag is given.
   */
  async preflight(raw: z.input<typeof PreflightInput>): Promise<RolloutPreflightDto> {
    const input = PreflightInput.parse(raw);
    const signed = await this.artifacts.getSigned(input.artifactId);
    const targets =
      input.deviceIds.length === 0 && input.tags.length === 0
        ? this.fleet.list().slice(0, MAX_ROLLOUT_DEVICES)
        : this.resolveTargets(input.deviceIds, input.tags);
    const devices = targets
      .map((t) => deviceFit(t, input.artifactId, signed.manifest, this.busyIn(t)))
      .sort((a, b) => a.name.localeCompare(b.name) || a.deviceId.localeCompare(b.deviceId));
    return { artifactId: input.artifactId, devices, ok: devices.filter((d) => d.ok).length };
  }

  /** The rollout that still has work for the device ("rollout-name, state"), or null. */
  private busyIn(t: Pick<DeviceSummary, "id" | "online">): string | null {
    if (this.reserved.has(t.id)) return "a rollout being created";
    for (const r of this.live.values()) {
      const d = r.devices.get(t.id);
      if (!d) continue;
      const outcome = deviceOutcome(plannerDevice(d, t.online), r.strategy);
      const open =
        r.state === "running" || r.state === "paused"
          ? outcome !== "active" && outcome !== "stopped" && outcome !== "failed"
          : isInFlight(d);
      if (open) return `${r.name}, ${r.state}`;
    }
    return null;
  }

  /** A device works on one rollout at a time (the agent runs one state machine). */
  private refuseBusy(targets: DeviceSummary[]): void {
    const busy: string[] = [];
    for (const t of targets) {
      const where = this.busyIn(t);
      if (where !== null) busy.push(`${t.name} (in ${where})`);
    }
    if (busy.length > 0) {
      throw new AppError(
        "conflict",
        `${busy.length === 1 ? "A device is" : "Some devices are"} already in a rollout: ${busy.slice(0, 5).join(", ")}${busy.length > 5 ? ` and ${busy.length - 5} more` : ""}. Wait for it to finish or abort it first.`,
      );
    }
  }

  private runsArtifact(deviceId: string, artifactId: string): boolean {
    const model = this.fleet.get(deviceId)?.activeModel;
    // An agent that does not report artifact ids (or has not reported yet) gets the benefit of the doubt.
    return !model?.artifactId || model.artifactId === artifactId;
  }

  private pauseReason(r: LiveRollout, pause: PauseDecision): string {
    const describe = (id: string) => {
      const d = r.devices.get(id);
      return `${this.deviceName(id)}${d?.error ? `: ${d.error.message}` : ""}`;
    };
    if (pause.kind === "canary_failed") {
      return `Canary ${pause.deviceIds.map(describe).join("; ")}. The other devices wait: resume to go on anyway, or abort.`;
    }
    const first = pause.deviceIds.slice(0, 3).map(describe).join("; ");
    return `${pause.failed} ${pause.failed === 1 ? "device" : "devices"} failed (threshold ${pause.threshold}): ${first}${pause.failed > 3 ? "; …" : ""}. Resume to go on (these failures are then acknowledged), or abort.`;
  }

  private async setState(r: LiveRollout, state: RolloutState, pausedReason: string | null): Promise<void> {
    r.state = state;
    r.pausedReason = state === "paused" ? pausedReason : null;
    r.updatedAt = this.now();
    if (!FINISHED_STATES.includes(state)) r.finishedAt = null;
    await this.prisma.rollout.update({
      where: { id: r.id },
      data: { state, pausedReason: r.pausedReason, finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt) },
    });
  }

  private async writeDevice(r: LiveRollout, d: LiveDevice): Promise<void> {
    const now = this.now();
    d.updatedAt = now;
    d.progressDirty = false;
    d.progressWrittenAt = now;
    const { count } = await this.prisma.rolloutDevice.updateMany({
      where: { rolloutId: r.id, deviceId: d.deviceId },
      data: {
        state: d.state,
        attempt: d.attempt,
        bytesDone: BigInt(Math.round(d.bytesDone)),
        bytesTotal: BigInt(Math.round(d.bytesTotal)),
        rateBps: d.rateBps,
        etaSeconds: d.etaSeconds,
        error: d.error ?? PrismaNs.DbNull,
        sentAt: d.sentAt === null ? null : new Date(d.sentAt),
        finishedAt: d.finishedAt === null ? null : new Date(d.finishedAt),
      },
    });
    if (count === 0) r.devices.delete(d.deviceId); // deleted meanwhile
  }

  /** Runs an operator action in the rollout's chain and returns the result. */
  private async act(id: string, action: (r: LiveRollout) => Promise<void>): Promise<RolloutDto> {
    let result: RolloutDto | undefined;
    let failure: unknown;
    this.enqueue(
      id,
      async () => {
        const r = await this.ensureLive(id);
        if (!r) throw new AppError("not_found", `No rollout ${id} (it may have been deleted with its model).`);
        await action(r);
        this.announcer.schedule(r.id);
        result = this.toDto(r);
        if (FINISHED_STATES.includes(r.state) && ![...r.devices.values()].some((d) => isInFlight(d) || d.rollbackRequested))
          this.live.delete(r.id);
      },
      (err) => {
        failure = err;
      },
    );
    await this.writes.settle(id);
    if (failure) throw failure;
    return result!;
  }

  /** The live rollout, loaded from the database when it has no work left in memory (null: no such rollout). */
  private async ensureLive(id: string): Promise<LiveRollout | null> {
    const known = this.live.get(id);
    if (known) return known;
    const row = await this.prisma.rollout.findUnique({ where: { id }, include: ROLLOUT_INCLUDE });
    if (!row) return null;
    const r = fromRow(row, this.now());
    this.live.set(id, r);
    return r;
  }

  private async find(id: string): Promise<LiveRollout | null> {
    const known = this.live.get(id);
    if (known) return known;
    const row = await this.prisma.rollout.findUnique({ where: { id }, include: ROLLOUT_INCLUDE });
    return row ? fromRow(row, this.now()) : null;
  }

  private isOnline(deviceId: string): boolean {
    return this.fleet.get(deviceId)?.online ?? false;
  }

  private deviceName(deviceId: string): string {
    return this.fleet.get(deviceId)?.name ?? deviceId;
  }

  private toDto(r: LiveRollout): RolloutDto {
    const devices: RolloutDeviceDto[] = [...r.devices.values()]
      .sort((a, b) => a.position - b.position)
      .map((d) => {
        const device = this.fleet.get(d.deviceId);
        const outcome = deviceOutcome(plannerDevice(d, device?.online ?? false), r.strategy);
        return {
          deviceId: d.deviceId,
          deviceName: device?.name ?? d.deviceId,
          online: device?.online ?? false,
          position: d.position,
          canary: d.canary,
          state: d.state,
          sent: d.sentAt !== null,
          attempt: d.attempt,
          bytesDone: d.bytesDone,
          bytesTotal: d.bytesTotal,
          rateBps: d.rateBps,
          etaSeconds: d.etaSeconds,
          error: d.error ? { code: d.error.code, message: d.error.message } : null,
          acknowledged: d.error?.acknowledged === true,
          willRetry: outcome === "retry" && (r.state === "running" || r.state === "paused"),
          previousArtifactId: d.previousArtifactId,
          sentAt: d.sentAt,
          updatedAt: d.updatedAt,
          finishedAt: d.finishedAt,
        };
      });
    return {
      id: r.id,
      name: r.name,
      artifactId: r.artifactId,
      artifactName: r.artifact.name,
      artifactVersion: r.artifact.version,
      artifactRuntime: r.artifact.runtime,
      state: r.state,
      pausedReason: r.pausedReason,
      strategy: r.strategy,
      counts: rolloutCounts(r.devices.values()),
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      finishedAt: r.finishedAt,
      devices,
    };
  }

  private enqueue(id: string, work: () => Promise<void>, onError?: (err: Error) => void): void {
    this.writes.enqueue(id, work, onError ? { onError } : {});
  }
}
