/**
 * The content-addressed store on a real directory: files land under their sha256 only
 * when complete, a full disk (ENOSPC, injected into the file handle) or a broken source
 * leaves nothing behind, ranges read the right bytes.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fullDiskAfter } from "../../../test/full-disk.ts";
import { BlobStore, DiskFullError, LimitExceededError, hashFilePrefix, writeFrom } from "./store.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function* chunks(data: Buffer, size = 64 * 1024, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) {
    if (failAfter !== undefined && off >= failAfter) throw Object.assign(new Error("aborted"), { code: "ECONNRESET" });
    yield data.subarray(off, Math.min(off + size, data.length));
  }
}

describe("blob store", () => {
  let root: string;
  let store: BlobStore;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "orchard-store-"));
    store = new BlobStore(path.join(root, "artifacts"));
    await store.init();
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const incoming = () => readdir(store.incomingDir);

  it("stores a stream under its sha256 in a two-hex-digit folder, with nothing left in incoming", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { sha256, size } = await store.put(chunks(data));
    expect(sha256).toBe(sha(data));
    expect(size).toBe(data.length);
    expect(store.blobPath(sha256)).toBe(path.join(root, "artifacts", "blobs", sha256.slice(0, 2), sha256));
    expect(sha(await readFile(store.blobPath(sha256)))).toBe(sha(data));
    expect(await store.size(sha256)).toBe(data.length);
    expect(await store.list()).toEqual([sha256]);
    expect(await incoming()).toEqual([]);
  });

  it("refuses bytes that do not have the expected sha256 and keeps none of them", async () => {
    const data = randomBytes(100_000);
    await expect(store.put(chunks(data), { what: "model.pte", expectedSha256: "0".repeat(64) })).rejects.toThrow(
      `model.pte has sha256 ${sha(data)}, not the expected ${"0".repeat(64)}`,
    );
    expect(await store.list()).toEqual([]);
    expect(await incoming()).toEqual([]);
  });

  it("fails with a clear error on a full disk and leaves nothing half-stored", async () => {
    const full = new BlobStore(path.join(root, "artifacts"), fullDiskAfter(1_000_000));
    const data = randomBytes(3_000_000);
    const err = await full.put(chunks(data), { what: "model.pte" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DiskFullError);
    expect((err as Error).message).toBe(
      "The server's disk is full: model.pte could not be stored, and nothing of it was kept. Free space under the data directory and try again.",
    );
    expect(await full.list()).toEqual([]);
    expect(await incoming()).toEqual([]);
  });

  it("keeps nothing of a source that broke off", async () => {
    const data = randomBytes(1_000_000);
    await expect(store.put(chunks(data, 64 * 1024, 500_000))).rejects.toThrow("aborted");
    expect(await store.list()).toEqual([]);
    expect(await incoming()).toEqual([]);
  });

  it("adopts a finished file by renaming it, or drops it when the store has those bytes already", async () => {
    const data = randomBytes(10_000);
    const a = store.incomingPath("upload-a");
    await writeFile(a, data);
    await store.adopt(a, sha(data));
    expect(await readFile(store.blobPath(sha(data)))).toEqual(data);
    const inode = (await stat(store.blobPath(sha(data)))).ino;

    const b = store.incomingPath("upload-b");
    await writeFile(b, data);
    await store.adopt(b, sha(data));
    expect(await incoming()).toEqual([]);
    expect((await stat(store.blobPath(sha(data)))).ino).toBe(inode);
  });

  it("reads byte ranges", async () => {
    const data = randomBytes(5000);
    const { sha256 } = await store.put(chunks(data, 1000));
    const read = async (range?: { start: number; end: number }) => {
      const parts: Buffer[] = [];
      for await (const c of store.read(sha256, range)) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    expect(await read()).toEqual(data);
    expect(await read({ start: 4000, end: 4999 })).toEqual(data.subarray(4000));
    expect(await read({ start: 10, end: 19 })).toEqual(data.subarray(10, 20));
  });

  it("only takes sha256 names and plain incoming names (nothing can leave its folder)", () => {
    expect(() => store.blobPath("../../etc/passwd")).toThrow();
    expect(() => store.blobPath("A".repeat(64))).toThrow();
    expect(() => store.incomingPath("../x")).toThrow("not a plain file name");
    expect(() => store.incomingPath("a/b")).toThrow("not a plain file name");
    expect(() => store.incomingPath(".tmp-x")).toThrow("not a plain file name");
  });

  it("removes blobs, and temp files a crash left in incoming at start", async () => {
    const { sha256 } = await store.put(chunks(randomBytes(1000)));
    await writeFile(path.join(store.incomingDir, ".tmp-deadbeef"), "half");
    await writeFile(store.incomingPath("upload-keep"), "an upload in progress");
    await store.init();
    expect(await incoming()).toEqual(["upload-keep"]);
    await store.remove(sha256);
    expect(await store.size(sha256)).toBeNull();
    expect(await store.list()).toEqual([]);
  });

  it("computes a blob's chunk hashes (8 MiB chunks, the last shorter) and refuses a blob damaged on disk", async () => {
    const MiB = 2 ** 20;
    const data = randomBytes(2 * 8 * MiB + 12345);
    const { sha256 } = await store.put(chunks(data, 3 * MiB + 1));
    const list = await store.chunkList(sha256);
    expect(list).toEqual({
      type: "orchard.blob-chunks",
      sha256,
      size: data.length,
      chunkSize: 8 * MiB,
      chunks: [sha(data.subarray(0, 8 * MiB)), sha(data.subarray(8 * MiB, 16 * MiB)), sha(data.subarray(16 * MiB))],
    });
    // A chunk size of its own (the agent's tests use small chunks), ending exactly on a chunk boundary.
    const even = await store.put(chunks(data.subarray(0, 4 * 65536)));
    expect((await store.chunkList(even.sha256, 65536)).chunks).toHaveLength(4);

    const handle = await open(store.blobPath(sha256), "r+");
    await handle.write(Buffer.from([data[9 * MiB]! ^ 1]), 0, 1, 9 * MiB);
    await handle.close();
    await expect(store.chunkList(sha256)).rejects.toThrow(/is damaged/);
  });

  it("runs exclusive sections one at a time", async () => {
    const order: string[] = [];
    const section = (name: string, ms: number) =>
      store.exclusive(async () => {
        order.push(`${name} in`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`${name} out`);
      });
    const failing = store.exclusive(() => Promise.reject(new Error("boom")));
    await Promise.all([section("a", 20), failing.catch(() => undefined), section("b", 1)]);
    expect(order).toEqual(["a in", "a out", "b in", "b out"]);
    await expect(failing).rejects.toThrow("boom");
  });
});

describe("writeFrom", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "orchard-write-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes at a position and hashes the same bytes; a broken source reports what was written", async () => {
    const file = path.join(dir, "partial");
    const data = randomBytes(300_000);
    const head = data.subarray(0, 100_000);
    await writeFile(file, head);
    const hash = await hashFilePrefix(file, head.length);
    const handle = await open(file, "r+");
    const result = await writeFrom(handle, head.length, chunks(data.subarray(100_000), 50_000, 150_000), hash, { limit: 1e9, what: "x" });
    await handle.close();
    expect(result.written).toBe(150_000);
    expect((result.sourceError as Error).message).toBe("aborted");
    expect(sha(await readFile(file))).toBe(sha(data.subarray(0, 250_000)));
    expect(hash.digest("hex")).toBe(sha(data.subarray(0, 250_000)));
  });

  it("stops at the limit", async () => {
    const file = path.join(dir, "limited");
    const handle = await open(file, "w+");
    const err = await writeFrom(handle, 0, chunks(randomBytes(10_000), 3000), createHash("sha256"), { limit: 7000, what: "x" }).catch(
      (e: unknown) => e,
    );
    await handle.close();
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((await stat(file)).size).toBe(7000);
  });
});
