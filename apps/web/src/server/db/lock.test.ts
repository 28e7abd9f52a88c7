/**
 * The embedded database's lock (PGlite itself lets two processes open one folder): a
 * lock held by a running process refuses, naming it; one left by a process that is gone
 * (or whose pid now belongs to a process started later) is taken over; release removes
 * only this process's lock.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DB_LOCK_FILE, DatabaseInUseError, lockEmbeddedDatabase } from "./lock.ts";

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function dataDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "orchard-db-lock-"));
  dirs.push(d);
  return d;
}
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}
async function running(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  children.push(child);
  await new Promise((r) => child.once("spawn", r));
  return child;
}

describe("lockEmbeddedDatabase", () => {
  it("refuses while another running process holds the lock, naming its pid", async () => {
    const dir = await dataDir();
    const other = await running();
    await writeFile(
      path.join(dir, DB_LOCK_FILE),
      JSON.stringify({ pid: other.pid, procStart: startTime(other.pid!), since: "2026-01-01T00:00:00Z" }),
    );
    expect(() => lockEmbeddedDatabase(dir)).toThrow(DatabaseInUseError);
    expect(() => lockEmbeddedDatabase(dir)).toThrow(`is open in another process (pid ${other.pid}, since 2026-01-01T00:00:00Z`);
  });

  it("takes over a lock whose holder is gone, or whose pid now belongs to a later process", async () => {
    const dir = await dataDir();
    const gone = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await new Promise((r) => gone.once("exit", r));
    await writeFile(path.join(dir, DB_LOCK_FILE), JSON.stringify({ pid: gone.pid, procStart: "1", since: "x" }));
    const release = lockEmbeddedDatabase(dir);
    expect(JSON.parse(readFileSync(path.join(dir, DB_LOCK_FILE), "utf8")).pid).toBe(process.pid);
    release();
    expect(existsSync(path.join(dir, DB_LOCK_FILE)), "released").toBe(false);

    const reused = await running();
    await writeFile(path.join(dir, DB_LOCK_FILE), JSON.stringify({ pid: reused.pid, procStart: "1", since: "x" }));
    lockEmbeddedDatabase(dir)();
  });

  it("release leaves a lock that is not this process's", async () => {
    const dir = await dataDir();
    const release = lockEmbeddedDatabase(dir);
    const other = await running();
    const theirs = JSON.stringify({ pid: other.pid, procStart: startTime(other.pid!), since: "later" });
    await writeFile(path.join(dir, DB_LOCK_FILE), theirs);
    release();
    expect(readFileSync(path.join(dir, DB_LOCK_FILE), "utf8")).toBe(theirs);
  });
});
