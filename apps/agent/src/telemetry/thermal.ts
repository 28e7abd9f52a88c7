/**
 * SoC temperature from /sys/class/thermal. On a Pi 5 the SoC sensor is the zone
 * whose `type` is `cpu-thermal`; elsewhere the first zone is the best guess the
 * kernel offers. No zone at all (VMs, containers) → null.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

/** The SoC zone's type on a Raspberry Pi. */
export const PREFERRED_THERMAL_TYPE = "cpu-thermal";

/** Millidegrees as written in `temp` → °C with one decimal; null when unreadable or implausible. */
export function parseMillidegrees(text: string): number | null {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed)) return null;
  const celsius = Number(trimmed) / 1000;
  // Outside what a SoC can report (e.g. a disconnected sensor's sentinel): not a temperature.
  if (celsius < -40 || celsius > 150) return null;
  return Math.round(celsius * 10) / 10;
}

export async function readSocTemperature(root = "/"): Promise<number | null> {
  const base = path.join(root, "sys/class/thermal");
  let zones: string[];
  try {
    zones = (await readdir(base)).filter((n) => /^thermal_zone\d+$/.test(n));
  } catch {
    return null;
  }
  zones.sort((a, b) => Number(a.slice("thermal_zone".length)) - Number(b.slice("thermal_zone".length)));
  if (zones.length === 0) return null;

  const typed = await Promise.all(
    zones.map(async (zone) => ({
      zone,
      type: (await readFile(path.join(base, zone, "type"), "utf8").catch(() => "")).trim(),
    })),
  );
  const chosen = typed.find((z) => z.type === PREFERRED_THERMAL_TYPE) ?? typed[0]!;
  try {
    return parseMillidegrees(await readFile(path.join(base, chosen.zone, "temp"), "utf8"));
  } catch {
    return null;
  }
}
