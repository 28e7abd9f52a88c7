/**
 * The resumable uploader, for the browser (Models page) and the `orchard` CLI alike: it
 * only needs fetch. A file goes up in chunks (8 MiB by default) with PATCH
 * /api/uploads/{id} and Upload-Offset; the server says how many bytes it has after each.
 * A network error or a 5xx is retried with backoff, continuing from the offset HEAD
 * reports (a chunk cut off half-way keeps what arrived); a 409 carries the offset to
 * continue from. An upload started earlier (e.g. before a page reload) continues when its
 * id is passed as `resumeId`. Progress reports bytes, rate and ETA.
 */
import { UploadDto } from "./artifacts.ts";

export const DEFAULT_CHUNK_BYTES = 8 * 1024 * 1024;

/** What to upload: its name, its size and a way to read a byte range (a browser File is one). */
export interface UploadSource {
  name: string;
  size: number;
  /** Bytes [start, end): a Blob in the browser, a Uint8Array in Node. */
  slice(start: number, end: number): Promise<Blob | Uint8Array> | Blob | Uint8Array;
}

export interface UploadProgress {
  uploadId: string;
  bytesDone: number;
  bytesTotal: number;
  /** Bytes/s over the last few seconds; null until there is a measure. */
  rateBps: number | null;
  etaSeconds: number | null;
  /** Set while waiting to retry after an error. */
  retry: { attempt: number; inMs: number; error: string } | null;
}

export interface UploadOptions {
  /** The server's URL; "" for the page's own origin (the browser, signed in with its cookie). */
  baseUrl?: string;
  /** Extra headers, e.g. Authorization for the CLI. */
  headers?: Record<string, string>;
  chunkBytes?: number;
  /** An upload of this file started before; it continues where the server is, or starts over if the server no longer has it. */
  resumeId?: string | null;
  /** Called with the upload's id as soon as there is one (to remember it for a resume). */
  onStart?: (uploadId: string) => void;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
  /** Consecutive failed attempts before giving up (default 10, about 4 minutes with the backoff). */
  maxRetries?: number;
  fetch?: typeof fetch;
  /** Waits (replaceable in tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** The server refused (4xx, or a 5xx that stayed after every retry): `code` is its ApiError code. */
export class UploadError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string | null,
  ) {
    super(message);
    this.name = "UploadError";
  }
}

/** A way the upload can go wrong that is worth another try (the connection, a busy or restarting server). */
class Retryable extends Error {}

export async function uploadFile(source: UploadSource, opts: UploadOptions = {}): Promise<UploadDto> {
  const base = (opts.baseUrl ?? "").replace(/\/$/, "");
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const sleep = opts.sleep ?? defaultSleep;
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const maxRetries = opts.maxRetries ?? 10;
  const headers = opts.headers ?? {};
  const rate = new RateMeter();

  const request = async (method: string, path: string, init: { headers?: Record<string, string>; body?: RequestInit["body"] } = {}) => {
    try {
      return await doFetch(`${base}${path}`, {
        method,
        headers: { ...headers, ...init.headers },
        body: init.body,
        signal: opts.signal,
        credentials: "same-origin",
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new Retryable(networkMessage(err));
    }
  };

  // Start, or continue an earlier upload of the same file.
  let id: string | null = null;
  let offset = 0;
  if (opts.resumeId) {
    const res = await request("HEAD", `/api/uploads/${encodeURIComponent(opts.resumeId)}`).catch(() => null);
    const length = res?.headers.get("upload-length");
    if (res?.ok && Number(length) === source.size) {
      id = opts.resumeId;
      offset = Number(res.headers.get("upload-offset") ?? 0);
    }
  }
  if (id === null) {
    const res = await request("POST", "/api/uploads", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: source.name, size: source.size }),
    });
    if (res.status !== 201) throw await refusal(res, "The server refused to start the upload");
    const created = (await res.json()) as { id: string; offset: number };
    id = created.id;
    offset = created.offset;
  }
  opts.onStart?.(id);
  const uploadPath = `/api/uploads/${encodeURIComponent(id)}`;
  let retry: UploadProgress["retry"] = null;
  const report = () => {
    const rateBps = rate.rate();
    opts.onProgress?.({
      uploadId: id,
      bytesDone: offset,
      bytesTotal: source.size,
      rateBps,
      etaSeconds: rateBps && rateBps > 0 ? (source.size - offset) / rateBps : null,
      retry,
    });
  };
  rate.add(offset);
  report();

  let failures = 0;
  let last: UploadDto | null = null;
  let mustAsk = false;
  while (offset < source.size || last === null) {
    try {
      if (mustAsk) {
        // After an error: the server may have part of the chunk; continue from what it has.
        const res = await request("HEAD", uploadPath);
        if (!res.ok) throw await refusal(res, "The server no longer has this upload");
        offset = Number(res.headers.get("upload-offset") ?? 0);
        mustAsk = false;
      }
      if (offset >= source.size) {
        const res = await request("GET", uploadPath);
        if (!res.ok) throw await refusal(res, "Reading the upload failed");
        last = UploadDto.parse(await res.json());
        break;
      }
      const end = Math.min(offset + chunkBytes, source.size);
      const body = await source.slice(offset, end);
      const res = await request("PATCH", uploadPath, {
        headers: { "upload-offset": String(offset), "content-type": "application/offset+octet-stream" },
        body: body as RequestInit["body"],
      });
      if (res.status === 409 && res.headers.get("upload-offset") !== null) {
        offset = Number(res.headers.get("upload-offset"));
        await res.body?.cancel();
        continue;
      }
      if (!res.ok) throw await refusal(res, "The server refused a chunk");
      last = UploadDto.parse(await res.json());
      offset = last.received;
      failures = 0;
      retry = null;
      rate.add(offset);
      report();
    } catch (err) {
      if (!(err instanceof Retryable) || opts.signal?.aborted) throw err;
      failures++;
      if (failures > maxRetries) {
        throw new UploadError(`The upload stopped after ${maxRetries} failed attempts: ${err.message}`, null, null);
      }
      const inMs = Math.min(30_000, 1000 * 2 ** (failures - 1));
      retry = { attempt: failures, inMs, error: err.message };
      report();
      await sleep(inMs, opts.signal);
      mustAsk = true;
    }
  }
  if (last.state === "failed") throw new UploadError(last.error ?? "The upload failed.", null, "failed");
  return last;
}

/** Registers a file by URL: the server downloads it in the background (follow it with the upload's id). */
export async function registerUrl(
  input: { name: string; sourceUrl: string; sha256: string },
  opts: Pick<UploadOptions, "baseUrl" | "headers" | "fetch"> = {},
): Promise<UploadDto> {
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  let res: Response;
  try {
    res = await doFetch(`${(opts.baseUrl ?? "").replace(/\/$/, "")}/api/uploads`, {
      method: "POST",
      headers: { ...opts.headers, "content-type": "application/json" },
      body: JSON.stringify(input),
      credentials: "same-origin",
    });
  } catch (err) {
    throw new UploadError(networkMessage(err), null, null);
  }
  if (res.status !== 201) throw await refusal(res, "The server refused the URL");
  return UploadDto.parse(await res.json());
}

/** Name, size and last-modified time: the same file chosen again after a reload (browser). */
export function fileFingerprint(file: { name: string; size: number; lastModified: number }): string {
  return `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
}

/** The part of the browser's localStorage the resume store uses (the CLI has none). */
interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}
const storage = (): KeyValueStorage | null => (globalThis as { localStorage?: KeyValueStorage }).localStorage ?? null;

/** Remembers unfinished uploads by file fingerprint in localStorage, so a reload can continue them. */
export const resumeStore = {
  key: "orchard.uploads",
  all(): Record<string, string> {
    try {
      const parsed: unknown = JSON.parse(storage()?.getItem(this.key) ?? "{}");
      return parsed && typeof parsed === "object" ? (parsed as Record<string, string>) : {};
    } catch {
      return {};
    }
  },
  get(fingerprint: string): string | null {
    return this.all()[fingerprint] ?? null;
  },
  set(fingerprint: string, uploadId: string): void {
    this.write({ ...this.all(), [fingerprint]: uploadId });
  },
  delete(fingerprint: string): void {
    const all = this.all();
    delete all[fingerprint];
    this.write(all);
  },
  write(all: Record<string, string>): void {
    try {
      storage()?.setItem(this.key, JSON.stringify(all));
    } catch {
      // Storage full or disabled: the upload works, it just cannot continue after a reload.
    }
  },
};

/** Bytes/s over a sliding window of about five seconds. */
export class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  constructor(
    private readonly windowMs = 5000,
    private readonly now: () => number = () => Date.now(),
  ) {}
  add(bytes: number): void {
    const t = this.now();
    this.samples.push({ t, bytes });
    // Samples older than the window go, but two stay: a chunk can take longer than the window.
    while (this.samples.length > 2 && t - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const first = this.samples[0]!;
    const last = this.samples.at(-1)!;
    const dt = (last.t - first.t) / 1000;
    return dt > 0 ? Math.max(0, last.bytes - first.bytes) / dt : null;
  }
}

async function refusal(res: Response, what: string): Promise<Error> {
  let code: string | null = null;
  let message = `${what} (HTTP ${res.status}).`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    code = body.error?.code ?? null;
  } catch {
    // Not our JSON (a proxy's error page): the status says it.
  }
  // A busy or restarting server (or a proxy in between) is worth another try; a refusal is not.
  if (res.status >= 500 && res.status !== 507) return new Retryable(message);
  return new UploadError(message, res.status, code);
}

function networkMessage(err: unknown): string {
  const cause = (err as { cause?: { message?: string; code?: string } }).cause;
  return `the connection to the server failed (${cause?.code ?? cause?.message ?? (err as Error).message})`;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
