/**
 * One process at a time on the embedded database: PGlite itself lets a second process
 * open a data folder another one has open (and both then write to it), so openDatabase
 * holds `<dataDir>/db.lock` while PGlite is open — the server, `npm run migrate` and
 * `npm run reset-admin-password` alike. The lock is created exclusively (open O_EXCL)
 * and records the holder's pid and its start time from /proc; one whose holder is gone
 * (no such pid, or a pid reused by a process that started at another time) is stale
 * and replaced. (The agent's data folder has its own, fuller lock:
 * apps/agent/src/lib/data-dir-lock.ts.)
 */
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";

export const DB_LOCK_FILE = "db.lock";

const LockContent = z.object({ pid: z.number().int().positive(), procStart: z.string().nullable(), since: z.string() });
type LockContent = z.infer<typeof LockContent>;

function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function alive(lock: LockContent): boolean {
  if (lock.pid === process.pid) return false; // an earlier process with this pid (a restarted container)
  try {
    process.kill(lock.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
  }
  const start = processStartTime(lock.pid);
  return lock.procStart === null || start === null || start === lock.procStart;
}

export class DatabaseInUseError extends Error {
  override readonly name = "DatabaseInUseError";
  constructor(
    readonly dataDir: string,
    readonly holder: LockContent,
  ) {
    super(
      `the embedded database in ${dataDir} is open in another process (pid ${holder.pid}, since ${holder.since}: ` +
        "an Orchard server, npm run migrate or npm run reset-admin-password); stop it first, only one process at a time may open it",
    );
  }
}

/** Takes the lock on `dataDir`'s embedded database; returns its release. */
export function lockEmbeddedDatabase(dataDir: string): () => void {
  const file = path.join(dataDir, DB_LOCK_FILE);
  const content: LockContent = { pid: process.pid, procStart: processStartTime(process.pid), since: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(content), { flag: "wx" });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw err;
    }
    let holder: LockContent | null = null;
    try {
      holder = LockContent.parse(JSON.parse(readFileSync(file, "utf8")));
    } catch {
      // unreadable or half written by a process that died: stale
    }
    if (holder && alive(holder)) throw new DatabaseInUseError(dataDir, holder);
    unlinkSync(file);
  }
  return () => {
    try {
      const now = LockContent.parse(JSON.parse(readFileSync(file, "utf8")));
      if (now.pid === content.pid && now.since === content.since) unlinkSync(file);
    } catch {
      // gone already: nothing of ours to remove
    }
  };
}
