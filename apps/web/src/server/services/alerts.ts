/**
 * Alerts: conditions on a device that need a person (offline, throttling,
 * under-voltage, a hot SoC, a full disk, a crash-looping runner), opened and
 * cleared from the live fleet's changes. At most one alert per device and kind is
 * open; each is a row in the Alert table with when it started and cleared.
 *
 * Rules (docs/metrics.md, "Alerts"):
 * - An alert opens on the first observation of its condition and clears only after
 *   its clear condition held for `clearHoldMs` without interruption (a flapping value
 *   keeps one alert open instead of opening a new one per flap). Temperature and disk
 *   clear past a hysteresis band; a value inside the band neither opens nor clears.
 * - Telemetry kinds (throttled, under_voltage, temperature, disk_low) are judged on
 *   the device's newest sample as it arrives; a null value ("not readable here")
 *   never opens or clears anything. offline and crash_loop are judged on the device's
 *   status and runner state, on every change and on `tick()`.
 * - offline opens on a last will, or when the fleet marks a device stale; a clean
 *   shutdown is not an alert. A device the database had online at startup that does
 *   not come back within the stale window gets an offline alert too (an embedded
 *   broker's last wills do not survive a server restart).
 *
 * State changes happen in memory at once and are emitted ("changed"); the database
 * writes are queued and run one at a time (retried on `tick()` if the database is
 * down), so nothing here blocks or throws into MQTT ingestion.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { formatBytes } from "@orchard/format";
import { ALERT_KINDS, AlertKind, type AlertDto, type DeviceStatus, type DeviceSummary, type TelemetrySample } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FleetService } from "./fleet.ts";

export interface AlertOptions {
  /** temperature opens above this SoC temperature (°C)… */
  tempC: number;
  /** …and clears below tempC - tempHysteresisC. */
  tempHysteresisC: number;
  /** disk_low opens below this share of free disk (percent)… */
  diskFreePercent: number;
  /** …and clears at or above diskFreePercent + diskHysteresisPercent. */
  diskHysteresisPercent: number;
  /** How long a clear condition must hold before an alert clears. */
  clearHoldMs: number;
  /** The fleet's stale window: a device online before a restart that is not back after this is offline. */
  staleMs: number;
}

export const DEFAULT_ALERT_OPTIONS: AlertOptions = {
  tempC: 80,
  tempHysteresisC: 5,
  diskFreePercent: 10,
  diskHysteresisPercent: 2,
  clearHoldMs: 30_000,
  staleMs: 60_000,
};

export interface AlertEvents {
  changed: [AlertDto];
}

export interface AlertListQuery {
  deviceId?: string;
  activeOnly?: boolean;
  limit: number;
  /** nextCursor of the previous page. */
  cursor?: string;
}

/** What a rule concludes from one observation. */
type Verdict =
  | { kind: "fire"; message: string }
  | { kind: "ok" } // the clear condition holds
  | { kind: "band" } // neither: between the thresholds (or a runner restarting)
  | { kind: "unknown" }; // not observable now (null value, device offline)

interface OpenAlert {
  id: string;
  deviceId: string;
  kind: AlertKind;
  message: string;
  startedAt: number;
  /** Since when the clear condition has held without interruption. */
  okSince: number | null;
}

type Write = { op: "open"; alert: OpenAlert } | { op: "clear"; id: string; deviceId: string; clearedAt: number };

const TELEMETRY_KINDS = ["throttled", "under_voltage", "temperature", "disk_low"] as const satisfies readonly AlertKind[];

export class AlertService extends EventEmitter<AlertEvents> {
  /** `${deviceId}:${kind}` → the open alert. */
  private readonly open = new Map<string, OpenAlert>();
  /** Devices seen online since the last status, and whether their last status was a clean shutdown. */
  private readonly seen = new Map<string, { online: boolean; cleanShutdown: boolean; lastSampleTs: number }>();
  /** Devices the database had online at startup that have not reported since. */
  private readonly expectedBack = new Set<string>();
  private loadedAt = 0;
  private writes: Write[] = [];
  private draining: Promise<void> | null = null;
  private readonly fleetListeners = {
    device: (s: DeviceSummary) => this.guard("device", () => this.onDevice(s)),
    status: (id: string, status: DeviceStatus) => this.guard("status", () => this.onStatus(id, status)),
    telemetry: (id: string) => this.guard("telemetry", () => this.onTelemetry(id)),
    removed: (id: string) => this.guard("removed", () => this.onRemoved(id)),
  };

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly opts: AlertOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  /**
   * Loads the open alerts (so a restart does not open them again) and the devices the
   * database had online, then follows the fleet. Call after fleet.load() and before its first flush.
   */
  async load(): Promise<void> {
    const [rows, online] = await Promise.all([
      this.prisma.alert.findMany({ where: { clearedAt: null }, orderBy: [{ startedAt: "asc" }, { id: "asc" }] }),
      this.prisma.device.findMany({ where: { online: true }, select: { id: true } }),
    ]);
    this.loadedAt = this.now();
    for (const row of rows) {
      const kind = AlertKind.safeParse(row.kind);
      const key = `${row.deviceId}:${row.kind}`;
      if (!kind.success || this.open.has(key)) {
        // Not ours to keep open: an unknown kind, or a second open alert of one kind (one is enough).
        this.enqueue({ op: "clear", id: row.id, deviceId: row.deviceId, clearedAt: this.loadedAt });
        continue;
      }
      this.open.set(key, {
        id: row.id,
        deviceId: row.deviceId,
        kind: kind.data,
        message: row.message,
        startedAt: row.startedAt.getTime(),
        okSince: null,
      });
    }
    for (const { id } of online) if (!this.fleet.get(id)?.online) this.expectedBack.add(id);
    for (const d of this.fleet.list()) if (d.online) this.seenOf(d.id).online = true;
    this.fleet.on("device", this.fleetListeners.device);
    this.fleet.on("status", this.fleetListeners.status);
    this.fleet.on("telemetry", this.fleetListeners.telemetry);
    this.fleet.on("removed", this.fleetListeners.removed);
  }

  /** Stops following the fleet and waits for the queued writes. */
  async close(): Promise<void> {
    this.fleet.off("device", this.fleetListeners.device);
    this.fleet.off("status", this.fleetListeners.status);
    this.fleet.off("telemetry", this.fleetListeners.telemetry);
    this.fleet.off("removed", this.fleetListeners.removed);
    await this.flush();
  }

  activeCount(): number {
    return this.open.size;
  }

  activeByKind(): Record<AlertKind, number> {
    const out = Object.fromEntries(ALERT_KINDS.map((k) => [k, 0])) as Record<AlertKind, number>;
    for (const a of this.open.values()) out[a.kind]++;
    return out;
  }

  /** Open alerts, newest first (from memory: always current, even while the database is catching up). */
  active(filter: { deviceId?: string } = {}): AlertDto[] {
    return [...this.open.values()]
      .filter((a) => filter.deviceId === undefined || a.deviceId === filter.deviceId)
      .sort((a, b) => b.startedAt - a.startedAt || b.id.localeCompare(a.id))
      .map((a) => this.toDto(a, null));
  }

  /** Alerts, active and cleared, newest start first; page on with nextCursor. */
  async list(q: AlertListQuery): Promise<{ items: AlertDto[]; nextCursor: string | null }> {
    const cursor = q.cursor === undefined ? null : parseCursor(q.cursor);
    const rows = await this.prisma.alert.findMany({
      where: {
        ...(q.deviceId !== undefined ? { deviceId: q.deviceId } : {}),
        ...(q.activeOnly ? { clearedAt: null } : {}),
        ...(cursor
          ? {
              OR: [{ startedAt: { lt: new Date(cursor.startedAt) } }, { startedAt: new Date(cursor.startedAt), id: { lt: cursor.id } }],
            }
          : {}),
      },
      orderBy: [{ startedAt: "desc" }, { id: "desc" }],
      take: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return {
      items: page.flatMap((r) => {
        const kind = AlertKind.safeParse(r.kind);
        if (!kind.success) return [];
        return [
          this.toDto(
            { id: r.id, deviceId: r.deviceId, kind: kind.data, message: r.message, startedAt: r.startedAt.getTime() },
            r.clearedAt?.getTime() ?? null,
          ),
        ];
      }),
      nextCursor: rows.length > q.limit && last ? `${last.startedAt.getTime()}.${last.id}` : null,
    };
  }

  /**
   * Periodic work (every few seconds): completes clear holds of devices that send no
   * new data, raises offline for devices that did not come back after a restart, and
   * retries database writes that failed.
   */
  tick(): void {
    this.guard("tick", () => {
      const now = this.now();
      for (const device of this.fleet.list()) {
        if (device.online) this.judgeStatus(device);
      }
      if (this.expectedBack.size > 0 && now - this.loadedAt >= this.opts.staleMs) {
        for (const id of this.expectedBack) {
          const device = this.fleet.get(id);
          if (device && !device.online) {
            this.apply(id, "offline", {
              kind: "fire",
              message: `Not heard from since the server restarted (nothing for ${formatSeconds(this.opts.staleMs)}).`,
            });
          }
        }
        this.expectedBack.clear();
      }
    });
    void this.flush();
  }

  /** Writes what is queued; resolves when the queue is empty or a write failed (it is retried on the next tick). */
  flush(): Promise<void> {
    this.draining ??= this.drain().finally(() => {
      this.draining = null;
    });
    return this.draining;
  }

  // ------------------------------------------------------------ rules

  private onStatus(deviceId: string, status: DeviceStatus): void {
    const seen = this.seenOf(deviceId);
    if (status.state === "online") {
      seen.cleanShutdown = false;
      return; // the `device` change that follows judges it
    }
    if (status.reason === "shutdown") {
      seen.cleanShutdown = true;
      return;
    }
    // A last will: the broker lost the connection. Also when it is the retained one found at startup.
    seen.cleanShutdown = false;
    this.expectedBack.delete(deviceId);
    this.apply(deviceId, "offline", { kind: "fire", message: "Connection lost: the broker delivered the device's last will." });
  }

  private onDevice(device: DeviceSummary): void {
    const seen = this.seenOf(device.id);
    const wasOnline = seen.online;
    seen.online = device.online;
    if (device.online) {
      seen.cleanShutdown = false; // back (by status or by telemetry alone): its next silence is news
      this.expectedBack.delete(device.id);
      this.judgeStatus(device);
      return;
    }
    if (wasOnline && !seen.cleanShutdown) {
      const since = device.lastSeenAt === null ? "" : ` for ${formatSeconds(this.now() - device.lastSeenAt)}`;
      this.apply(device.id, "offline", { kind: "fire", message: `Went silent: nothing received${since}.` });
    }
    // Nothing is observed while offline: every clear hold starts again when the device is back.
    for (const kind of ALERT_KINDS) this.apply(device.id, kind, { kind: "unknown" });
  }

  private onTelemetry(deviceId: string): void {
    const device = this.fleet.get(deviceId);
    const sample = device?.telemetry;
    if (!device || !sample) return;
    // Only the newest sample counts: a catch-up batch after a reconnect describes the past.
    const seen = this.seenOf(deviceId);
    if (sample.ts <= seen.lastSampleTs) return;
    seen.lastSampleTs = sample.ts;
    for (const kind of TELEMETRY_KINDS) this.apply(deviceId, kind, this.judgeSample(kind, sample));
  }

  private onRemoved(deviceId: string): void {
    for (const kind of ALERT_KINDS) this.open.delete(`${deviceId}:${kind}`);
    this.seen.delete(deviceId);
    this.expectedBack.delete(deviceId);
    // Its rows went with the device (ON DELETE CASCADE); writes for it would fail.
    this.writes = this.writes.filter((w) => (w.op === "open" ? w.alert.deviceId : w.deviceId) !== deviceId);
  }

  /** offline and crash_loop, from an online device's current state. */
  private judgeStatus(device: DeviceSummary): void {
    this.apply(device.id, "offline", { kind: "ok" });
    const runner = device.runner;
    let verdict: Verdict;
    if (!runner) verdict = { kind: "unknown" };
    else if (runner.state === "crash_loop") {
      const why = runner.lastError ? `: ${runner.lastError.split("\n")[0]!.slice(0, 300)}` : ".";
      verdict = { kind: "fire", message: `The runner keeps crashing (${runner.restarts} restarts)${why}` };
    } else if (runner.state === "ready" || runner.state === "stopped") verdict = { kind: "ok" };
    // starting / crashed: a crash loop retries now and then; only a runner that stays up clears it.
    else verdict = { kind: "band" };
    this.apply(device.id, "crash_loop", verdict);
  }

  private judgeSample(kind: (typeof TELEMETRY_KINDS)[number], s: TelemetrySample): Verdict {
    const o = this.opts;
    switch (kind) {
      case "throttled":
        if (!s.throttle) return { kind: "unknown" };
        return s.throttle.throttled
          ? { kind: "fire", message: `The firmware is throttling the CPU (get_throttled=0x${s.throttle.raw.toString(16)}).` }
          : { kind: "ok" };
      case "under_voltage":
        if (!s.throttle) return { kind: "unknown" };
        return s.throttle.underVoltage
          ? { kind: "fire", message: `The supply is under-voltage (get_throttled=0x${s.throttle.raw.toString(16)}).` }
          : { kind: "ok" };
      case "temperature":
        if (s.socTempC === null) return { kind: "unknown" };
        if (s.socTempC > o.tempC) return { kind: "fire", message: `SoC ${s.socTempC.toFixed(1)} °C (threshold ${o.tempC} °C).` };
        return s.socTempC < o.tempC - o.tempHysteresisC ? { kind: "ok" } : { kind: "band" };
      case "disk_low": {
        if (s.diskFreeBytes === null || s.diskTotalBytes === null || s.diskTotalBytes <= 0) return { kind: "unknown" };
        const free = (s.diskFreeBytes / s.diskTotalBytes) * 100;
        if (free < o.diskFreePercent) {
          return {
            kind: "fire",
            message: `Disk ${free.toFixed(1)}% free: ${formatBytes(s.diskFreeBytes)} of ${formatBytes(s.diskTotalBytes)} (threshold ${o.diskFreePercent}%).`,
          };
        }
        return free >= o.diskFreePercent + o.diskHysteresisPercent ? { kind: "ok" } : { kind: "band" };
      }
    }
  }

  /** Applies a verdict to one device and kind: opens, advances or resets the clear hold, or clears. */
  private apply(deviceId: string, kind: AlertKind, verdict: Verdict): void {
    const key = `${deviceId}:${kind}`;
    const open = this.open.get(key);
    const now = this.now();
    switch (verdict.kind) {
      case "fire":
        if (open) {
          open.okSince = null;
          return;
        }
        if (!this.fleet.has(deviceId)) return;
        {
          const alert: OpenAlert = { id: randomUUID(), deviceId, kind, message: verdict.message, startedAt: now, okSince: null };
          this.open.set(key, alert);
          this.log.info("alert opened", { device: deviceId, kind, message: verdict.message });
          this.enqueue({ op: "open", alert });
          this.emit("changed", this.toDto(alert, null));
        }
        return;
      case "band":
      case "unknown":
        // The clear condition is not observed now, so the hold starts again.
        if (open) open.okSince = null;
        return;
      case "ok":
        if (!open) return;
        open.okSince ??= now;
        if (now - open.okSince < this.opts.clearHoldMs) return;
        this.open.delete(key);
        this.log.info("alert cleared", { device: deviceId, kind });
        this.enqueue({ op: "clear", id: open.id, deviceId, clearedAt: now });
        this.emit("changed", this.toDto(open, now));
        return;
    }
  }

  // ------------------------------------------------------------ persistence

  private enqueue(write: Write): void {
    this.writes.push(write);
    void this.flush();
  }

  private async drain(): Promise<void> {
    while (this.writes.length > 0) {
      const w = this.writes[0]!;
      try {
        if (w.op === "open") {
          const a = w.alert;
          await this.prisma.alert.create({
            data: { id: a.id, deviceId: a.deviceId, kind: a.kind, message: a.message, startedAt: new Date(a.startedAt) },
          });
        } else {
          await this.prisma.alert.updateMany({ where: { id: w.id, clearedAt: null }, data: { clearedAt: new Date(w.clearedAt) } });
        }
      } catch (err) {
        if (!this.fleet.has(w.op === "open" ? w.alert.deviceId : w.deviceId)) {
          this.writes.shift(); // the device was deleted meanwhile
          continue;
        }
        this.log.error("writing an alert to the database failed; will retry", { error: (err as Error).message });
        return;
      }
      // The queue may have been filtered (device removed) while this write ran.
      if (this.writes[0] === w) this.writes.shift();
    }
  }

  // ------------------------------------------------------------ helpers

  private seenOf(deviceId: string) {
    let s = this.seen.get(deviceId);
    if (!s) {
      s = { online: false, cleanShutdown: false, lastSampleTs: 0 };
      this.seen.set(deviceId, s);
    }
    return s;
  }

  private toDto(a: Pick<OpenAlert, "id" | "deviceId" | "kind" | "message" | "startedAt">, clearedAt: number | null): AlertDto {
    return {
      id: a.id,
      deviceId: a.deviceId,
      deviceName: this.fleet.get(a.deviceId)?.name ?? a.deviceId,
      kind: a.kind,
      message: a.message,
      startedAt: a.startedAt,
      clearedAt,
    };
  }

  /** Runs a fleet listener: an alert bug must never throw into MQTT ingestion. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error("alert evaluation failed", { on: what, error: (err as Error).message });
    }
  }
}

function parseCursor(cursor: string): { startedAt: number; id: string } {
  const m = /^(\d{1,15})\.([A-Za-z0-9-]{1,64})$/.exec(cursor);
  if (!m) throw new AppError("bad_request", "Invalid cursor: pass the nextCursor of the previous page.");
  return { startedAt: Number(m[1]), id: m[2]! };
}

function formatSeconds(ms: number): string {
  return `${Math.max(0, Math.round(ms / 1000))} s`;
}
