/**
 * The live fleet: every enrolled device, its status, runner and newest telemetry,
 * kept in memory so the fleet table and the broker's credential checks never wait
 * on the database. MQTT ingestion applies messages here; a flush loop writes the
 * changes and the telemetry samples to the database in batches, so the per-message
 * path never touches it. A row the database refuses is found (the batch is bisected),
 * dropped and counted (`rejectedRows`), so it never holds back the rest; while the
 * database is unreachable every unwritten row waits, and nothing written is written
 * again. Listeners (socket.io, metrics) get change notifications.
 */
import { EventEmitter } from "node:events";
import { ActiveModel, type DeviceEvent, RunnerStatus, TelemetrySample, type DeviceStatus, type DeviceSummary } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { throttled, type Logger } from "../log.ts";
import { secretMatches } from "../auth/secrets.ts";
import { advanceGeneratingRate } from "./fleet-throughput.ts";

interface DeviceRecord {
  summary: DeviceSummary;
  mqttPasswordHash: string;
  /** The next password during a credential rotation, valid beside the current one until the device confirms it. */
  mqttPendingPasswordHash: string | null;
  /** The device row differs from the database in fields other than lastSeen/telemetry. */
  dirty: boolean;
  /** When lastSeen/lastTelemetry were last written; they are written at most every DEVICE_TOUCH_MS. */
  touchedAt: number;
  touchPending: boolean;
  /** Device clock of the newest sample received since this server started (null: none yet), for "generating now". */
  rateTs: number | null;
}

export interface FleetEvents {
  device: [DeviceSummary];
  removed: [string];
  telemetry: [string, TelemetrySample[]];
  event: [string, DeviceEvent];
  /** A status message was applied (before its `device` change): tells a clean shutdown from a last will. */
  status: [string, DeviceStatus];
}

/** lastSeen and the newest sample are persisted at most this often per device (they are also in memory). */
const DEVICE_TOUCH_MS = 30_000;
/** Telemetry rows written per INSERT. */
const TELEMETRY_BATCH = 1000;
/** Samples held in memory while the database is unreachable. */
const MAX_PENDING_SAMPLES = 200_000;

export class FleetService extends EventEmitter<FleetEvents> {
  private readonly devices = new Map<string, DeviceRecord>();
  private pendingSamples: PendingSample[] = [];
  private pendingEvents: PendingEvent[] = [];
  private flushing: Promise<void> | null = null;
  /**
   * Rows the database refused while it answered (a value it cannot store), by kind: dropped, so
   * that one device's bad row never holds the rest of a batch back. /metrics shows them as
   * orchard_db_rows_rejected_total.
   */
  readonly rejectedRows: Record<RowKind, number> = { sample: 0, event: 0, device: 0 };
  private lastWriteError: string | null = null;
  /** At most one log line a minute per device and kind of refused row. */
  private readonly logRefusal: ReturnType<typeof throttled>;

  constructor(
    private readonly prisma: Prisma,
    private readonly opts: { staleMs: number },
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.logRefusal = throttled(60_000, now);
  }

  /** Loads every device. Devices start offline: their retained status (or their next message) says otherwise. */
  async load(): Promise<void> {
    const rows = await this.prisma.device.findMany();
    for (const row of rows) {
      this.devices.set(row.id, {
        summary: {
          id: row.id,
          name: row.name,
          hostname: row.hostname,
          arch: row.arch,
          online: false,
          lastSeenAt: row.lastSeenAt?.getTime() ?? null,
          agentVersion: row.agentVersion,
          runner: parseJson(RunnerStatus, row.runner),
          activeModel: parseJson(ActiveModel, row.activeModel),
          telemetry: parseJson(TelemetrySample, row.lastTelemetry),
          enrolledAt: row.enrolledAt.getTime(),
          tags: row.tags,
          // Not stored: the device's retained status brings them back right after a restart.
          previousModel: null,
          runtimes: null,
          generatingTokensPerSecond: null,
        },
        mqttPasswordHash: row.mqttPasswordHash,
        mqttPendingPasswordHash: row.mqttPendingPasswordHash,
        dirty: row.online, // the database said online; correct it
        touchedAt: this.now(),
        touchPending: false,
        rateTs: null,
      });
    }
  }

  list(): DeviceSummary[] {
    return [...this.devices.values()].map((d) => d.summary).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  }

  get(id: string): DeviceSummary | null {
    return this.devices.get(id)?.summary ?? null;
  }

  counts(): { total: number; online: number } {
    let online = 0;
    for (const d of this.devices.values()) if (d.summary.online) online++;
    return { total: this.devices.size, online };
  }

  /** The broker's (and device HTTP) credential check (username = device id): the current password, or the next one during a rotation. */
  verifyDeviceCredentials(deviceId: string, password: string): boolean {
    const d = this.devices.get(deviceId);
    if (d === undefined) return false;
    return (
      secretMatches(password, d.mqttPasswordHash) ||
      (d.mqttPendingPasswordHash !== null && secretMatches(password, d.mqttPendingPasswordHash))
    );
  }

  /** The device's password hashes changed (already written to the database). */
  credentialsChanged(id: string, hashes: { current: string; pending: string | null }): void {
    const d = this.devices.get(id);
    if (!d) return;
    d.mqttPasswordHash = hashes.current;
    d.mqttPendingPasswordHash = hashes.pending;
  }

  /** Whether a credential rotation waits for the device's confirmation. */
  rotationPending(id: string): boolean {
    return (this.devices.get(id)?.mqttPendingPasswordHash ?? null) !== null;
  }

  /** A device was just enrolled (the row is already in the database). */
  added(row: {
    id: string;
    name: string;
    hostname: string | null;
    arch: string | null;
    agentVersion: string | null;
    mqttPasswordHash: string;
    enrolledAt: Date;
  }): void {
    const summary: DeviceSummary = {
      id: row.id,
      name: row.name,
      hostname: row.hostname,
      arch: row.arch,
      online: false,
      lastSeenAt: null,
      agentVersion: row.agentVersion,
      runner: null,
      activeModel: null,
      telemetry: null,
      enrolledAt: row.enrolledAt.getTime(),
      tags: [],
      previousModel: null,
      runtimes: null,
      generatingTokensPerSecond: null,
    };
    this.devices.set(row.id, {
      summary,
      mqttPasswordHash: row.mqttPasswordHash,
      mqttPendingPasswordHash: null,
      dirty: false,
      touchedAt: this.now(),
      touchPending: false,
      rateTs: null,
    });
    this.emit("device", summary);
  }

  /** The device's tags changed (already written to the database). */
  tagsChanged(id: string, tags: string[]): void {
    const d = this.devices.get(id);
    if (!d) return;
    d.summary = { ...d.summary, tags };
    this.emit("device", d.summary);
  }

  renamed(id: string, name: string): void {
    const d = this.devices.get(id);
    if (!d) return;
    d.summary = { ...d.summary, name };
    this.emit("device", d.summary);
  }

  removed(id: string): void {
    if (this.devices.delete(id)) {
      this.pendingSamples = this.pendingSamples.filter((s) => s.deviceId !== id);
      this.pendingEvents = this.pendingEvents.filter((e) => e.deviceId !== id);
      this.emit("removed", id);
    }
  }

  has(id: string): boolean {
    return this.devices.has(id);
  }

  // ------------------------------------------------------------ ingestion

  applyStatus(deviceId: string, status: DeviceStatus): void {
    const d = this.devices.get(deviceId);
    if (!d) return;
    const now = this.now();
    if (status.state === "online") {
      d.summary = {
        ...d.summary,
        online: true,
        lastSeenAt: now,
        agentVersion: status.agentVersion,
        hostname: status.hostname,
        arch: status.arch,
        runner: status.runner,
        activeModel: status.activeModel,
        previousModel: status.previousModel ?? null,
        runtimes: status.runtimes ?? null,
      };
    } else {
      d.summary = { ...d.summary, online: false };
    }
    d.dirty = true;
    this.emit("status", deviceId, status);
    this.emit("device", d.summary);
  }

  applyTelemetry(deviceId: string, samples: TelemetrySample[]): void {
    const d = this.devices.get(deviceId);
    if (!d) return;
    const newest = samples.reduce((a, b) => (b.ts > a.ts ? b : a));
    const now = this.now();
    const wasOnline = d.summary.online;
    const rate = advanceGeneratingRate({ ts: d.rateTs, tokensPerSecond: d.summary.generatingTokensPerSecond }, samples);
    d.rateTs = rate.ts;
    d.summary = {
      ...d.summary,
      generatingTokensPerSecond: rate.tokensPerSecond,
      // Telemetry proves the device is up even if its retained status was lost.
      online: true,
      lastSeenAt: now,
      telemetry: d.summary.telemetry && d.summary.telemetry.ts > newest.ts ? d.summary.telemetry : newest,
      runner:
        d.summary.runner && newest.runnerRssBytes !== null ? { ...d.summary.runner, rssBytes: newest.runnerRssBytes } : d.summary.runner,
    };
    if (!wasOnline) d.dirty = true;
    d.touchPending = true;
    for (const sample of samples) this.pendingSamples.push({ deviceId, sample });
    this.emit("device", d.summary);
    this.emit("telemetry", deviceId, samples);
  }

  applyEvent(deviceId: string, event: DeviceEvent): void {
    const d = this.devices.get(deviceId);
    if (!d) return;
    // Only status (and telemetry) decide online/offline: an event can arrive just after a clean
    // shutdown's `offline`, e.g. the runner stopping.
    d.summary = { ...d.summary, lastSeenAt: this.now() };
    if (event.kind === "runner.state") {
      d.summary = { ...d.summary, runner: event.runner };
      d.dirty = true;
      this.emit("device", d.summary);
    }
    d.touchPending = true;
    this.pendingEvents.push({ deviceId, event });
    this.emit("event", deviceId, event);
  }

  /** Marks devices offline that went silent without a last will reaching us (e.g. the broker restarted). */
  expireStale(): void {
    const cutoff = this.now() - this.opts.staleMs;
    for (const d of this.devices.values()) {
      if (d.summary.online && (d.summary.lastSeenAt ?? 0) < cutoff) {
        d.summary = { ...d.summary, online: false };
        d.dirty = true;
        this.emit("device", d.summary);
      }
    }
  }

  // ------------------------------------------------------------ persistence

  /** Writes pending changes; concurrent calls share one flush. */
  flush(): Promise<void> {
    this.flushing ??= this.doFlush().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async doFlush(): Promise<void> {
    // Rows of devices deleted since they arrived are dropped here, not refused by the database.
    const samples = this.pendingSamples.filter((s) => this.devices.has(s.deviceId));
    const events = this.pendingEvents.filter((e) => this.devices.has(e.deviceId));
    this.pendingSamples = [];
    this.pendingEvents = [];
    const now = this.now();
    const updates: DeviceRow[] = [];
    for (const [id, d] of this.devices) {
      const touchDue = d.touchPending && now - d.touchedAt >= DEVICE_TOUCH_MS;
      if (!d.dirty && !touchDue) continue;
      const s = d.summary;
      updates.push({
        id,
        full: d.dirty,
        lastSeenAt: s.lastSeenAt === null ? null : new Date(s.lastSeenAt).toISOString(),
        lastTelemetry: s.telemetry,
        online: s.online,
        hostname: s.hostname,
        arch: s.arch,
        agentVersion: s.agentVersion,
        runner: s.runner,
        activeModel: s.activeModel,
      });
      d.dirty = false;
      d.touchPending = false;
      d.touchedAt = now;
    }

    // Each statement's success is final: what one wrote is never written again, whatever fails after it.
    // A statement the database refuses while it answers is split until the rows it refuses are found
    // (they are dropped and counted); the first sign that the database is unreachable ends the flush,
    // and every row not written yet waits for the next one.
    const unwritten = { samples: [] as PendingSample[], events: [] as PendingEvent[], updates: [] as DeviceRow[] };
    let reachable = true;
    const write = async <T>(kind: RowKind, rows: T[], statement: (rows: T[]) => Promise<void>, deviceOf: (row: T) => string, keep: T[]) => {
      const left = reachable ? await this.writeIsolating(kind, rows, statement, deviceOf) : rows;
      if (left.length > 0) reachable = false;
      keep.push(...left);
    };
    const byDevice = (row: { deviceId: string }) => row.deviceId;
    for (let i = 0; i < samples.length; i += TELEMETRY_BATCH) {
      await write("sample", samples.slice(i, i + TELEMETRY_BATCH), (rows) => insertSamples(this.prisma, rows), byDevice, unwritten.samples);
    }
    for (let i = 0; i < events.length; i += TELEMETRY_BATCH) {
      await write("event", events.slice(i, i + TELEMETRY_BATCH), (rows) => insertEvents(this.prisma, rows), byDevice, unwritten.events);
    }
    if (updates.length > 0)
      await write(
        "device",
        updates,
        (rows) => updateDevices(this.prisma, rows),
        (r) => r.id,
        unwritten.updates,
      );
    if (reachable) return;

    // Keep what was not written for the next attempt (devices deleted meanwhile are filtered out then).
    this.log.error("the database is unreachable; fleet writes are kept and retried", {
      pendingSamples: unwritten.samples.length,
      pendingEvents: unwritten.events.length,
      pendingDevices: unwritten.updates.length,
      error: this.lastWriteError,
    });
    this.pendingSamples = unwritten.samples.concat(this.pendingSamples);
    if (this.pendingSamples.length > MAX_PENDING_SAMPLES) {
      // The database has been down for a long time: keep the newest samples rather than run out of memory.
      this.pendingSamples = this.pendingSamples.slice(-MAX_PENDING_SAMPLES);
    }
    this.pendingEvents = unwritten.events.concat(this.pendingEvents);
    for (const { id, full } of unwritten.updates) {
      const d = this.devices.get(id);
      if (d && full) d.dirty = true;
      else if (d) d.touchPending = true;
    }
  }

  /**
   * Writes `rows` with `write` (one statement). If the statement fails while the database
   * still answers, the rows are bisected and written in halves, down to single rows: a single
   * row that fails while the database answers is refused for itself (dropped, counted, logged
   * with its device), and the others are written. Returns the rows left unwritten because the
   * database stopped answering (empty when every row was written or refused).
   */
  private async writeIsolating<T>(
    kind: RowKind,
    rows: T[],
    write: (rows: T[]) => Promise<void>,
    deviceOf: (row: T) => string,
  ): Promise<T[]> {
    if (rows.length === 0) return [];
    try {
      await write(rows);
      return [];
    } catch (err) {
      this.lastWriteError = (err as Error).message;
      // Whether the database refused these rows or could not be reached at all.
      if (!(await this.databaseAnswers())) return rows;
      if (rows.length === 1) {
        this.refused(kind, deviceOf(rows[0]!), err as Error);
        return [];
      }
      const mid = rows.length >>> 1;
      const left = await this.writeIsolating(kind, rows.slice(0, mid), write, deviceOf);
      if (left.length > 0) return left.concat(rows.slice(mid));
      return this.writeIsolating(kind, rows.slice(mid), write, deviceOf);
    }
  }

  private async databaseAnswers(): Promise<boolean> {
    try {
      await this.prisma.$queryRaw`SELECT 1`;
      return true;
    } catch {
      return false;
    }
  }

  private refused(kind: RowKind, deviceId: string, err: Error): void {
    this.rejectedRows[kind]++;
    this.logRefusal(`${deviceId}:${kind}`, () =>
      this.log.error("the database refused a row from a device; dropped it", {
        device: deviceId,
        kind,
        error: err.message.slice(0, 500),
      }),
    );
  }
}

type RowKind = "sample" | "event" | "device";
type PendingSample = { deviceId: string; sample: TelemetrySample };
type PendingEvent = { deviceId: string; event: DeviceEvent };

// ------------------------------------------------------------ bulk writes
//
// One statement per batch, with the rows as a single JSON parameter that PostgreSQL
// (and PGlite) unpacks with json_to_recordset. Against Prisma's createMany and a
// transaction of updateMany calls this is ≈ 7× faster for samples and ≈ 25× for device
// rows on PGlite (2,000 rows: 121 vs 912 ms and 55 vs 1,429 ms; docs/benchmarks.md),
// which is what lets one server keep up with thousands of devices.

/** Columns of TelemetrySample written from a contracts TelemetrySample (bigints travel as JSON numbers ≤ 2^53). */
function sampleRow(deviceId: string, t: TelemetrySample) {
  return {
    deviceId,
    ts: new Date(t.ts).toISOString(),
    cpuPercent: t.cpuPercent,
    load1: t.load1,
    load5: t.load5,
    load15: t.load15,
    memTotalBytes: t.memTotalBytes,
    memAvailableBytes: t.memAvailableBytes,
    swapTotalBytes: t.swapTotalBytes,
    swapUsedBytes: t.swapUsedBytes,
    diskTotalBytes: t.diskTotalBytes,
    diskFreeBytes: t.diskFreeBytes,
    socTempC: t.socTempC,
    throttleRaw: t.throttle?.raw ?? null,
    runnerRssBytes: t.runnerRssBytes,
    tokensPerSecond: t.tokensPerSecond,
    prefillTokensPerSecond: t.prefillTokensPerSecond,
    generatedTokens: t.generatedTokens,
    activeGenerations: t.activeGenerations,
    cpuFreqHz: t.cpuFreqHz,
    boardPowerW: t.boardPowerW,
  };
}

async function insertSamples(prisma: Prisma, batch: PendingSample[]): Promise<void> {
  const rows = JSON.stringify(batch.map(({ deviceId, sample }) => sampleRow(deviceId, sample)));
  await prisma.$executeRaw`
    INSERT INTO "TelemetrySample" ("deviceId", ts, "cpuPercent", load1, load5, load15,
      "memTotalBytes", "memAvailableBytes", "swapTotalBytes", "swapUsedBytes", "diskTotalBytes", "diskFreeBytes",
      "socTempC", "throttleRaw", "runnerRssBytes", "tokensPerSecond", "prefillTokensPerSecond",
      "generatedTokens", "activeGenerations", "cpuFreqHz", "boardPowerW")
    SELECT "deviceId", ts, "cpuPercent", load1, load5, load15,
      "memTotalBytes", "memAvailableBytes", "swapTotalBytes", "swapUsedBytes", "diskTotalBytes", "diskFreeBytes",
      "socTempC", "throttleRaw", "runnerRssBytes", "tokensPerSecond", "prefillTokensPerSecond",
      "generatedTokens", "activeGenerations", "cpuFreqHz", "boardPowerW"
    FROM json_to_recordset(${rows}::json) AS x("deviceId" text, ts timestamp, "cpuPercent" float8,
      load1 float8, load5 float8, load15 float8,
      "memTotalBytes" bigint, "memAvailableBytes" bigint, "swapTotalBytes" bigint, "swapUsedBytes" bigint,
      "diskTotalBytes" bigint, "diskFreeBytes" bigint, "socTempC" float8, "throttleRaw" int, "runnerRssBytes" bigint,
      "tokensPerSecond" float8, "prefillTokensPerSecond" float8, "generatedTokens" int, "activeGenerations" int,
      "cpuFreqHz" bigint, "boardPowerW" float8)
    -- A device deleted since its samples arrived: drop them rather than fail the batch.
    WHERE EXISTS (SELECT 1 FROM "Device" d WHERE d.id = x."deviceId")`;
}

async function insertEvents(prisma: Prisma, batch: PendingEvent[]): Promise<void> {
  await prisma.deviceEvent.createMany({
    data: batch.map(({ deviceId, event }) => ({ deviceId, ts: new Date(event.ts), kind: event.kind, payload: event })),
  });
}

interface DeviceRow {
  id: string;
  /** true: status fields changed; false: only lastSeenAt and the newest telemetry. */
  full: boolean;
  lastSeenAt: string | null;
  lastTelemetry: TelemetrySample | null;
  online: boolean;
  hostname: string | null;
  arch: string | null;
  agentVersion: string | null;
  runner: RunnerStatus | null;
  activeModel: ActiveModel | null;
}

/** Writes changed device rows; a null runner, model or telemetry keeps what the row has (as before: a device never un-reports one). */
async function updateDevices(prisma: Prisma, rows: DeviceRow[]): Promise<void> {
  const json = JSON.stringify(rows);
  await prisma.$executeRaw`
    UPDATE "Device" d SET
      "lastSeenAt" = x."lastSeenAt",
      "lastTelemetry" = COALESCE(x."lastTelemetry", d."lastTelemetry"),
      online = CASE WHEN x."full" THEN x.online ELSE d.online END,
      hostname = CASE WHEN x."full" THEN x.hostname ELSE d.hostname END,
      arch = CASE WHEN x."full" THEN x.arch ELSE d.arch END,
      "agentVersion" = CASE WHEN x."full" THEN x."agentVersion" ELSE d."agentVersion" END,
      runner = CASE WHEN x."full" THEN COALESCE(x.runner, d.runner) ELSE d.runner END,
      "activeModel" = CASE WHEN x."full" THEN COALESCE(x."activeModel", d."activeModel") ELSE d."activeModel" END
    FROM json_to_recordset(${json}::json) AS x(id text, "full" boolean, "lastSeenAt" timestamp, "lastTelemetry" jsonb,
      online boolean, hostname text, arch text, "agentVersion" text, runner jsonb, "activeModel" jsonb)
    WHERE d.id = x.id`;
}

function parseJson<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, value: unknown): T | null {
  if (value === null || value === undefined) return null;
  const r = schema.safeParse(value);
  return r.success ? r.data : null;
}
