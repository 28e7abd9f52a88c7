/** System load averages from /proc/loadavg. */
import { readFile } from "node:fs/promises";
import path from "node:path";

export interface LoadAverage {
  load1: number;
  load5: number;
  load15: number;
}

export function parseLoadAvg(text: string): LoadAverage | null {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || ![a, b, c].every((n) => Number.isFinite(n) && n >= 0)) return null;
  return { load1: a, load5: b, load15: c };
}

export async function readLoadAverage(root = "/"): Promise<LoadAverage | null> {
  try {
    return parseLoadAvg(await readFile(path.join(root, "proc/loadavg"), "utf8"));
  } catch {
    return null;
  }
}
