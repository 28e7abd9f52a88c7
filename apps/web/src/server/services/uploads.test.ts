/**
 * Resumable uploads and downloads from a URL against a real database (PGlite, and
 * PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set), a real store directory and a local
 * HTTP server on 127.0.0.1: chunks at the right offset only, a chunk cut off keeps what
 * arrived, a restart continues with the hash rebuilt from disk, a full disk fails the
 * upload and keeps nothing, a URL download checks its pinned sha256 and resumes with Range.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import { fullDiskAfter } from "../../../test/full-disk.ts";
import { BlobStore, DiskFullError } from "../artifacts/store.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { RemoteFetch } from "./remote-fetch.ts";
import { ChunkTooLargeError, DEFAULT_UPLOAD_OPTIONS, UPLOAD_CHUNK_MAX_BYTES, UploadOffsetConflict, UploadService } from "./uploads.ts";

const log = createLogger("error");
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const OPTIONS = { ...DEFAULT_UPLOAD_OPTIONS, retryDelayMs: 10, progressWriteMs: 0 };
/** The file server below is on 127.0.0.1, which ORCHARD_ALLOW_PRIVATE_MODEL_URLS=1 allows. */
const LOCAL = new RemoteFetch({ allowPrivate: true });

async function* body(data: Uint8Array, opts: { chunk?: number; failAfter?: number } = {}): AsyncGenerator<Uint8Array> {
  const size = opts.chunk ?? 64 * 1024;
  for (let off = 0; off < data.length; off += size) {
    if (opts.failAfter !== undefined && off >= opts.failAfter) throw Object.assign(new Error("aborted"), { code: "ECONNRESET" });
    yield data.subarray(off, Math.min(off + size, data.length));
  }
}

/** A file server with Range support; `cutAfter` drops the connection after that many bytes of a response, once. */
interface FileServer {
  url: string;
  files: Map<string, Buffer>;
  requests: { path: string; range: string | undefined }[];
  /** Paths answered with a 302 to another URL. */
  redirects: Map<string, string>;
  bytesSent: number;
  cutAfter: number | null;
  close(): Promise<void>;
}

async function startFileServer(): Promise<FileServer> {
  const fs: FileServer = {
    url: "",
    files: new Map(),
    requests: [],
    redirects: new Map(),
    bytesSent: 0,
    cutAfter: null,
    close: () => new Promise((r) => server.close(() => r())),
  };
  const server = http.createServer((req, res) => {
    fs.requests.push({ path: req.url!, range: req.headers.range });
    const location = fs.redirects.get(req.url!);
    if (location) {
      res.writeHead(302, { location }).end();
      return;
    }
    const data = fs.files.get(req.url!);
    if (!data) {
      res.writeHead(404).end("no such file");
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const slice = data.subarray(start);
    res.writeHead(m ? 206 : 200, {
      "content-length": String(slice.length),
      ...(m ? { "content-range": `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    });
    if (fs.cutAfter !== null) {
      const part = slice.subarray(0, fs.cutAfter);
      fs.cutAfter = null;
      fs.bytesSent += part.length;
      // A FIN after the part (not a reset, which may discard what the client has not read yet).
      res.write(part, () => res.socket?.end());
      return;
    }
    fs.bytesSent += slice.length;
    res.end(slice);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  fs.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fs;
}

describe.each(DB_KINDS)("uploads on %s", (kind) => {
  let db: Database;
  let dir: string;
  let store: BlobStore;
  let uploads: UploadService;
  let files: FileServer;
  let now: number;

  // One database for the file (opening one costs seconds); each test starts with empty tables.
  beforeAll(async () => {
    files = await startFileServer();
    db = await openTestDatabase(kind);
  });
  afterAll(async () => {
    await files.close();
    await db.close();
  });
  beforeEach(async () => {
    await db.prisma.upload.deleteMany();
    await db.prisma.artifactBlob.deleteMany();
    dir = await mkdtemp(path.join(os.tmpdir(), "orchard-uploads-"));
    store = new BlobStore(path.join(dir, "artifacts"));
    await store.init();
    now = Date.now();
    uploads = new UploadService(db.prisma, store, OPTIONS, log, LOCAL, () => now);
    files.requests = [];
    files.redirects.clear();
    files.bytesSent = 0;
    files.cutAfter = null;
  });
  afterEach(async () => {
    await uploads.close();
    await rm(dir, { recursive: true, force: true });
  });

  const incoming = () => readdir(store.incomingDir);

  it("takes chunks in order, hashes them and stores the file under its sha256 when the last byte is in", async () => {
    const data = randomBytes(2_500_000);
    const created = await uploads.create({ name: "model.pte", size: data.length }, null);
    expect(created).toMatchObject({ name: "model.pte", size: data.length, received: 0, state: "receiving", sha256: null });
    const chunk = 1_000_000;
    for (let off = 0; off < data.length; off += chunk) {
      const part = data.subarray(off, off + chunk);
      const dto = await uploads.patch(created.id, off, body(part), part.length);
      expect(dto.received).toBe(off + part.length);
    }
    const done = await uploads.get(created.id);
    expect(done).toMatchObject({ state: "complete", received: data.length, size: data.length, sha256: sha(data) });
    expect(sha(await readFile(store.blobPath(sha(data))))).toBe(sha(data));
    expect(await db.prisma.artifactBlob.findUnique({ where: { sha256: sha(data) } })).toMatchObject({ size: BigInt(data.length) });
    expect(await incoming()).toEqual([]);
  });

  it("answers a chunk at the wrong offset with the offset it has", async () => {
    const data = randomBytes(300_000);
    const { id } = await uploads.create({ name: "x.bin", size: data.length }, null);
    await uploads.patch(id, 0, body(data.subarray(0, 100_000)), 100_000);
    const err = await uploads.patch(id, 0, body(data.subarray(0, 100_000)), 100_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadOffsetConflict);
    expect((err as UploadOffsetConflict).offset).toBe(100_000);
    expect((err as Error).message).toBe("This upload has 100000 bytes; send the chunk that starts there (Upload-Offset: 100000).");
    await expect(uploads.patch(id, 200_000, body(data.subarray(200_000)), 100_000)).rejects.toBeInstanceOf(UploadOffsetConflict);
    expect((await uploads.offset(id)).offset).toBe(100_000);
  });

  it("keeps the bytes of a chunk that broke off, and the upload continues from there", async () => {
    const data = randomBytes(1_000_000);
    const { id } = await uploads.create({ name: "x.bin", size: data.length }, null);
    const dto = await uploads.patch(id, 0, body(data, { chunk: 100_000, failAfter: 400_000 }), data.length);
    expect(dto.received).toBe(400_000);
    const { offset } = await uploads.offset(id);
    expect(offset).toBe(400_000);
    await uploads.patch(id, offset, body(data.subarray(offset)), data.length - offset);
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data) });
  });

  it("refuses chunks over 64 MiB and chunks past the end, keeping nothing of them", async () => {
    const data = randomBytes(200_000);
    const { id } = await uploads.create({ name: "x.bin", size: data.length }, null);
    await expect(uploads.patch(id, 0, body(data), UPLOAD_CHUNK_MAX_BYTES + 1)).rejects.toBeInstanceOf(ChunkTooLargeError);
    await expect(uploads.patch(id, 0, body(data), data.length + 1)).rejects.toThrow(
      "A chunk of 200001 bytes at offset 0 goes past the end of the file: the upload was created with 200000 bytes.",
    );
    await uploads.patch(id, 0, body(data.subarray(0, 50_000)), null);
    // No Content-Length (chunked): the limit is checked while reading.
    const tooMuch = Buffer.concat([data.subarray(50_000), randomBytes(10)]);
    await expect(uploads.patch(id, 50_000, body(tooMuch), null)).rejects.toThrow("goes past the end of the file");
    expect((await uploads.offset(id)).offset).toBe(50_000);
    await uploads.patch(id, 50_000, body(data.subarray(50_000)), null);
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data) });
  });

  it("continues after a restart, hashing the partial file once and dropping bytes that were never acknowledged", async () => {
    const data = randomBytes(900_000);
    const { id } = await uploads.create({ name: "x.bin", size: data.length }, null);
    await uploads.patch(id, 0, body(data.subarray(0, 300_000)), 300_000);
    await uploads.close();
    // A server killed mid-chunk: more bytes on disk than the row acknowledged, some of them wrong.
    const partial = path.join(store.incomingDir, `upload-${id}`);
    await writeFile(partial, Buffer.concat([data.subarray(0, 300_000), randomBytes(50_000)]));

    uploads = new UploadService(db.prisma, store, OPTIONS, log, LOCAL, () => now);
    await uploads.recover();
    expect((await uploads.offset(id)).offset).toBe(300_000);
    await uploads.patch(id, 300_000, body(data.subarray(300_000)), 600_000);
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data) });
    expect(sha(await readFile(store.blobPath(sha(data))))).toBe(sha(data));
  });

  it("fails the upload on a full disk with a clear error and keeps nothing of it", async () => {
    const full = new BlobStore(store.root, fullDiskAfter(250_000));
    uploads = new UploadService(db.prisma, full, OPTIONS, log, LOCAL, () => now);
    const data = randomBytes(600_000);
    const { id } = await uploads.create({ name: "model.pte", size: data.length }, null);
    await uploads.patch(id, 0, body(data.subarray(0, 200_000)), 200_000);
    const err = await uploads.patch(id, 200_000, body(data.subarray(200_000)), 400_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    const row = await uploads.get(id);
    expect(row.state).toBe("failed");
    expect(row.error).toMatch(/^The server's disk is full: the upload could not be stored, and nothing of it was kept\./);
    expect(await incoming()).toEqual([]);
    expect(await store.list()).toEqual([]);
    await expect(uploads.patch(id, 200_000, body(data), 10)).rejects.toThrow(/This upload failed: The server's disk is full/);
  });

  it("answers chunks for a finished upload with its size, and an empty file is complete at once", async () => {
    const data = randomBytes(1000);
    const { id } = await uploads.create({ name: "x.bin", size: data.length }, null);
    await uploads.patch(id, 0, body(data), 1000);
    const again = await uploads.patch(id, 0, body(data), 1000).catch((e: unknown) => e);
    expect((again as UploadOffsetConflict).offset).toBe(1000);

    const empty = await uploads.create({ name: "empty.txt", size: 0 }, null);
    expect(empty).toMatchObject({ state: "complete", sha256: sha(new Uint8Array()), size: 0 });
    expect(await store.size(sha(new Uint8Array()))).toBe(0);
  });

  it("downloads a URL with its pinned sha256", async () => {
    const data = randomBytes(700_000);
    files.files.set("/model.pte", data);
    const created = await uploads.create({ name: "model.pte", sourceUrl: `${files.url}/model.pte`, sha256: sha(data) }, null);
    expect(created).toMatchObject({ state: "receiving", sourceUrl: `${files.url}/model.pte`, expectedSha256: sha(data) });
    await uploads.idle();
    expect(await uploads.get(created.id)).toMatchObject({ state: "complete", sha256: sha(data), size: data.length, received: data.length });
    expect(sha(await readFile(store.blobPath(sha(data))))).toBe(sha(data));
    expect(await incoming()).toEqual([]);
  });

  it("fails a URL download whose bytes have another sha256, and keeps none of them", async () => {
    const data = randomBytes(100_000);
    files.files.set("/wrong.pte", data);
    const pinned = "f".repeat(64);
    const { id } = await uploads.create({ name: "wrong.pte", sourceUrl: `${files.url}/wrong.pte`, sha256: pinned }, null);
    await uploads.idle();
    const row = await uploads.get(id);
    expect(row.state).toBe("failed");
    expect(row.error).toBe(
      "The download failed: the file does not match the sha256 you gave; it was not stored. Check the URL and the sha256.",
    );
    // Nothing about what the URL holds: not its hash, not its size.
    expect(row.error).not.toContain(sha(data));
    expect(row.error).not.toContain(String(data.length));
    expect(await store.list()).toEqual([]);
    expect(await incoming()).toEqual([]);
  });

  it("continues a URL download that broke off with a Range request, fetching only the missing bytes", async () => {
    const data = randomBytes(2_000_000);
    files.files.set("/big.pte", data);
    files.cutAfter = 500_000;
    const { id } = await uploads.create({ name: "big.pte", sourceUrl: `${files.url}/big.pte`, sha256: sha(data) }, null);
    await uploads.idle();
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data) });
    expect(files.requests).toHaveLength(2);
    // The resume starts where the partial file ends: the 500,000 bytes sent, less what the
    // HTTP client still held unread when the connection ended (it discards that on the error).
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(files.requests[1]!.range ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(500_000);
    // The second request fetched exactly the rest.
    expect(files.bytesSent).toBe(500_000 + data.length - resumedAt);
  });

  it("says only the HTTP status when a URL cannot be downloaded, nothing of what the remote server sent", async () => {
    const { id } = await uploads.create({ name: "gone.pte", sourceUrl: `${files.url}/gone.pte`, sha256: "e".repeat(64) }, null);
    await uploads.idle();
    expect(await uploads.get(id)).toMatchObject({ state: "failed", error: "The download failed: HTTP 404." });
    expect(files.requests).toHaveLength(1); // a 404 is not retried
  });

  it("follows a redirect to the file", async () => {
    const data = randomBytes(5000);
    files.files.set("/real.pte", data);
    files.redirects.set("/moved.pte", `${files.url}/real.pte`);
    const { id } = await uploads.create({ name: "moved.pte", sourceUrl: `${files.url}/moved.pte`, sha256: sha(data) }, null);
    await uploads.idle();
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data) });
    expect(files.requests.map((r) => r.path)).toEqual(["/moved.pte", "/real.pte"]);
  });

  it("refuses a URL on a loopback address without ORCHARD_ALLOW_PRIVATE_MODEL_URLS, before storing or fetching anything", async () => {
    const strict = new UploadService(db.prisma, store, OPTIONS, log, new RemoteFetch({ allowPrivate: false }), () => now);
    files.files.set("/model.pte", randomBytes(10));
    const refused = await strict
      .create({ name: "model.pte", sourceUrl: `${files.url}/model.pte`, sha256: "e".repeat(64) }, null)
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).code).toBe("bad_request");
    expect((refused as AppError).message).toMatch(/^sourceUrl names a loopback, private or link-local address/);
    expect(await strict.list()).toEqual([]);
    expect(files.requests).toEqual([]);
  });

  it("skips the download when the store has those bytes already", async () => {
    const data = randomBytes(10_000);
    await store.put(body(data));
    const { id } = await uploads.create({ name: "dup.pte", sourceUrl: `${files.url}/never-asked`, sha256: sha(data) }, null);
    await uploads.idle();
    expect(await uploads.get(id)).toMatchObject({ state: "complete", sha256: sha(data), size: data.length });
    expect(files.requests).toHaveLength(0);
  });

  it("deletes uploads nobody touched for the expiry time, with their partial files", async () => {
    const { id: old } = await uploads.create({ name: "old.bin", size: 100 }, null);
    await uploads.patch(old, 0, body(randomBytes(50)), 50);
    const { id: fresh } = await uploads.create({ name: "fresh.bin", size: 100 }, null);
    await db.prisma.upload.update({ where: { id: old }, data: { updatedAt: new Date(now - OPTIONS.expiryMs - 1000) } });
    expect(await uploads.expire()).toBe(1);
    await expect(uploads.get(old)).rejects.toThrow(AppError);
    expect((await uploads.get(fresh)).state).toBe("receiving");
    expect(await incoming()).not.toContain(`upload-${old}`);
  });

  it("validates what it is asked to upload", async () => {
    const { CreateUploadInput } = await import("./uploads.ts");
    expect(CreateUploadInput.safeParse({ name: "a", size: -1 }).success).toBe(false);
    expect(CreateUploadInput.safeParse({ name: "", size: 1 }).success).toBe(false);
    expect(CreateUploadInput.safeParse({ name: "a", sourceUrl: "file:///etc/passwd", sha256: "a".repeat(64) }).success).toBe(false);
    expect(CreateUploadInput.safeParse({ name: "a", sourceUrl: "http://h/x", sha256: "ABC" }).success).toBe(false);
    expect(CreateUploadInput.safeParse({ name: "model.pte", size: 5_140_000_000 }).success).toBe(true);
  });
});
