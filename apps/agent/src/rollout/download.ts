/**
 * Downloads one artifact file to its partial file, resuming with HTTP Range from
 * what is already there and hashing in the same pass (on start, the bytes already on
 * disk are hashed first, so the digest always covers the whole file and there is no
 * second read after the download).
 *
 * - 206 appends at the partial's size; 200 (a server that ignores Range) starts over;
 *   416 (the partial is longer than the file) deletes the partial and starts over.
 * - 503 is the server saying "busy": wait Retry-After (default 5 s) and ask again; it
 *   is not a failed attempt.
 * - Resets, refused connections, timeouts and other 5xx/408/429 answers are retried with
 *   backoff (resuming; 1 s doubling to at most 30 s a wait) for as long as the download
 *   keeps failing without a byte arriving for less than DOWNLOAD_RETRY_BUDGET_MS (15 min:
 *   a server restart or a short network outage is waited out), then `download_failed`.
 *   Any byte that arrives starts the budget (and the backoff) over. Other 4xx answers are
 *   final at once. An abort (the rollout aborted, the agent stopping) ends the waits at once.
 * - ENOSPC while writing is `disk_full`.
 *
 * Memory stays flat whatever the file's size: the body is streamed, written in
 * blocks of at most WRITE_BLOCK bytes, and hashed as it goes.
 */
import { type Hash, createHash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdir, open } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "@orchard/contracts";
import { type BackoffOptions, backoffDelay } from "../lib/backoff.js";
import { type Clock, sleep as sleepFor, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";

export type DownloadErrorCode = "download_failed" | "disk_full" | "hash_mismatch";

export class DownloadError extends Error {
  override readonly name = "DownloadError";
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface DownloadOptions {
  url: string;
  /** The Authorization header (Basic device id : broker password); none for a URL on another host. */
  authorization: string | undefined;
  partialPath: string;
  expectedSize: number;
  signal: AbortSignal;
  /** Bytes written to the partial since the last call (negative when it had to start over). */
  onBytes: (delta: number) => void;
  logger: Logger;
  /** At most this many transient failures in a row (without a byte arriving) are retried; none by default (the time budget decides). */
  retries?: number;
  /** Failing without a byte arriving for this long is `download_failed` (DOWNLOAD_RETRY_BUDGET_MS). */
  retryBudgetMs?: number;
  backoff?: BackoffOptions;
  /** Measures the retry budget; the system clock by default. */
  clock?: Clock;
  /** Waits between tries (a test's own, with `clock`); lib/clock's sleep by default. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** A response that sends nothing for this long is dropped and resumed. */
  idleTimeoutMs?: number;
  /** Longest Retry-After honoured. */
  maxRetryAfterMs?: number;
  /** fetch with the CAs the agent trusts (lib/trust.ts); the global one by default. */
  fetch?: typeof fetch;
  /** The server's chunk hashes: each chunk is checked as it completes, a bad one fetched again alone. */
  chunks?: DownloadChunks | null;
}

export interface DownloadResult {
  sha256: string;
  size: number;
  /** Bytes that came over the network in this call. */
  fetchedBytes: number;
}

/** Waits between tries of a failing download: 1 s, 2 s, 4 s … at most 30 s, with jitter. */
export const DOWNLOAD_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.3 };
/**
 * How long a download keeps retrying while no byte arrives (the server restarting, the
 * network away) before it is `download_failed`. A server restart took 42 s in the field,
 * where the old budget (5 retries) gave up after about 30 s.
 */
export const DOWNLOAD_RETRY_BUDGET_MS = 15 * 60_000;
const WRITE_BLOCK = 1024 * 1024;
const READ_BLOCK = 1024 * 1024;
const DEFAULT_RETRY_AFTER_MS = 5_000;

class TransientError extends Error {
  override readonly name = "TransientError";
}

/** Retry-After as seconds or an HTTP date, in ms (null when absent or unreadable). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ""}`;
  return error instanceof Error ? error.message : String(error);
}

async function describeHttpError(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  try {
    const body = ApiError.parse(JSON.parse(text));
    return `HTTP ${response.status}: ${body.error.message} (${body.error.code})`;
  } catch {
    const snippet = text.trim().slice(0, 200);
    return `HTTP ${response.status}${snippet ? `: ${snippet}` : ""}`;
  }
}

function isEnospc(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === "ENOSPC" || (error as NodeJS.ErrnoException | null)?.code === "EDQUOT";
}

/** The server's chunk hashes of the file (verified by the caller: signed, and for this file and size). */
export interface DownloadChunks {
  chunkSize: number;
  /** sha256 of each chunk, in order. */
  sha256: readonly string[];
}

/** A chunk's bytes are not what the chunk list says: the chunk was cut away and is fetched again. */
class ChunkMismatch extends Error {
  override readonly name = "ChunkMismatch";
  constructor(
    readonly index: number,
    /** Bytes cut from the file that had been reported through onBytes already. */
    readonly reportedLost: number,
  ) {
    super(`chunk ${index} does not have the chunk list's sha256; fetching it again`);
  }
}

/**
 * The partial file, its size and a hash of exactly the bytes in it. With a chunk list,
 * each chunk is checked the moment its last byte is written (and, on a resume, as the
 * bytes already on disk are read back): a bad chunk is cut off the end of the file,
 * and the whole-file hash goes back to where that chunk starts (a copy is kept at each
 * chunk boundary), so only that chunk is fetched again.
 */
class Partial {
  offset = 0;
  hash: Hash = createHash("sha256");
  /** Bytes of the file on disk that opening it cut away (a bad chunk and what followed it). */
  cutOnOpen = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Chunk checking: where the chunk being filled starts, its hash so far, and the file hash at its start. */
  #chunkStart = 0;
  #chunkHash: Hash | null = null;
  #checkpoint: Hash | null = null;

  private constructor(
    readonly file: string,
    readonly handle: FileHandle,
    readonly expectedSize: number,
    readonly chunks: DownloadChunks | null,
    readonly logger: Logger,
  ) {
    this.#resetChunks(0);
  }

  static async open(
    file: string,
    expectedSize: number,
    signal: AbortSignal,
    chunks: DownloadChunks | null,
    logger: Logger,
  ): Promise<Partial> {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    const handle = await open(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    const partial = new Partial(file, handle, expectedSize, chunks, logger);
    try {
      const { size } = await handle.stat();
      if (size > expectedSize) {
        await handle.truncate(0);
      } else if (size > 0) {
        // Resume: hash (and with a chunk list, check) what is there already (the only time a byte is read back).
        const buffer = Buffer.allocUnsafe(Math.min(READ_BLOCK, size));
        let position = 0;
        while (position < size) {
          signal.throwIfAborted();
          const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - position), position);
          if (bytesRead === 0) break;
          position += bytesRead;
          try {
            await partial.#absorb(buffer.subarray(0, bytesRead));
          } catch (error) {
            if (!(error instanceof ChunkMismatch)) throw error;
            logger.warn("a chunk of the partial file does not match the chunk list; fetching again from it", {
              file,
              chunk: error.index,
              at: partial.offset,
              had: size,
            });
            break;
          }
        }
        if (partial.offset !== size) await handle.truncate(partial.offset);
        partial.cutOnOpen = size - partial.offset;
      }
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return partial;
  }

  async restart(): Promise<void> {
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.handle.truncate(0);
    this.offset = 0;
    this.hash = createHash("sha256");
    this.#resetChunks(0);
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Takes a chunk, written (and hashed) with its block; returns the bytes written now (0 while the block fills). */
  async push(chunk: Uint8Array): Promise<number> {
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.#pending.push(buffer);
    this.#pendingBytes += buffer.length;
    return this.#pendingBytes >= WRITE_BLOCK ? this.flush() : 0;
  }

  /** Writes what is buffered; the hash is updated with exactly what reached the file. Throws ChunkMismatch (the bad chunk cut off). */
  async flush(): Promise<number> {
    if (this.#pendingBytes === 0) return 0;
    const block = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    let written = 0;
    while (written < block.length) {
      const { bytesWritten } = await this.handle.write(block, written, block.length - written, this.offset + written);
      written += bytesWritten;
    }
    const reportedBefore = this.offset;
    try {
      await this.#absorb(block);
    } catch (error) {
      if (error instanceof ChunkMismatch) throw new ChunkMismatch(error.index, Math.max(0, reportedBefore - this.offset));
      throw error;
    }
    return block.length;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  #resetChunks(start: number): void {
    this.#chunkStart = start;
    this.#chunkHash = this.chunks ? createHash("sha256") : null;
    this.#checkpoint = this.chunks ? this.hash.copy() : null;
  }

  /**
   * Feeds bytes that are in the file at `offset` to the hashes and moves `offset` past them.
   * A chunk that completes and does not match: the file is cut at its start, the hashes go
   * back there, and ChunkMismatch is thrown.
   */
  async #absorb(bytes: Buffer): Promise<void> {
    const chunks = this.chunks;
    if (!chunks) {
      this.hash.update(bytes);
      this.offset += bytes.length;
      return;
    }
    let at = 0;
    while (at < bytes.length) {
      const end = Math.min(this.#chunkStart + chunks.chunkSize, this.expectedSize);
      const piece = bytes.subarray(at, at + Math.min(bytes.length - at, end - this.offset));
      if (piece.length === 0) break; // past the expected size: not ours to check
      this.hash.update(piece);
      this.#chunkHash!.update(piece);
      this.offset += piece.length;
      at += piece.length;
      if (this.offset < end) continue;
      const index = Math.floor(this.#chunkStart / chunks.chunkSize);
      if (this.#chunkHash!.digest("hex") !== chunks.sha256[index]) {
        const start = this.#chunkStart;
        await this.handle.truncate(start);
        this.offset = start;
        this.hash = this.#checkpoint!.copy();
        this.#resetChunks(start);
        throw new ChunkMismatch(index, 0);
      }
      this.#resetChunks(this.offset);
    }
  }
}

/** A chunk found bad this many times in one download is not the network's doing: `hash_mismatch`. */
export const MAX_CHUNK_REFETCHES = 3;

/** Downloads (or resumes) one file; resolves with the sha256 and size of the whole partial file. */
export async function downloadFile(options: DownloadOptions): Promise<DownloadResult> {
  const { signal, expectedSize, logger } = options;
  const retries = options.retries ?? Number.POSITIVE_INFINITY;
  const budgetMs = options.retryBudgetMs ?? DOWNLOAD_RETRY_BUDGET_MS;
  const clock = options.clock ?? systemClock;
  const sleep = options.sleep ?? sleepFor;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 60_000;
  let partial: Partial;
  try {
    partial = await Partial.open(options.partialPath, expectedSize, signal, options.chunks ?? null, logger);
  } catch (error) {
    if (isEnospc(error)) throw new DownloadError("disk_full", `no room to create ${options.partialPath}`);
    throw error;
  }
  if (partial.cutOnOpen > 0) options.onBytes(-partial.cutOnOpen);
  let fetched = 0;
  /** Transient failures since a byte last arrived, and when the first of them was. */
  let failures = 0;
  let failingSince: number | null = null;
  let busyWaits = 0;
  const refetches = new Map<number, number>();
  try {
    for (;;) {
      signal.throwIfAborted();
      if (partial.offset === expectedSize) {
        return { sha256: partial.hash.digest("hex"), size: partial.offset, fetchedBytes: fetched };
      }
      const tally = { bytes: 0 };
      try {
        try {
          await fetchOnce(options, partial, idleTimeoutMs, tally);
        } finally {
          fetched += tally.bytes;
        }
        // A body that ended before the file did (a proxy, a server restart): resume.
        if (partial.offset < expectedSize)
          throw new TransientError(`the server closed the response at byte ${partial.offset} of ${expectedSize}`);
        return { sha256: partial.hash.digest("hex"), size: partial.offset, fetchedBytes: fetched };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (error instanceof BusyError) {
          busyWaits += 1;
          const wait = Math.min(error.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS, maxRetryAfterMs);
          logger.info("download server busy; waiting", { url: options.url, waitMs: wait, busyWaits });
          await sleep(wait, signal);
          continue;
        }
        if (error instanceof DownloadError) throw error;
        if (error instanceof ChunkMismatch) {
          options.onBytes(-error.reportedLost);
          const times = (refetches.get(error.index) ?? 0) + 1;
          refetches.set(error.index, times);
          if (times > MAX_CHUNK_REFETCHES) {
            throw new DownloadError(
              "hash_mismatch",
              `chunk ${error.index} of ${options.url} arrived with other bytes than the chunk list says ${times} times`,
            );
          }
          logger.warn("a downloaded chunk does not match the chunk list; fetching it again", {
            url: options.url,
            chunk: error.index,
            at: partial.offset,
            times,
          });
          continue;
        }
        if (isEnospc(error)) throw new DownloadError("disk_full", `the disk filled up while downloading (${partial.offset} bytes written)`);
        if (!(error instanceof TransientError) && !(error instanceof TypeError) && !isNetworkError(error)) throw error;
        if (tally.bytes > 0) {
          // Bytes came before it broke: the server is there, the budget starts over.
          failures = 0;
          failingSince = null;
        }
        failures += 1;
        failingSince ??= clock.now();
        const failingMs = clock.now() - failingSince;
        const why = error instanceof TransientError ? error.message : describeNetworkError(error);
        if (failures > retries || failingMs >= budgetMs) {
          throw new DownloadError(
            "download_failed",
            `download of ${options.url} failed ${failures} times; last: ${why} (no data for ${Math.round(failingMs / 1000)} s of retrying)`,
          );
        }
        const delay = Math.min(backoffDelay(failures - 1, options.backoff ?? DOWNLOAD_BACKOFF), budgetMs - failingMs);
        logger.warn("download interrupted; resuming", { url: options.url, at: partial.offset, failures, retryInMs: delay, why });
        await sleep(delay, signal);
      }
    }
  } finally {
    await partial.close().catch(() => undefined);
  }
}

class BusyError extends Error {
  override readonly name = "BusyError";
  constructor(readonly retryAfterMs: number | null) {
    super("the server is busy");
  }
}

function isNetworkError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return (
    typeof code === "string" && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_\w+)$/.test(code)
  );
}

/** One request: appends what the response carries, counting the bytes fetched in `tally`. Throws for a retry or a final error. */
async function fetchOnce(options: DownloadOptions, partial: Partial, idleTimeoutMs: number, tally: { bytes: number }): Promise<void> {
  const idle = new AbortController();
  let idleTimer: NodeJS.Timeout | null = null;
  const arm = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(new TransientError(`no data for ${Math.round(idleTimeoutMs / 1000)} s`)), idleTimeoutMs);
  };
  const signal = AbortSignal.any([options.signal, idle.signal]);
  const start = partial.offset;
  const headers: Record<string, string> = { "accept-encoding": "identity" };
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  if (start > 0) headers.range = `bytes=${start}-`;
  arm();
  try {
    let response: Response;
    try {
      response = await (options.fetch ?? fetch)(options.url, { headers, signal, redirect: "error" });
    } catch (error) {
      if (idle.signal.aborted && !options.signal.aborted) throw idle.signal.reason;
      throw error;
    }
    if (response.status === 503) {
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      await response.body?.cancel().catch(() => undefined);
      throw new BusyError(retryAfter);
    }
    if (response.status === 416) {
      await response.body?.cancel().catch(() => undefined);
      options.onBytes(-partial.offset);
      await partial.restart();
      throw new TransientError(`the server refused the range from byte ${start} (416); starting this file over`);
    }
    if (response.status === 200) {
      if (start > 0) {
        options.logger.info("the server ignored the range request; starting the file over", { url: options.url, had: start });
        options.onBytes(-partial.offset);
        await partial.restart();
      }
    } else if (response.status === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get("content-range") ?? "");
      if (!range || Number(range[1]) !== start) {
        await response.body?.cancel().catch(() => undefined);
        throw new TransientError(
          `the server answered another range (${response.headers.get("content-range") ?? "none"}) than bytes=${start}-`,
        );
      }
      const total = range[3] === "*" ? null : Number(range[3]);
      if (total !== null && total !== options.expectedSize) {
        await response.body?.cancel().catch(() => undefined);
        throw new DownloadError(
          "download_failed",
          `the server has ${total} bytes for this file, the manifest says ${options.expectedSize}`,
        );
      }
    } else {
      const why = await describeHttpError(response);
      if (response.status >= 500 || response.status === 408 || response.status === 429) throw new TransientError(why);
      throw new DownloadError("download_failed", `GET ${options.url}: ${why}`);
    }
    if (!response.body) throw new TransientError("the response has no body");

    const reader = response.body.getReader();
    try {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          if (idle.signal.aborted && !options.signal.aborted) throw idle.signal.reason;
          throw error;
        }
        if (chunk.done) break;
        arm();
        // Never write past the manifest's size: a longer file is a wrong file, caught by verification.
        const room = options.expectedSize - partial.offset - partial.pendingBytes;
        const value = chunk.value.byteLength > room ? chunk.value.subarray(0, Math.max(0, room)) : chunk.value;
        if (value.byteLength > 0) {
          tally.bytes += value.byteLength;
          const written = await partial.push(value);
          if (written > 0) options.onBytes(written);
        }
        if (value.byteLength < chunk.value.byteLength) break;
      }
    } finally {
      // Whatever arrived is good data: keep it for the resume.
      const written = await partial.flush();
      if (written > 0) options.onBytes(written);
      reader.releaseLock();
      await response.body.cancel().catch(() => undefined);
    }
  } finally {
    if (idleTimer) clearTimeout(idleTimer);
  }
}
