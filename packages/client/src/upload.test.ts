/**
 * The resumable uploader against an in-memory server that speaks the upload protocol
 * (POST, HEAD, PATCH with Upload-Offset, GET) and fails the way networks do: a chunk cut
 * off after part of it arrived, a 503, a stale offset, a refusal. The real server and
 * the CLI through a dropping proxy are in test/integration/artifacts.test.ts.
 */
import { createHash, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RateMeter, UploadError, uploadFile, type UploadProgress, type UploadSource } from "./upload.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

interface Upload {
  name: string;
  size: number;
  bytes: Buffer;
}

/** The protocol in memory; `failures` decides what happens to each PATCH (by call number, from 1). */
function fakeServer(failures: Record<number, "cut" | "503" | "413" | "stale"> = {}) {
  const uploads = new Map<string, Upload>();
  const calls: string[] = [];
  let patches = 0;
  let next = 1;
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
  const dto = (id: string, u: Upload) => ({
    id,
    name: u.name,
    size: u.size,
    received: u.bytes.length,
    state: u.bytes.length === u.size ? "complete" : "receiving",
    sha256: u.bytes.length === u.size ? sha(u.bytes) : null,
    sourceUrl: null,
    expectedSha256: null,
    error: null,
    createdAt: 1,
    updatedAt: 1,
  });
  const fetchImpl = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input), "http://server");
    const method = init?.method ?? "GET";
    calls.push(`${method} ${url.pathname}`);
    if (method === "POST" && url.pathname === "/api/uploads") {
      const { name, size } = JSON.parse(String(init!.body)) as { name: string; size: number };
      const id = `up_${next++}`;
      uploads.set(id, { name, size, bytes: Buffer.alloc(0) });
      return json(201, { ...dto(id, uploads.get(id)!), offset: 0 });
    }
    const id = url.pathname.split("/").pop()!;
    const u = uploads.get(id);
    if (!u) return json(404, { error: { code: "not_found", message: `No upload ${id}.` } });
    const headers = (init?.headers ?? {}) as Record<string, string>;
    if (method === "HEAD")
      return new Response(null, { status: 200, headers: { "upload-offset": String(u.bytes.length), "upload-length": String(u.size) } });
    if (method === "GET") return json(200, dto(id, u));
    if (method === "PATCH") {
      patches++;
      const offset = Number(headers["upload-offset"]);
      const body = Buffer.from(init!.body as Uint8Array);
      const failure = failures[patches];
      if (failure === "503") return json(503, { error: { code: "unavailable", message: "restarting" } });
      if (failure === "413") return json(413, { error: { code: "too_large", message: "A chunk may carry at most 64 MiB." } });
      if (failure === "stale") u.bytes = Buffer.concat([u.bytes, body.subarray(0, 10)]); // someone else moved it on
      if (offset !== u.bytes.length) {
        return json(409, { error: { code: "conflict", message: "wrong offset" } }, { "upload-offset": String(u.bytes.length) });
      }
      if (failure === "cut") {
        // Part of the chunk arrived before the connection died.
        u.bytes = Buffer.concat([u.bytes, body.subarray(0, Math.floor(body.length / 3))]);
        throw new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }) });
      }
      u.bytes = Buffer.concat([u.bytes, body]);
      return json(200, dto(id, u), { "upload-offset": String(u.bytes.length) });
    }
    return json(400, { error: { code: "bad_request", message: "?" } });
  }) as typeof fetch;
  return { uploads, calls, fetch: fetchImpl };
}

const source = (data: Buffer, name = "model.pte"): UploadSource => ({ name, size: data.length, slice: (s, e) => data.subarray(s, e) });
const noWait = async () => undefined;

describe("uploadFile", () => {
  it("sends the file in chunks and reports progress", async () => {
    const server = fakeServer();
    const data = randomBytes(100_000);
    const progress: UploadProgress[] = [];
    let started = "";
    const done = await uploadFile(source(data), {
      fetch: server.fetch,
      chunkBytes: 30_000,
      onStart: (id) => (started = id),
      onProgress: (p) => progress.push(p),
      sleep: noWait,
    });
    expect(done).toMatchObject({ id: "up_1", state: "complete", sha256: sha(data), received: data.length });
    expect(started).toBe("up_1");
    expect(server.calls).toEqual(["POST /api/uploads", ...Array(4).fill("PATCH /api/uploads/up_1")]);
    expect(progress.map((p) => p.bytesDone)).toEqual([0, 30_000, 60_000, 90_000, 100_000]);
    expect(progress.every((p) => p.bytesTotal === data.length && p.retry === null)).toBe(true);
  });

  it("continues from what the server has after a chunk is cut off, or a 503", async () => {
    const server = fakeServer({ 2: "cut", 4: "503" });
    const data = randomBytes(100_000);
    const retries: string[] = [];
    const done = await uploadFile(source(data), {
      fetch: server.fetch,
      chunkBytes: 30_000,
      sleep: noWait,
      onProgress: (p) => (p.retry ? retries.push(p.retry.error) : undefined),
    });
    expect(done.sha256).toBe(sha(data));
    expect(server.uploads.get("up_1")!.bytes.equals(data)).toBe(true);
    expect(retries).toEqual(["the connection to the server failed (ECONNRESET)", "restarting"]);
    // After each failure it asks where the server is before sending more.
    expect(server.calls.filter((c) => c.startsWith("HEAD"))).toHaveLength(2);
  });

  it("takes the offset a 409 carries", async () => {
    // Before the second chunk, the server got its first 10 bytes another way (say, a request it was still finishing).
    const server = fakeServer({ 2: "stale" });
    const data = randomBytes(50_000);
    const done = await uploadFile(source(data), { fetch: server.fetch, chunkBytes: 20_000, sleep: noWait });
    expect(done.sha256).toBe(sha(data));
    expect(server.uploads.get("up_1")!.bytes.equals(data)).toBe(true);
    // The refused chunk is sent again from the server's offset, without asking (the 409 said it).
    expect(server.calls).toEqual(["POST /api/uploads", ...Array(4).fill("PATCH /api/uploads/up_1")]);
  });

  it("continues an upload started before (a reload) when its id is given, and starts over when the server has no such upload", async () => {
    const server = fakeServer();
    const data = randomBytes(60_000);
    server.uploads.set("up_earlier", { name: "model.pte", size: data.length, bytes: Buffer.from(data.subarray(0, 40_000)) });
    const done = await uploadFile(source(data), { fetch: server.fetch, chunkBytes: 30_000, resumeId: "up_earlier", sleep: noWait });
    expect(done).toMatchObject({ id: "up_earlier", sha256: sha(data) });
    expect(server.calls).toEqual(["HEAD /api/uploads/up_earlier", "PATCH /api/uploads/up_earlier"]);

    const fresh = await uploadFile(source(data), { fetch: server.fetch, resumeId: "up_gone", sleep: noWait });
    expect(fresh.id).toBe("up_1");
    expect(fresh.sha256).toBe(sha(data));
  });

  it("stops at a refusal with the server's message, and after too many failed attempts", async () => {
    const refused = fakeServer({ 1: "413" });
    const err = await uploadFile(source(randomBytes(1000)), { fetch: refused.fetch, sleep: noWait }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect((err as UploadError).message).toBe("A chunk may carry at most 64 MiB.");
    expect((err as UploadError).status).toBe(413);
    expect(refused.calls.filter((c) => c.startsWith("PATCH"))).toHaveLength(1);

    const down = fakeServer(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [i + 1, "503" as const])));
    await expect(uploadFile(source(randomBytes(1000)), { fetch: down.fetch, sleep: noWait, maxRetries: 3 })).rejects.toThrow(
      "The upload stopped after 3 failed attempts: restarting",
    );
  });
});

describe("RateMeter", () => {
  it("measures bytes per second over its window", () => {
    let t = 0;
    const meter = new RateMeter(5000, () => t);
    meter.add(0);
    expect(meter.rate()).toBeNull();
    t = 1000;
    meter.add(10_000_000);
    expect(meter.rate()).toBe(10_000_000);
    t = 10_000;
    meter.add(20_000_000);
    t = 11_000;
    meter.add(40_000_000);
    expect(meter.rate()).toBe(20_000_000);
  });
});
