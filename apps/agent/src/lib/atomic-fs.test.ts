import { mkdtemp, readFile, readdir, rm, stat, writeFile, chmod, mkdir, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensurePrivateDir, writeFileAtomic } from "./atomic-fs.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-atomic-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

describe("writeFileAtomic", () => {
  it("writes the content with mode 0600 by default and leaves no temp file", async () => {
    const file = path.join(dir, "agent.json");
    await writeFileAtomic(file, '{"a":1}\n');
    expect(await readFile(file, "utf8")).toBe('{"a":1}\n');
    expect(await modeOf(file)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["agent.json"]);
  });

  it("replaces an existing file and fixes its mode, whatever the umask", async () => {
    const file = path.join(dir, "agent.json");
    await writeFile(file, "old");
    await chmod(file, 0o666);
    const previous = process.umask(0o000);
    try {
      await writeFileAtomic(file, "new", { mode: 0o600 });
    } finally {
      process.umask(previous);
    }
    expect(await readFile(file, "utf8")).toBe("new");
    expect(await modeOf(file)).toBe(0o600);
  });

  it("applies another mode when asked (state.json is 0644)", async () => {
    const file = path.join(dir, "state.json");
    await writeFileAtomic(file, "{}", { mode: 0o644 });
    expect(await modeOf(file)).toBe(0o644);
  });

  it("overwrites a stale temp file left by a crash, with the right mode", async () => {
    const file = path.join(dir, "agent.json");
    await writeFile(`${file}.new`, "torn write from a power cut");
    await chmod(`${file}.new`, 0o644);
    await writeFileAtomic(file, "whole");
    expect(await readFile(file, "utf8")).toBe("whole");
    expect(await modeOf(file)).toBe(0o600);
    expect(await readdir(dir)).toEqual(["agent.json"]);
  });

  it("refuses to follow a symlink planted at the temp name", async () => {
    const file = path.join(dir, "agent.json");
    const target = path.join(dir, "elsewhere");
    await writeFile(target, "untouched");
    await symlink(target, `${file}.new`);
    await expect(writeFileAtomic(file, "secret")).rejects.toThrow();
    expect(await readFile(target, "utf8")).toBe("untouched");
  });

  it("fails when the directory does not exist, without creating anything", async () => {
    await expect(writeFileAtomic(path.join(dir, "missing", "agent.json"), "x")).rejects.toThrow(/ENOENT/);
  });
});

describe("ensurePrivateDir", () => {
  it("creates a missing data dir (and parents) with mode 0700", async () => {
    const data = path.join(dir, "a", "b", "data");
    expect(await ensurePrivateDir(data)).toEqual({ tightenedFrom: null });
    expect(await modeOf(data)).toBe(0o700);
  });

  it("tightens an existing group/world-readable data dir to 0700", async () => {
    const data = path.join(dir, "data");
    await mkdir(data);
    await chmod(data, 0o755);
    expect(await ensurePrivateDir(data)).toEqual({ tightenedFrom: 0o755 });
    expect(await modeOf(data)).toBe(0o700);
  });

  it("refuses a path that is a file", async () => {
    const file = path.join(dir, "file");
    await writeFile(file, "");
    await expect(ensurePrivateDir(file)).rejects.toThrow();
  });
});
