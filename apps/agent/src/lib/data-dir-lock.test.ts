import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DataDirLockedError, LOCK_FILE, acquireDataDirLock, holderAlive, processStartTime } from "./data-dir-lock.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-lock-"));
  dirs.push(dir);
  return dir;
}
/** A pid that was just used and is gone. */
function deadPid(): number {
  return spawnSync(process.execPath, ["-e", ""]).pid!;
}

describe("data directory lock", () => {
  it("is held by one process: a second acquire is refused with the directory and the holder's pid", async () => {
    const dir = await dataDir();
    const lock = await acquireDataDirLock(dir);
    const content = JSON.parse(await readFile(path.join(dir, LOCK_FILE), "utf8"));
    expect(content).toMatchObject({ version: 1, pid: process.pid, procStart: processStartTime(process.pid) });
    expect(content.procStart).toMatch(/^\d+$/); // Linux: the start time guards against pid reuse
    const refused = await acquireDataDirLock(dir).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataDirLockedError);
    expect((refused as Error).message).toContain(dir);
    expect((refused as Error).message).toContain(`pid ${process.pid}`);
    lock.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    (await acquireDataDirLock(dir)).release();
  });

  it("takes over a stale lock (dead pid, reused pid, garbage), and of two takers at once exactly one wins", async () => {
    const dir = await dataDir();
    const file = path.join(dir, LOCK_FILE);
    const stale = { version: 1 as const, pid: deadPid(), procStart: null, startedAt: "2020-01-01T00:00:00.000Z", token: "dead" };
    expect(holderAlive(stale)).toBe(false);
    expect(holderAlive({ ...stale, pid: process.ppid, procStart: "1" })).toBe(false); // alive pid, another process
    expect(holderAlive({ ...stale, pid: process.ppid, procStart: processStartTime(process.ppid) })).toBe(true);

    await writeFile(file, "not json");
    (await acquireDataDirLock(dir)).release();

    for (let round = 0; round < 20; round++) {
      await writeFile(file, JSON.stringify(stale));
      // Two live processes (this one and its parent, by pid) start on the same stale lock at the same moment.
      const results = await Promise.allSettled([acquireDataDirLock(dir), acquireDataDirLock(dir, { pid: process.ppid })]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r) => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(DataDirLockedError);
      const holder = JSON.parse(await readFile(file, "utf8"));
      expect(holder.token).toBe((won[0] as PromiseFulfilledResult<{ content: { token: string } }>).value.content.token);
    }
  });

  it("release leaves a lock alone that is no longer this process's", async () => {
    const dir = await dataDir();
    const file = path.join(dir, LOCK_FILE);
    const lock = await acquireDataDirLock(dir);
    const other = { version: 1, pid: process.ppid, procStart: processStartTime(process.ppid), startedAt: "x", token: "other" };
    await writeFile(file, JSON.stringify(other));
    lock.release();
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({ token: "other" });
  });
});
