/**
 * Crash-safe file writes for the agent's data dir. A power cut on a Pi must leave
 * either the old or the new agent.json / state.json, never a torn one: write a
 * sibling `.new` file, fsync it, rename it over the target, fsync the directory.
 */
import { constants } from "node:fs";
import { chmod, mkdir, open, rename, stat, unlink } from "node:fs/promises";
import path from "node:path";

export interface AtomicWriteOptions {
  /** File mode of the result, applied even when the file already existed with another mode. */
  mode?: number;
}

export async function writeFileAtomic(file: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  const tmp = `${file}.new`;
  // O_NOFOLLOW: a planted symlink at the temp name must not redirect the write.
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);
  try {
    // The create mode is filtered by the umask and ignored for an existing file; set it explicitly.
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await fsyncDir(path.dirname(file));
}

/** Makes a directory's entries (a rename, a new file) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Creates the agent's data dir with mode 0700, and tightens it to 0700 when it
 * exists with group/other access: it is the agent's own directory and holds its
 * broker credentials. Returns the mode it had before, when it had to change it.
 */
export async function ensurePrivateDir(dir: string): Promise<{ tightenedFrom: number | null }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await stat(dir);
  if (!info.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  const mode = info.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    await chmod(dir, 0o700);
    return { tightenedFrom: mode };
  }
  return { tightenedFrom: null };
}
