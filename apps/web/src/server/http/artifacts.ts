/**
 * REST endpoints for model files (docs/rollout.md#artifacts):
 *
 *   POST   /api/uploads               {name, size} | {name, sourceUrl, sha256}  → 201 UploadDto
 *   HEAD   /api/uploads/{id}          → Upload-Offset (bytes the server has), Upload-Length
 *   GET    /api/uploads/{id}          → UploadDto
 *   PATCH  /api/uploads/{id}          Upload-Offset: N, body = the bytes from N → 200 UploadDto
 *   DELETE /api/uploads/{id}          → 204
 *     (operator session or API key, a viewer's for GET and HEAD (http/access.ts); a chunk is at
 *     most 64 MiB, streamed to disk)
 *
 *   GET|HEAD /api/artifacts/blobs/{sha256}   a file, for devices (Basic: device id and broker
 *     password); Range requests for resume; at most ORCHARD_MAX_CONCURRENT_DOWNLOADS at once,
 *     more get 503 with Retry-After.
 *   GET /api/artifacts/blobs/{sha256}/chunks   the file's chunk hashes, signed (contracts
 *     SignedBlobChunkList), so a device checks its download chunk by chunk (Basic device auth)
 *   GET /api/device/artifact-key              the public key manifests are signed with (Basic device auth)
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { ApiError, ArtifactKeyResponse, SignedBlobChunkList } from "@orchard/contracts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Services } from "../services/index.ts";
import { ChunkTooLargeError, CreateUploadInput, UPLOAD_CHUNK_MAX_BYTES, UploadOffsetConflict } from "../services/uploads.ts";
import { DiskFullError } from "../artifacts/store.ts";
import type { Principal } from "../services/auth.ts";
import { readJsonBody, sendError, sendJson } from "./request.ts";

/** Seconds a device is told to wait when every download slot is taken. */
export const BUSY_RETRY_AFTER_SECONDS = 5;

const UPLOAD_PATH = /^\/api\/uploads\/(up_[A-Za-z0-9_-]{1,40})$/;
const BLOB_PATH = /^\/api\/artifacts\/blobs\/([^/]+)$/;
const CHUNKS_PATH = /^\/api\/artifacts\/blobs\/([^/]+)\/chunks$/;

/** Counts downloads in flight against the cap (read by /metrics). */
export class DownloadGate {
  private active = 0;
  constructor(readonly max: number) {}
  inFlight(): number {
    return this.active;
  }
  tryAcquire(): (() => void) | null {
    if (this.active >= this.max) return null;
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
    };
  }
}

export function createArtifactRoutes(deps: { services: Services; log: Logger; downloads: DownloadGate }) {
  const { services, log, downloads } = deps;

  /** The caller routes.ts let through (access.ts); the upload routes cannot be reached without one. */
  const requirePrincipal = (principal: Principal | null): Principal => {
    if (!principal) throw new AppError("unauthorized", "Uploading models needs a session or an API key (Authorization: Bearer …).");
    return principal;
  };

  return async function handle(req: IncomingMessage, res: ServerResponse, path: string, principal: Principal | null): Promise<boolean> {
    try {
      return await route(req, res, path, principal);
    } catch (err) {
      if (replyArtifactError(res, err)) return true;
      throw err;
    }
  };

  async function route(req: IncomingMessage, res: ServerResponse, path: string, caller: Principal | null): Promise<boolean> {
    if (path === "/api/uploads") {
      if (req.method !== "POST") throw new AppError("bad_request", "Use POST to start an upload.");
      const principal = requirePrincipal(caller);
      const parsed = CreateUploadInput.safeParse(await readJsonBody(req, 16 * 1024));
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new AppError(
          "bad_request",
          `Invalid upload: send {name, size} for an upload or {name, sourceUrl, sha256} for a download from a URL (${issue.path.join(".") || "body"}: ${issue.message}).`,
        );
      }
      const upload = await services.uploads.create(parsed.data, principal.userId);
      res.setHeader("location", `/api/uploads/${upload.id}`);
      res.setHeader("upload-offset", String(upload.received));
      sendJson(res, 201, { ...upload, offset: upload.received });
      return true;
    }

    const upload = UPLOAD_PATH.exec(path);
    if (upload) {
      const id = upload[1]!;
      requirePrincipal(caller);
      switch (req.method) {
        case "HEAD": {
          const { offset, size } = await services.uploads.offset(id);
          res.writeHead(200, {
            "upload-offset": String(offset),
            ...(size === null ? {} : { "upload-length": String(size) }),
            "cache-control": "no-store",
          });
          res.end();
          return true;
        }
        case "GET":
          sendJson(res, 200, await services.uploads.get(id));
          return true;
        case "DELETE":
          await services.uploads.remove(id);
          res.writeHead(204, { "cache-control": "no-store" });
          res.end();
          return true;
        case "PATCH":
          await patch(id, req, res);
          return true;
        default:
          throw new AppError("bad_request", "Use HEAD, GET, PATCH or DELETE on an upload.");
      }
    }
    if (path.startsWith("/api/uploads/")) throw new AppError("not_found", `No upload ${path.slice("/api/uploads/".length)}.`);

    const blob = BLOB_PATH.exec(path);
    if (blob) {
      if (req.method !== "GET" && req.method !== "HEAD") throw new AppError("bad_request", "Use GET.");
      requireDevice(req);
      await serveBlob(blob[1]!, req, res);
      return true;
    }
    const chunks = CHUNKS_PATH.exec(path);
    if (chunks) {
      if (req.method !== "GET") throw new AppError("bad_request", "Use GET.");
      requireDevice(req);
      if (!/^[0-9a-f]{64}$/.test(chunks[1]!))
        throw new AppError("not_found", "Model files are addressed by their sha256 (64 lower-case hex digits).");
      const list = await services.artifacts.signedChunkList(chunks[1]!);
      res.setHeader("cache-control", "private, max-age=31536000, immutable");
      sendJson(res, 200, list satisfies SignedBlobChunkList);
      return true;
    }
    if (path === "/api/device/artifact-key") {
      if (req.method !== "GET") throw new AppError("bad_request", "Use GET.");
      requireDevice(req);
      sendJson(res, 200, services.artifacts.publicKey satisfies ArtifactKeyResponse);
      return true;
    }
    return false;
  }

  async function patch(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Everything refused before the body is read closes the connection instead of reading up to 64 MiB for nothing.
    const refuse = (err: unknown) => {
      res.setHeader("connection", "close");
      reply(res, err);
    };
    const offsetHeader = req.headers["upload-offset"];
    if (typeof offsetHeader !== "string" || !/^\d{1,16}$/.test(offsetHeader)) {
      return refuse(new AppError("bad_request", "A chunk needs an Upload-Offset header: the byte offset it starts at."));
    }
    const lengthHeader = req.headers["content-length"];
    const contentLength = lengthHeader === undefined ? null : Number(lengthHeader);
    if (contentLength !== null && contentLength > UPLOAD_CHUNK_MAX_BYTES) return refuse(new ChunkTooLargeError());
    let dto;
    try {
      dto = await services.uploads.patch(id, Number(offsetHeader), req, contentLength);
    } catch (err) {
      return req.complete ? reply(res, err) : refuse(err);
    }
    if (res.destroyed || !req.complete) return; // the client went away mid-chunk; it asks for the offset when it is back
    res.setHeader("upload-offset", String(dto.received));
    sendJson(res, 200, dto);
  }

  function requireDevice(req: IncomingMessage): string {
    const header = req.headers.authorization;
    const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
    const decoded = match ? Buffer.from(match[1]!, "base64").toString("utf8") : "";
    const colon = decoded.indexOf(":");
    const deviceId = colon > 0 ? decoded.slice(0, colon) : "";
    if (!deviceId || !services.fleet.verifyDeviceCredentials(deviceId, decoded.slice(colon + 1))) {
      throw Object.assign(
        new AppError("unauthorized", "Model files are for enrolled devices: use Basic auth with the device id and its broker password."),
        { basicChallenge: true },
      );
    }
    return deviceId;
  }

  async function serveBlob(sha256: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(sha256))
      throw new AppError("not_found", "Model files are addressed by their sha256 (64 lower-case hex digits).");
    const size = await services.uploads.store.size(sha256);
    if (size === null) throw new AppError("not_found", `The server has no file with sha256 ${sha256}.`);
    const range = parseRange(req.headers.range, size);
    const common = {
      "accept-ranges": "bytes",
      etag: `"${sha256}"`,
      "cache-control": "private, max-age=31536000, immutable",
      "content-type": "application/octet-stream",
    };
    if (range === "unsatisfiable") {
      res.writeHead(416, { ...common, "content-range": `bytes */${size}`, "content-type": "application/json; charset=utf-8" });
      res.end(
        JSON.stringify({
          error: { code: "range_not_satisfiable", message: `The file has ${size} bytes; the range asked for starts after its end.` },
        } satisfies ApiError),
      );
      return;
    }
    const headers = range
      ? { ...common, "content-length": String(range.end - range.start + 1), "content-range": `bytes ${range.start}-${range.end}/${size}` }
      : { ...common, "content-length": String(size) };
    const status = range ? 206 : 200;
    if (req.method === "HEAD") {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const release = downloads.tryAcquire();
    if (!release) {
      services.metrics.artifactDownloadsBusy.inc();
      res.writeHead(503, {
        "retry-after": String(BUSY_RETRY_AFTER_SECONDS),
        "content-type": "application/json; charset=utf-8",
        "cache-control": "no-store",
      });
      res.end(
        JSON.stringify({
          error: {
            code: "busy",
            message: `The server is sending ${downloads.max} model files already; retry in ${BUSY_RETRY_AFTER_SECONDS} s.`,
          },
        } satisfies ApiError),
      );
      return;
    }
    res.once("close", release);
    const body = size === 0 ? null : services.uploads.store.read(sha256, range ?? undefined);
    res.writeHead(status, headers);
    if (!body) {
      res.end();
      return;
    }
    body.on("data", (chunk: string | Buffer) => services.metrics.artifactBytesServed.inc({}, chunk.length));
    await pipeline(body, res).catch((err: NodeJS.ErrnoException) => {
      // A device that hangs up mid-file resumes with a Range request; anything else is worth a line.
      if (err.code !== "ERR_STREAM_PREMATURE_CLOSE" && err.code !== "ECONNRESET" && err.code !== "EPIPE") {
        log.warn("sending a model file failed", { sha256, error: err.message });
      }
    });
  }
}

/** Error replies, with the statuses HTTP has for what uploads and downloads can run into. */
function reply(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof UploadOffsetConflict) {
    res.setHeader("upload-offset", String(err.offset));
    sendError(res, err);
  } else if (err instanceof ChunkTooLargeError) {
    sendJson(res, 413, { error: { code: "too_large", message: err.message } } satisfies ApiError);
  } else if (err instanceof DiskFullError) {
    sendJson(res, 507, { error: { code: "disk_full", message: err.message } } satisfies ApiError);
  } else {
    sendError(res, err);
  }
}

/** Replies to the errors that need more than the generic handler gives (a status of their own, a header); false for the rest. */
function replyArtifactError(res: ServerResponse, err: unknown): boolean {
  if (err instanceof UploadOffsetConflict || err instanceof ChunkTooLargeError || err instanceof DiskFullError) {
    reply(res, err);
    return true;
  }
  if ((err as { basicChallenge?: boolean }).basicChallenge) {
    res.setHeader("www-authenticate", 'Basic realm="orchard-device", charset="UTF-8"');
    sendError(res, err);
    return true;
  }
  return false;
}

/**
 * One byte range of a file of `size` bytes: "bytes=N-", "bytes=N-M" or "bytes=-K" (the last
 * K). No header, several ranges or a malformed one: null (the whole file, as RFC 9110 lets a
 * server do). A range that starts past the end: "unsatisfiable".
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null | "unsatisfiable" {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== "" && Number(m[2]) < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}
