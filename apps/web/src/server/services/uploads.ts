/**
 * Files on their way into the artifact store: resumable uploads (from the browser or the
 * CLI, in chunks) and downloads from a URL the operator gives with its sha256.
 *
 * An upload is created with its name and size; chunks arrive with the offset they start
 * at (HTTP PATCH with Upload-Offset) and are written straight to a partial file in the
 * store's incoming directory, never held whole in memory. The sha256 is computed in the
 * same pass and kept in memory between chunks; after a server restart the partial
 * file's bytes are hashed once from disk before the next chunk. A chunk cut off by a
 * dropped connection keeps the bytes that arrived, so the client asks for the offset
 * (HEAD) and continues from there. When the last byte is in, the file is fsynced and
 * renamed into the store under its sha256.
 *
 * Every Upload row says how far it got (`received`), so the dashboard can show a
 * download from a URL progressing, and an upload can resume after a restart.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { EventEmitter } from "node:events";
import { rm, stat, truncate } from "node:fs/promises";
import { z } from "zod";
import { Sha256Hex } from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type UploadDto } from "@orchard/client";
import { type BlobStore, DiskFullError, LimitExceededError, hashFilePrefix, writeFrom } from "../artifacts/store.ts";
import { RemoteFetch, UrlRefusedError } from "./remote-fetch.ts";

/** A PATCH may carry at most this much; clients send bigger files in several chunks. */
export const UPLOAD_CHUNK_MAX_BYTES = 64 * 1024 * 1024;
/** Largest file an upload may announce (as ArtifactFile.size). */
export const UPLOAD_MAX_SIZE = 2 ** 45;

const UploadName = z
  .string()
  .trim()
  .min(1, "A file name is required.")
  .max(255, "A file name may be at most 255 characters long.")
  // eslint-disable-next-line no-control-regex
  .refine((n) => !/[\u0000-\u001f\u007f]/.test(n), "A file name must not contain control characters.");

export const CreateUploadInput = z.union([
  z.object({
    name: UploadName,
    size: z.number().int().nonnegative().max(UPLOAD_MAX_SIZE, "That file is larger than 32 TiB."),
  }),
  z.object({
    name: UploadName,
    sourceUrl: z
      .string()
      .url("sourceUrl must be a URL.")
      .max(2000)
      .refine((u) => /^https?:\/\//i.test(u), "sourceUrl must be an http:// or https:// URL."),
    sha256: Sha256Hex,
  }),
]);
export type CreateUploadInput = z.infer<typeof CreateUploadInput>;

export interface UploadOptions {
  /** Uploads not touched for this long (unfinished, failed, or finished but never made into a model) are deleted. */
  expiryMs: number;
  /** Attempts of a download from a URL (each continues with a Range request where the server allows it). */
  urlAttempts: number;
  /** Waits between URL download attempts: retryDelayMs, then doubled. */
  retryDelayMs: number;
  /** How often a URL download's progress is written to its row. */
  progressWriteMs: number;
}

export const DEFAULT_UPLOAD_OPTIONS: UploadOptions = {
  expiryMs: 72 * 3600_000,
  urlAttempts: 4,
  retryDelayMs: 1000,
  progressWriteMs: 1000,
};

/** A chunk started at another offset than the upload has: the client continues from `offset`. */
export class UploadOffsetConflict extends AppError {
  constructor(readonly offset: number) {
    super("conflict", `This upload has ${offset} bytes; send the chunk that starts there (Upload-Offset: ${offset}).`);
  }
}

export interface UploadEvents {
  changed: [UploadDto];
}

/** The in-memory side of an upload that is receiving: its hash so far and who is writing. */
interface Receiving {
  id: string;
  file: string;
  size: number | null;
  received: number;
  hash: Hash;
  /** The request writing to it now, if any. */
  busy: Promise<void> | null;
}

type UploadRow = {
  id: string;
  name: string;
  size: bigint;
  received: bigint;
  state: string;
  sha256: string | null;
  sourceUrl: string | null;
  expectedSha256: string | null;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
};

export class UploadService extends EventEmitter<UploadEvents> {
  private readonly receiving = new Map<string, Receiving>();
  private readonly loading = new Map<string, Promise<Receiving>>();
  private readonly downloads = new Map<string, { done: Promise<void>; abort: AbortController }>();
  /** Sizes of URL downloads, known once the remote server answered. */
  private readonly knownSizes = new Map<string, number>();
  /** Aborted at close: downloads stop and continue after the restart. */
  private readonly abort = new AbortController();

  constructor(
    private readonly prisma: Prisma,
    readonly store: BlobStore,
    private readonly opts: UploadOptions,
    private readonly log: Logger,
    /** How files are fetched from URLs; refuses private addresses unless told otherwise (remote-fetch.ts). */
    private readonly remote: RemoteFetch = new RemoteFetch({ allowPrivate: false }),
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  /**
   * After a restart: finishes what a crash interrupted between recording an upload as
   * complete and moving its file, and continues downloads from URLs.
   */
  async recover(): Promise<void> {
    const complete = await this.prisma.upload.findMany({ where: { state: "complete" } });
    for (const row of complete) {
      if (!row.sha256 || (await this.store.size(row.sha256)) !== null) continue;
      const partial = this.partialPath(row.id);
      if (await exists(partial)) await this.store.adopt(partial, row.sha256);
      else await this.fail(row.id, "The server stopped before this file was stored; upload it again.");
    }
    const urls = await this.prisma.upload.findMany({ where: { state: "receiving", sourceUrl: { not: null } } });
    for (const row of urls) this.startDownload(row.id);
  }

  async create(input: CreateUploadInput, createdById: string | null): Promise<UploadDto> {
    const id = `up_${randomBytes(12).toString("base64url")}`;
    if ("sourceUrl" in input) {
      await this.remote.check(input.sourceUrl); // 400 for a private address or another scheme, before anything is stored
      const row = await this.prisma.upload.create({
        data: {
          id,
          name: input.name,
          size: 0n,
          state: "receiving",
          sourceUrl: input.sourceUrl,
          expectedSha256: input.sha256,
          createdById,
        },
      });
      this.startDownload(id);
      return this.toDto(row);
    }
    const row = await this.prisma.upload.create({
      data: { id, name: input.name, size: BigInt(input.size), state: "receiving", createdById },
    });
    if (input.size === 0) {
      // Nothing to wait for: the empty file is complete now.
      const st = await this.active(id);
      return this.finish(st);
    }
    return this.toDto(row);
  }

  async get(id: string): Promise<UploadDto> {
    return this.toDto(await this.row(id));
  }

  /** Newest first. */
  async list(limit = 50): Promise<UploadDto[]> {
    const rows = await this.prisma.upload.findMany({ orderBy: { createdAt: "desc" }, take: limit });
    return rows.map((r) => this.toDto(r));
  }

  /** How many bytes the upload has (what HEAD answers). */
  async offset(id: string): Promise<{ offset: number; size: number | null; state: string }> {
    const st = this.receiving.get(id);
    if (st) return { offset: st.received, size: st.size, state: "receiving" };
    const dto = await this.get(id);
    return { offset: dto.received, size: dto.size, state: dto.state };
  }

  /**
   * Writes one chunk that starts at `offset`. `contentLength` (when the request said it)
   * is checked before a byte is read: over UPLOAD_CHUNK_MAX_BYTES or past the end of the
   * file is refused. Bytes that arrived before the body broke off are kept.
   */
  async patch(id: string, offset: number, body: AsyncIterable<Uint8Array>, contentLength: number | null): Promise<UploadDto> {
    const st = await this.active(id, true);
    if (st.size === null) throw new AppError("conflict", "This file is being downloaded from its URL; it takes no uploaded chunks.");
    if (contentLength !== null && contentLength > UPLOAD_CHUNK_MAX_BYTES) throw new ChunkTooLargeError();
    if (contentLength !== null && offset + contentLength > st.size) throw pastEnd(offset, contentLength, st.size);
    // A chunk whose connection dropped may still be finishing: wait a little for it before comparing offsets.
    if (st.busy) await waitAtMost(st.busy, 10_000);
    if (st.busy) throw new AppError("conflict", "Another request is writing to this upload right now.");
    if (offset !== st.received) throw new UploadOffsetConflict(st.received);

    let release!: () => void;
    st.busy = new Promise<void>((r) => (release = r));
    try {
      const size = st.size;
      const limit = Math.min(UPLOAD_CHUNK_MAX_BYTES, size - offset);
      const before = st.hash.copy();
      const handle = await this.store.openForWrite(st.file);
      let written = 0;
      try {
        const result = await writeFrom(handle, offset, body, st.hash, { limit, what: "the upload" });
        written = result.written;
        if (result.sourceError) this.log.debug("an upload chunk broke off; the bytes that arrived are kept", { id, written });
        await handle.sync();
      } catch (err) {
        await handle.close().catch(() => undefined);
        if (err instanceof LimitExceededError) {
          // Nothing of a refused chunk is kept: back to where it started.
          st.hash = before;
          await truncate(st.file, offset);
          throw limit === size - offset ? pastEnd(offset, null, size) : new ChunkTooLargeError();
        }
        if (err instanceof DiskFullError) {
          await this.fail(id, err.message);
          throw err;
        }
        throw err;
      }
      await handle.close();
      st.received = offset + written;
      if (st.received === size) return await this.finish(st);
      const row = await this.prisma.upload.update({ where: { id }, data: { received: BigInt(st.received) } });
      const dto = this.toDto(row);
      this.emit("changed", dto);
      return dto;
    } finally {
      st.busy = null;
      release();
    }
  }

  /** Cancels an upload: its row and partial file go (a complete upload's blob stays until nothing uses it). */
  async remove(id: string): Promise<void> {
    const download = this.downloads.get(id);
    if (download) {
      download.abort.abort();
      await download.done;
    }
    const st = this.receiving.get(id);
    if (st?.busy) throw new AppError("conflict", "A chunk is being written to this upload right now; try again when it finished.");
    const { count } = await this.prisma.upload.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", `No upload ${id}.`);
    this.receiving.delete(id);
    await rm(this.partialPath(id), { force: true });
  }

  /** Deletes uploads nobody touched for expiryMs; returns how many. */
  async expire(): Promise<number> {
    const rows = await this.prisma.upload.findMany({
      where: { updatedAt: { lt: new Date(this.now() - this.opts.expiryMs) } },
      select: { id: true },
    });
    let n = 0;
    for (const { id } of rows) {
      if (this.receiving.get(id)?.busy || this.downloads.has(id)) continue;
      await this.remove(id).then(
        () => n++,
        () => undefined,
      );
    }
    return n;
  }

  /** Waits for running URL downloads (tests). */
  async idle(): Promise<void> {
    while (this.downloads.size > 0) await Promise.allSettled([...this.downloads.values()].map((d) => d.done));
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.downloads.values()].map((d) => d.done));
  }

  // ------------------------------------------------------------ internals

  private partialPath(id: string): string {
    return this.store.incomingPath(`upload-${id}`);
  }

  private async row(id: string): Promise<UploadRow> {
    const row = await this.prisma.upload.findUnique({ where: { id } });
    if (!row) throw new AppError("not_found", `No upload ${id}; it may have expired. Start the upload again.`);
    return row;
  }

  /**
   * The receiving state of an upload, loaded on first use: the partial file is cut back
   * to what the row recorded (bytes after it were never acknowledged) and hashed once.
   */
  private async active(id: string, forPatch = false): Promise<Receiving> {
    const known = this.receiving.get(id);
    if (known) return known;
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.load(id, forPatch).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  private async load(id: string, forPatch: boolean): Promise<Receiving> {
    const row = await this.row(id);
    if (row.state === "complete") {
      if (forPatch) throw new UploadOffsetConflict(Number(row.size));
      throw new AppError("conflict", "This upload is already complete.");
    }
    if (row.state === "failed") throw new AppError("gone", `This upload failed: ${row.error ?? "unknown error"}. Start it again.`);
    const file = this.partialPath(id);
    const onDisk = await stat(file).then(
      (s) => s.size,
      () => 0,
    );
    let received = Math.min(Number(row.received), onDisk);
    if (row.sourceUrl) received = onDisk; // a download's row lags behind its file by design
    const handle = await this.store.openForWrite(file);
    await handle.truncate(received);
    await handle.close();
    const hash = await hashFilePrefix(file, received);
    if (received !== Number(row.received)) await this.prisma.upload.update({ where: { id }, data: { received: BigInt(received) } });
    const st: Receiving = { id, file, size: row.sourceUrl ? null : Number(row.size), received, hash, busy: null };
    this.receiving.set(id, st);
    return st;
  }

  /** All bytes are in: into the store under the sha256, and the row says complete. */
  private async finish(st: Receiving, expectedSha256?: string | null): Promise<UploadDto> {
    const sha256 = st.hash.digest("hex");
    this.receiving.delete(st.id);
    this.knownSizes.delete(st.id);
    if (expectedSha256 && sha256 !== expectedSha256) {
      // Neither the hash nor the size of what came is told: the URL's content is not the caller's to read.
      this.log.warn("download from a URL does not match its sha256", { id: st.id, sha256, expected: expectedSha256, bytes: st.received });
      await this.fail(
        st.id,
        "The download failed: the file does not match the sha256 you gave; it was not stored. Check the URL and the sha256.",
      );
      return this.get(st.id);
    }
    const row = await this.store.exclusive(async () => {
      const updated = await this.prisma.$transaction(async (tx) => {
        await tx.artifactBlob.upsert({
          where: { sha256 },
          create: { sha256, size: BigInt(st.received) },
          update: {},
        });
        return tx.upload.update({
          where: { id: st.id },
          data: { state: "complete", sha256, received: BigInt(st.received), size: BigInt(st.received) },
        });
      });
      const partial = st.file;
      if (!(await exists(partial))) {
        // Only an empty file has no partial yet.
        const handle = await this.store.openForWrite(partial);
        await handle.close();
      }
      await this.store.adopt(partial, sha256);
      return updated;
    });
    this.log.info("upload complete", { id: st.id, sha256, bytes: st.received });
    const dto = this.toDto(row);
    this.emit("changed", dto);
    return dto;
  }

  private async fail(id: string, message: string): Promise<void> {
    this.receiving.delete(id);
    this.knownSizes.delete(id);
    await rm(this.partialPath(id), { force: true });
    const row = await this.prisma.upload.update({ where: { id }, data: { state: "failed", error: message } }).catch(() => null);
    if (row) {
      this.log.warn("upload failed", { id, error: message });
      this.emit("changed", this.toDto(row));
    }
  }

  private startDownload(id: string): void {
    if (this.downloads.has(id)) return;
    const abort = new AbortController();
    const onClose = () => abort.abort();
    this.abort.signal.addEventListener("abort", onClose, { once: true });
    const done = this.download(id, abort.signal)
      .catch(async (err: Error) => {
        // Shutting down (continued after the restart) or cancelled (the row is being deleted).
        if (abort.signal.aborted) return;
        // Short reasons only ("HTTP 404", "could not connect"): nothing of what the remote server sent.
        await this.fail(id, err instanceof DiskFullError ? err.message : `The download failed: ${err.message.replace(/\.$/, "")}.`);
      })
      .finally(() => {
        this.abort.signal.removeEventListener("abort", onClose);
        this.downloads.delete(id);
      });
    this.downloads.set(id, { done, abort });
  }

  /** Downloads a URL into the upload's partial file (hashing in the same pass), continuing with Range after a break. */
  private async download(id: string, signal: AbortSignal): Promise<void> {
    const row = await this.row(id);
    const url = row.sourceUrl!;
    const expected = row.expectedSha256!;
    // The store may have these bytes already (another model has the same file): nothing to fetch.
    const storedSize = await this.store.size(expected);
    if (storedSize !== null) {
      const updated = await this.store.exclusive(() =>
        this.prisma.$transaction(async (tx) => {
          await tx.artifactBlob.upsert({ where: { sha256: expected }, create: { sha256: expected, size: BigInt(storedSize) }, update: {} });
          return tx.upload.update({
            where: { id },
            data: { state: "complete", sha256: expected, received: BigInt(storedSize), size: BigInt(storedSize) },
          });
        }),
      );
      this.receiving.delete(id);
      await rm(this.partialPath(id), { force: true });
      this.log.info("download from a URL skipped: the store has these bytes already", { id, sha256: expected });
      this.emit("changed", this.toDto(updated));
      return;
    }
    let lastError: Error | null = null;
    for (let attempt = 1; attempt <= this.opts.urlAttempts; attempt++) {
      if (attempt > 1) await sleep(this.opts.retryDelayMs * 2 ** (attempt - 2), signal);
      const st = await this.active(id);
      const result = await this.downloadAttempt(st, url, signal);
      if (result === "done") {
        await this.finish(st, expected);
        return;
      }
      lastError = result;
      if (result instanceof PermanentError) break;
      this.log.warn("download from a URL broke off; continuing", { id, attempt, received: st.received, error: result.message });
    }
    throw lastError ?? new Error("no attempt was made");
  }

  private async downloadAttempt(st: Receiving, url: string, signal: AbortSignal): Promise<"done" | Error> {
    const headers: Record<string, string> = st.received > 0 ? { range: `bytes=${st.received}-` } : {};
    let res: Response;
    try {
      res = await this.remote.fetch(url, { headers, signal });
    } catch (err) {
      if (signal.aborted) throw err;
      if (err instanceof UrlRefusedError) return new PermanentError(err.message.charAt(0).toLowerCase() + err.message.slice(1));
      const code = (err as NodeJS.ErrnoException).code;
      this.log.debug("download from a URL could not connect", { id: st.id, error: (err as Error).message });
      return new Error(`could not connect${code && /^E[A-Z_]+$/.test(code) ? ` (${code})` : ""}`);
    }
    if (st.received > 0 && res.status === 200) {
      // The server does not do ranges: start over.
      st.received = 0;
      st.hash = createHash("sha256");
      await truncate(st.file, 0);
    } else if (res.status === 206) {
      const start = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1];
      if (Number(start) !== st.received) {
        await res.body?.cancel();
        return new PermanentError("the remote server answered a range request with other bytes");
      }
    } else if (!res.ok) {
      await res.body?.cancel();
      const permanent = res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429;
      const err = `HTTP ${res.status}`;
      return permanent ? new PermanentError(err) : new Error(err);
    }
    const length = res.headers.get("content-length");
    const total = length !== null && /^\d+$/.test(length) ? st.received + Number(length) : null;
    if (total !== null && total > UPLOAD_MAX_SIZE) {
      await res.body?.cancel();
      return new PermanentError("the file is larger than 32 TiB");
    }
    if (total !== null && !this.knownSizes.has(st.id)) {
      this.knownSizes.set(st.id, total);
      await this.prisma.upload.update({ where: { id: st.id }, data: { size: BigInt(total) } });
    }
    if (!res.body) return total === null || total === st.received ? "done" : new Error("the remote server sent no body");

    let lastWrite = this.now();
    let writing: Promise<unknown> = Promise.resolve();
    const start = st.received;
    const handle = await this.store.openForWrite(st.file);
    let result;
    try {
      result = await writeFrom(handle, start, res.body as unknown as AsyncIterable<Uint8Array>, st.hash, {
        limit: UPLOAD_MAX_SIZE,
        what: "the downloaded file",
        onBytes: (written) => {
          st.received = start + written;
          const t = this.now();
          if (t - lastWrite < this.opts.progressWriteMs) return;
          lastWrite = t;
          const received = BigInt(st.received);
          writing = writing.then(() =>
            this.prisma.upload
              .update({ where: { id: st.id }, data: { received } })
              .then((row) => this.emit("changed", this.toDto(row)))
              .catch(() => undefined),
          );
        },
      });
      await handle.sync();
    } finally {
      await handle.close().catch(() => undefined);
    }
    await writing;
    st.received = start + result.written;
    await this.prisma.upload.update({ where: { id: st.id }, data: { received: BigInt(st.received) } });
    if (result.sourceError) {
      if (signal.aborted) throw result.sourceError as Error;
      return new Error("the connection broke off");
    }
    if (total !== null && st.received !== total) return new Error("the remote server sent less than it announced");
    return "done";
  }

  private toDto(row: UploadRow): UploadDto {
    const st = this.receiving.get(row.id);
    const sizeUnknown = row.sourceUrl !== null && row.state === "receiving" && !this.knownSizes.has(row.id) && row.size === 0n;
    return {
      id: row.id,
      name: row.name,
      size: sizeUnknown ? null : (this.knownSizes.get(row.id) ?? Number(row.size)),
      received: st && row.state === "receiving" ? Math.max(st.received, Number(row.received)) : Number(row.received),
      state: row.state as UploadDto["state"],
      sha256: row.sha256,
      sourceUrl: row.sourceUrl,
      expectedSha256: row.expectedSha256,
      error: row.error,
      createdAt: row.createdAt.getTime(),
      updatedAt: row.updatedAt.getTime(),
    };
  }
}

class PermanentError extends Error {}

/** A chunk over UPLOAD_CHUNK_MAX_BYTES (HTTP 413). */
export class ChunkTooLargeError extends AppError {
  constructor() {
    super("bad_request", `A chunk may carry at most ${UPLOAD_CHUNK_MAX_BYTES} bytes (64 MiB); send the file in smaller chunks.`);
  }
}

function pastEnd(offset: number, length: number | null, size: number): AppError {
  return new AppError(
    "bad_request",
    length === null
      ? `The chunk goes past the end of the file: the upload was created with ${size} bytes.`
      : `A chunk of ${length} bytes at offset ${offset} goes past the end of the file: the upload was created with ${size} bytes.`,
  );
}

/** Resolves when `p` settles or after `ms`, whichever comes first. */
async function waitAtMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
