/** Resident memory of a process from /proc/<pid>/status (VmRSS), the fallback when the runner cannot answer `stats`. */
import { readFile } from "node:fs/promises";
import path from "node:path";

export function parseVmRss(status: string): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB\s*$/m.exec(status);
  return m ? Number(m[1]) * 1024 : null;
}

export async function readProcessRss(pid: number, root = "/"): Promise<number | null> {
  try {
    return parseVmRss(await readFile(path.join(root, "proc", String(pid), "status"), "utf8"));
  } catch {
    return null;
  }
}
