/**
 * CPU utilisation from two readings of /proc/stat: the share of time the CPUs
 * were not idle between them (all cores together, 0–100).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";

export interface CpuTimes {
  /** Jiffies spent doing anything but idle / iowait. */
  busy: number;
  /** All jiffies. */
  total: number;
}

/** Parses the aggregate `cpu` line of /proc/stat; null when it is missing or malformed. */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return null;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (fields.length < 4 || fields.some((n) => !Number.isFinite(n) || n < 0)) return null;
  // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
  // already counted in user/nice, so it is left out of the total.
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  const total = user + nice + system + idle + iowait + irq + softirq + steal;
  return { busy: total - idle - iowait, total };
}

export async function readCpuTimes(root = "/"): Promise<CpuTimes | null> {
  try {
    return parseProcStat(await readFile(path.join(root, "proc/stat"), "utf8"));
  } catch {
    return null;
  }
}

/** Busy share between two readings, in percent; null when no time passed or the counters went backwards. */
export function cpuPercent(before: CpuTimes, after: CpuTimes): number | null {
  const total = after.total - before.total;
  const busy = after.busy - before.busy;
  if (total <= 0 || busy < 0) return null;
  return Math.round(Math.min(100, (busy / total) * 100) * 10) / 10;
}
