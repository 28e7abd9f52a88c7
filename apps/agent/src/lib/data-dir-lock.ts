/**
 * One agent per data directory: `run` holds `agent.lock` there while it runs. Two
 * agents on one directory would log in with the same client id (each knocking the
 * other off the broker) and write the model store and rollout.json at once.
 *
 * Node has no flock(), so the lock is a file created atomically and exclusively:
 * written in full to a temporary file first and then link()ed to `agent.lock`
 * (link fails with EEXIST like open(O_EXCL) does, and a reader never sees a half-
 * written lock). It records the holder's pid, its start time from /proc (so a pid
 * reused by another process after a crash is not taken for the holder) and a random
 * token. A lock whose holder is gone (kill(pid, 0) → ESRCH, or the pid's start time
 * differs) is stale: it is replaced with rename() while holding `agent.lock.takeover`
 * (another exclusive file), after checking it is still the same stale lock, so two
 * agents starting at once cannot both take it over. It is removed on exit, only if it
 * is still this process's.
 *
 * Limits: pids are only meaningful within one pid namespace (two containers sharing
 * a volume see each other's pids as foreign), and on systems without /proc a reused
 * pid passes for the holder (refused, with a message saying which pid to check).
 */
import { randomBytes } from "node:crypto";
import { readFileSync, unlinkSync } from "node:fs";
import { link, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";

export const LOCK_FILE = "agent.lock";

const LockContent = z.object({
  version: z.literal(1),
  pid: z.number().int().positive(),
  /** starttime from /proc/<pid>/stat (clock ticks since boot), null where there is no /proc. */
  procStart: z.string().max(32).nullable(),
  startedAt: z.string().max(64),
  token: z.string().max(64),
});
export type LockContent = z.infer<typeof LockContent>;

export class DataDirLockedError extends Error {
  override readonly name = "DataDirLockedError";
  constructor(
    readonly dir: string,
    readonly holder: LockContent,
  ) {
    super(
      `another orchard-agent (pid ${holder.pid}, running since ${holder.startedAt}) is already using the data directory ${dir}: ` +
        "stop it first (e.g. systemctl stop orchard-agent), or give this one its own --data-dir",
    );
  }
}

export interface LockOptions {
  /** Where /proc is ("/proc" on Linux). */
  procRoot?: string;
  pid?: number;
  now?: () => Date;
  /** A takeover file older than this belongs to a process that died in the middle of one. */
  takeoverStaleMs?: number;
}

/** The process's start time as /proc/<pid>/stat says (field 22, after the parenthesised command name), or null. */
export function processStartTime(pid: number, procRoot = "/proc"): string | null {
  try {
    const stat = readFileSync(path.join(procRoot, String(pid), "stat"), "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After ")" come field 3 (state) onwards: starttime, field 22, is the 20th.
    const start = fields[19];
    return start && /^\d+$/.test(start) ? start : null;
  } catch {
    return null;
  }
}

/** Whether the process that wrote `lock` still runs: its pid exists and, where known, started when the lock says. */
export function holderAlive(lock: LockContent, options: Pick<LockOptions, "procRoot" | "pid"> = {}): boolean {
  const self = options.pid ?? process.pid;
  if (lock.pid === self) {
    // No other live process has this pid: it is this process or an earlier one that had the same pid (a restarted container).
    return lock.procStart !== null && lock.procStart === processStartTime(self, options.procRoot);
  }
  try {
    process.kill(lock.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ESRCH") return false;
    // EPERM: it exists (another user's); fall through to the start-time check.
  }
  if (lock.procStart === null) return true;
  const start = processStartTime(lock.pid, options.procRoot);
  return start === null || start === lock.procStart; // no /proc entry to compare: assume it is the holder
}

async function readLock(file: string): Promise<{ raw: string; lock: LockContent | null } | null> {
  let raw: string;
  try {
    raw = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  let json: unknown = null;
  try {
    json = JSON.parse(raw);
  } catch {
    // not a lock this code wrote (every lock is written whole before it appears): stale
  }
  const parsed = LockContent.safeParse(json);
  return { raw, lock: parsed.success ? parsed.data : null };
}

/** The lock this process holds on a data directory. */
export class DataDirLock {
  #released = false;
  constructor(
    readonly file: string,
    readonly content: LockContent,
  ) {}

  /** Removes the lock if it is still this process's (synchronous: also usable from an `exit` handler). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      const now = LockContent.safeParse(JSON.parse(readFileSync(this.file, "utf8")));
      if (now.success && now.data.token === this.content.token) unlinkSync(this.file);
    } catch {
      // gone already, or unreadable: nothing of ours to remove
    }
  }
}

/**
 * Takes the data directory's lock, or throws DataDirLockedError naming the running holder.
 * A stale lock (its holder is gone) is taken over.
 */
export async function acquireDataDirLock(dir: string, options: LockOptions = {}): Promise<DataDirLock> {
  const abs = path.resolve(dir);
  const file = path.join(abs, LOCK_FILE);
  const takeover = `${file}.takeover`;
  const pid = options.pid ?? process.pid;
  const content: LockContent = {
    version: 1,
    pid,
    procStart: processStartTime(pid, options.procRoot),
    startedAt: (options.now?.() ?? new Date()).toISOString(),
    token: randomBytes(12).toString("hex"),
  };
  const body = `${JSON.stringify(content)}\n`;
  const tmp = `${file}.${pid}.${content.token}.tmp`;
  await writeFile(tmp, body, { mode: 0o644, flag: "wx" });
  try {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await link(tmp, file); // exclusive: EEXIST when a lock is there
        return new DataDirLock(file, content);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const existing = await readLock(file);
      if (!existing) continue; // removed meanwhile: try again
      if (existing.lock && holderAlive(existing.lock, options)) throw new DataDirLockedError(abs, existing.lock);
      // Stale. Replace it while holding the takeover file, if it is still the same stale lock.
      try {
        await link(tmp, takeover);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
        const since = await stat(takeover).then(
          (s) => Date.now() - s.mtimeMs,
          () => 0,
        );
        if (since > (options.takeoverStaleMs ?? 10_000)) await unlink(takeover).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      try {
        const again = await readLock(file);
        if (again?.raw === existing.raw) {
          await rename(tmp, file); // atomic: the lock is never absent
          return new DataDirLock(file, content);
        }
      } finally {
        await unlink(takeover).catch(() => undefined);
      }
    }
    throw new Error(`could not take the lock ${file}: it keeps changing (agents starting over and over?)`);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
