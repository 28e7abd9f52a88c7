/**
 * The content-addressed blob store: every artifact file once, under its sha256, at
 * `<root>/blobs/<first two hex>/<sha256>` (root = `${ORCHARD_DATA}/artifacts`). Files
 * on their way in (uploads, downloads from a URL) live in `<root>/incoming/` on the
 * same filesystem, so adding one to the store is an fsync and a rename: a reader (or a
 * crash) never sees half a blob. A full disk while receiving fails with DiskFullError
 * and the half-written file is deleted.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { constants, createReadStream, type ReadStream } from "node:fs";
import { open as fsOpen, mkdir, readdir, rename, rm, stat, unlink, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { type BlobChunkList, Sha256Hex, blobChunkSize } from "@orchard/contracts";

/** The disk filled up while a file was being received; nothing of it was kept. */
export class DiskFullError extends Error {
  constructor(what: string) {
    super(
      `The server's disk is full: ${what} could not be stored, and nothing of it was kept. Free space under the data directory and try again.`,
    );
    this.name = "DiskFullError";
  }
}

/** A source sent more bytes than allowed; none beyond the limit were written. */
export class LimitExceededError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
    this.name = "LimitExceededError";
  }
}

/** What the store opens files with: node:fs/promises' open, replaceable in tests (e.g. to simulate a full disk). */
export type OpenFile = (file: string, flags: string | number, mode?: number) => Promise<FileHandle>;

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export interface WriteResult {
  /** Bytes written to the file (and fed to the hash), also when the source failed part-way. */
  written: number;
  /** The source's error (e.g. the client's connection dropped), after `written` bytes; null when it ended normally. */
  sourceError: unknown;
}

/**
 * Writes `source` into `handle` from `position`, feeding the same bytes to `hash` in the
 * same pass. At most `limit` bytes: a source that sends more gets LimitExceededError (what
 * came before the limit is written). A write error (ENOSPC: DiskFullError) is thrown; a
 * source error is returned with the count of bytes written before it, so a resumable
 * upload can continue from there.
 */
export async function writeFrom(
  handle: FileHandle,
  position: number,
  source: AsyncIterable<Uint8Array>,
  hash: Hash,
  opts: { limit: number; what: string; onBytes?: (written: number) => void },
): Promise<WriteResult> {
  let written = 0;
  const writeAll = async (buf: Uint8Array) => {
    let off = 0;
    while (off < buf.length) {
      let n: number;
      try {
        ({ bytesWritten: n } = await handle.write(buf, off, buf.length - off, position + written + off));
      } catch (err) {
        if (isDiskFull(err)) throw new DiskFullError(opts.what);
        throw err;
      }
      off += n;
    }
    hash.update(buf);
    written += buf.length;
    opts.onBytes?.(written);
  };
  try {
    for await (const chunk of source) {
      const buf = chunk instanceof Uint8Array ? chunk : Buffer.from(chunk as ArrayBuffer);
      if (written + buf.length > opts.limit) {
        await writeAll(buf.subarray(0, opts.limit - written));
        throw new LimitExceededError(opts.limit);
      }
      await writeAll(buf);
    }
  } catch (err) {
    if (err instanceof DiskFullError || err instanceof LimitExceededError) throw err;
    if ((err as { syscall?: string }).syscall === "write") throw err;
    return { written, sourceError: err };
  }
  return { written, sourceError: null };
}

/** Feeds the first `length` bytes of a file to `hash` (to continue a partial file's hash after a restart). */
export async function hashFilePrefix(file: string, length: number, hash: Hash = createHash("sha256")): Promise<Hash> {
  if (length === 0) return hash;
  const stream = createReadStream(file, { start: 0, end: length - 1, highWaterMark: 1 << 20 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash;
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsOpen(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class BlobStore {
  readonly blobsDir: string;
  readonly incomingDir: string;

  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly root: string,
    private readonly openFile: OpenFile = fsOpen,
  ) {
    this.blobsDir = path.join(root, "blobs");
    this.incomingDir = path.join(root, "incoming");
  }

  /** Creates the directories and deletes temp files a crash left behind (uploads keep their own files). */
  async init(): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.incomingDir, { recursive: true });
    for (const name of await readdir(this.incomingDir)) {
      if (name.startsWith(".tmp-")) await rm(path.join(this.incomingDir, name), { force: true });
    }
  }

  /**
   * Runs `fn` alone among other exclusive sections: what adds a blob and records who uses
   * it (a finished upload, a new artifact) never interleaves with the garbage collection
   * that deletes blobs nobody uses.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  blobPath(sha256: string): string {
    const sha = Sha256Hex.parse(sha256);
    return path.join(this.blobsDir, sha.slice(0, 2), sha);
  }

  /** A file in the incoming directory (same filesystem as the blobs); `name` must be a plain file name. */
  incomingPath(name: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith(".")) throw new Error(`not a plain file name: ${name}`);
    return path.join(this.incomingDir, name);
  }

  /** The blob's size, or null when the store does not have it. */
  async size(sha256: string): Promise<number | null> {
    return stat(this.blobPath(sha256)).then(
      (s) => s.size,
      (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return null;
        throw err;
      },
    );
  }

  /** Opens a file for receiving bytes (creating it when missing). */
  openForWrite(file: string): Promise<FileHandle> {
    // Not "a": appending mode ignores write positions on Linux.
    return this.openFile(file, constants.O_RDWR | constants.O_CREAT, 0o644);
  }

  /**
   * Stores everything `source` yields: into a temp file (hashing in the same pass), fsync,
   * then renamed to its sha256. With expectedSha256, other bytes are refused (and deleted).
   */
  async put(
    source: AsyncIterable<Uint8Array>,
    opts: { what: string; expectedSha256?: string; maxBytes?: number } = { what: "the file" },
  ): Promise<{ sha256: string; size: number }> {
    const tmp = path.join(this.incomingDir, `.tmp-${randomBytes(8).toString("hex")}`);
    const handle = await this.openFile(tmp, "wx", 0o644);
    let done = false;
    try {
      const hash = createHash("sha256");
      const { written, sourceError } = await writeFrom(handle, 0, source, hash, {
        limit: opts.maxBytes ?? Number.MAX_SAFE_INTEGER,
        what: opts.what,
      });
      if (sourceError) throw sourceError;
      const sha256 = hash.digest("hex");
      if (opts.expectedSha256 && opts.expectedSha256 !== sha256) {
        throw new Error(`${opts.what} has sha256 ${sha256}, not the expected ${opts.expectedSha256}; it was not stored`);
      }
      await handle.sync();
      await handle.close();
      done = true;
      await this.adopt(tmp, sha256);
      return { sha256, size: written };
    } finally {
      if (!done) {
        await handle.close().catch(() => undefined);
        await rm(tmp, { force: true });
      }
    }
  }

  /**
   * Moves a complete, fsynced file from the incoming directory into the store as `sha256`.
   * When the store already has those bytes, the file is deleted instead.
   */
  async adopt(file: string, sha256: string): Promise<void> {
    const target = this.blobPath(sha256);
    if ((await this.size(sha256)) !== null) {
      await unlink(file);
      return;
    }
    await mkdir(path.dirname(target), { recursive: true });
    await rename(file, target);
    await fsyncDir(path.dirname(target));
  }

  /** The first `bytes` bytes of a blob (fewer when it is shorter): what a file-format check reads. */
  async head(sha256: string, bytes: number): Promise<Uint8Array> {
    const fh = await fsOpen(this.blobPath(sha256), "r");
    try {
      const buf = Buffer.alloc(bytes);
      const { bytesRead } = await fh.read(buf, 0, bytes, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  /** Streams a blob, optionally a byte range [start, end] (inclusive, as HTTP ranges). */
  read(sha256: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.blobPath(sha256), { ...(range ?? {}), highWaterMark: 1 << 20 });
  }

  /**
   * The blob's chunk hashes (contracts BlobChunkList: chunkSize from blobChunkSize, 8 MiB for
   * files up to 32 GiB), read in one pass that also checks the whole file's sha256: a blob
   * damaged on disk gets no chunk list (it throws), so a list never vouches for bad bytes.
   */
  async chunkList(sha256: string, chunkSizeOverride?: number): Promise<BlobChunkList> {
    const chunkSize = chunkSizeOverride ?? blobChunkSize((await stat(this.blobPath(sha256))).size);
    const whole = createHash("sha256");
    const chunks: string[] = [];
    let chunk = createHash("sha256");
    let inChunk = 0;
    let size = 0;
    for await (const data of this.read(sha256)) {
      const buf = data as Buffer;
      whole.update(buf);
      size += buf.length;
      let at = 0;
      while (at < buf.length) {
        const take = Math.min(buf.length - at, chunkSize - inChunk);
        chunk.update(buf.subarray(at, at + take));
        inChunk += take;
        at += take;
        if (inChunk === chunkSize) {
          chunks.push(chunk.digest("hex"));
          chunk = createHash("sha256");
          inChunk = 0;
        }
      }
    }
    if (inChunk > 0) chunks.push(chunk.digest("hex"));
    const actual = whole.digest("hex");
    if (actual !== sha256) throw new Error(`the stored file ${sha256} is damaged: its bytes have sha256 ${actual}`);
    return { type: "orchard.blob-chunks", sha256, size, chunkSize, chunks };
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.blobPath(sha256), { force: true });
  }

  /** Every blob in the store, by sha256. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    for (const prefix of await readdir(this.blobsDir).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of await readdir(path.join(this.blobsDir, prefix))) {
        if (Sha256Hex.safeParse(name).success && name.startsWith(prefix)) out.push(name);
      }
    }
    return out.sort();
  }
}
