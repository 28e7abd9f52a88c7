/** Memory and swap from /proc/meminfo (MemTotal, MemAvailable, SwapTotal, SwapFree). */
import { readFile } from "node:fs/promises";
import path from "node:path";

export interface MemoryInfo {
  memTotalBytes: number;
  memAvailableBytes: number;
  swapTotalBytes: number;
  swapUsedBytes: number;
}

export function parseMeminfo(text: string): MemoryInfo | null {
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]));
  }
  const memTotal = kb.get("MemTotal");
  const memAvailable = kb.get("MemAvailable");
  const swapTotal = kb.get("SwapTotal");
  const swapFree = kb.get("SwapFree");
  if (memTotal === undefined || memAvailable === undefined || swapTotal === undefined || swapFree === undefined) return null;
  return {
    memTotalBytes: memTotal * 1024,
    memAvailableBytes: memAvailable * 1024,
    swapTotalBytes: swapTotal * 1024,
    swapUsedBytes: Math.max(0, swapTotal - swapFree) * 1024,
  };
}

export async function readMemory(root = "/"): Promise<MemoryInfo | null> {
  try {
    return parseMeminfo(await readFile(path.join(root, "proc/meminfo"), "utf8"));
  } catch {
    return null;
  }
}
