/**
 * Device management and history: rename, tags, delete, telemetry and event history for
 * charts. Live state comes from FleetService; this module owns the queries.
 */
import { z } from "zod";
import type { DeviceEvent, TelemetrySample } from "@orchard/contracts";
import { DeviceEvent as DeviceEventSchema, DeviceTag, MAX_DEVICE_TAGS } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { FleetService } from "./fleet.ts";
import { DeviceName, assertNameFree, isUniqueViolation } from "./device-names.ts";
import type { TelemetrySeries } from "@orchard/client";
import type { TelemetryStore } from "./telemetry-store.ts";

export class DeviceService {
  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    /** After the row is gone: remove the device's broker account (which cuts its live connection) and its retained status. */
    private readonly hooks: { onRemoved: (deviceId: string) => void | Promise<void> },
    private readonly store: TelemetryStore,
  ) {}

  /** Refused (409) when another device has the name (in any case) or it is another device's id (device-names.ts). */
  async rename(id: string, rawName: string): Promise<void> {
    const parsed = DeviceName.safeParse(rawName);
    if (!parsed.success) throw new AppError("bad_request", parsed.error.issues[0]!.message);
    const name = parsed.data;
    await assertNameFree(this.prisma, name, id);
    const { count } = await this.prisma.device.updateMany({ where: { id }, data: { name } }).catch(async (err: unknown) => {
      // Another rename or enrollment took it just now (the unique index decides): say who has it.
      if (isUniqueViolation(err)) await assertNameFree(this.prisma, name, id);
      throw err;
    });
    if (count === 0) throw new AppError("not_found", `No device ${id}.`);
    this.fleet.renamed(id, name);
  }

  /** Replaces the device's tags (lower-case letters, digits and '-'; at most MAX_DEVICE_TAGS); returns them deduplicated and sorted. */
  async setTags(id: string, tags: string[]): Promise<string[]> {
    const parsed = z.array(DeviceTag).max(MAX_DEVICE_TAGS, `A device may have at most ${MAX_DEVICE_TAGS} tags.`).safeParse(tags);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const bad = issue.path.length > 0 ? ` (${JSON.stringify(tags[Number(issue.path[0])])})` : "";
      throw new AppError("bad_request", `${issue.message}${bad}`);
    }
    const clean = [...new Set(parsed.data)].sort();
    const { count } = await this.prisma.device.updateMany({ where: { id }, data: { tags: clean } });
    if (count === 0) throw new AppError("not_found", `No device ${id}.`);
    this.fleet.tagsChanged(id, clean);
    return clean;
  }

  /** Deletes the device, its history and its broker credentials, and disconnects it. */
  async remove(id: string): Promise<void> {
    const { count } = await this.prisma.device.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", `No device ${id}.`);
    this.fleet.removed(id);
    await this.hooks.onRemoved(id);
  }

  async telemetry(id: string, sinceMs: number): Promise<TelemetrySample[]> {
    if (!this.fleet.has(id)) throw new AppError("not_found", `No device ${id}.`);
    await this.fleet.flush(); // include samples still waiting in memory
    return this.store.rawSamples(id, sinceMs);
  }

  async telemetrySeries(id: string, rangeMs: number, toMs?: number): Promise<TelemetrySeries> {
    if (!this.fleet.has(id)) throw new AppError("not_found", `No device ${id}.`);
    await this.fleet.flush(); // include samples still waiting in memory
    return this.store.series(id, rangeMs, toMs);
  }

  async events(id: string, limit: number): Promise<{ deviceId: string; event: DeviceEvent }[]> {
    if (!this.fleet.has(id)) throw new AppError("not_found", `No device ${id}.`);
    await this.fleet.flush();
    const rows = await this.prisma.deviceEvent.findMany({ where: { deviceId: id }, orderBy: { ts: "desc" }, take: limit });
    return rows.flatMap((r) => {
      const parsed = DeviceEventSchema.safeParse(r.payload);
      return parsed.success ? [{ deviceId: r.deviceId, event: parsed.data }] : [];
    });
  }
}
