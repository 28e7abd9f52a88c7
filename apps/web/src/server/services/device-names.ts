/**
 * The rules for device names, in one place: 1 to 64 characters after trimming, no control
 * characters, unique among devices without regard to case, and never another device's id (the
 * CLI, rollouts and `/v1` accept a device's name where they accept its id, so a name must point
 * at one device only). An enrollment whose name is taken gets the first free `name-2`, `name-3` …
 * (freeDeviceName); a rename to a taken name or to another device's id is refused
 * (assertNameFree). The database backs this with a unique index on lower(name)
 * (prisma/migrations/0009_device_names_unique).
 */
import { z } from "zod";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";

export const DEVICE_NAME_MAX = 64;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** No control characters (a NUL cannot even be stored): for names and for what an agent reports at enrollment. */
export const withoutControl = (s: string) => !CONTROL.test(s);
export const CONTROL_MESSAGE = "must not contain control characters (NUL, newline, tab …)";

export const DeviceName = z
  .string()
  .trim()
  .min(1, "A device name is required.")
  .max(DEVICE_NAME_MAX, `A device name may be at most ${DEVICE_NAME_MAX} characters long.`)
  .refine(withoutControl, `A device name ${CONTROL_MESSAGE}.`);

/** The name an enrollment token may carry: a DeviceName, or empty for "the Pi's hostname". */
export const OptionalDeviceName = z.union([z.string().trim().length(0), DeviceName]);

type Db = Pick<Prisma, "device">;

/** The name a new device gets for `wanted` (its token's name or its hostname): `wanted` when free, else `wanted-N`. */
export async function freeDeviceName(db: Db, wanted: string, fallback: string): Promise<string> {
  // A hostname longer than a name may be is cut; one that is no name at all gives the device's id.
  const cut = wanted.trim().slice(0, DEVICE_NAME_MAX).trim();
  const base = cut.length > 0 && withoutControl(cut) ? cut : fallback;
  const prefix = base.slice(0, DEVICE_NAME_MAX - 8);
  const rows = await db.device.findMany({
    where: { OR: [{ name: { startsWith: prefix, mode: "insensitive" } }, { id: { startsWith: prefix.toLowerCase() } }] },
    select: { id: true, name: true },
  });
  const taken = new Set(rows.flatMap((r) => [r.name.toLowerCase(), r.id.toLowerCase()]));
  if (!taken.has(base.toLowerCase())) return base;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const candidate = base.slice(0, DEVICE_NAME_MAX - suffix.length) + suffix;
    if (!taken.has(candidate.toLowerCase())) return candidate;
  }
}

/** Refuses (409) `name` for device `selfId` when another device has it (in any case) or it is another device's id. */
export async function assertNameFree(db: Db, name: string, selfId: string): Promise<void> {
  const other = await db.device.findFirst({
    where: { id: { not: selfId }, OR: [{ name: { equals: name, mode: "insensitive" } }, { id: name.toLowerCase() }] },
    select: { id: true, name: true },
  });
  if (!other) return;
  if (other.id === name.toLowerCase()) throw new AppError("conflict", `"${name}" is another device's id; choose another name.`);
  throw new AppError("conflict", `Another device is already named "${other.name}"; choose another name.`);
}

/** Whether `err` is the database refusing a second device with the same name (two enrollments or renames at once). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === "P2002";
}
