/**
 * What the rollout tests share: a signing key the way the server makes one, signed
 * artifacts built from bytes, a real HTTP blob server on 127.0.0.1 (Range, Basic
 * auth, 503 + Retry-After, cut connections, corrupted bytes, request and byte counts)
 * and a fake runner host the test can make fail at load or give other token ids.
 */
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { type IncomingMessage, type ServerResponse, type Server, createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import {
  type ArtifactManifest,
  type BlobChunkList,
  type SignedBlobChunkList,
  type HealthGate,
  type RolloutApplyCommand,
  type RunnerDone,
  type SignedManifest,
  canonicalJson,
} from "@orchard/contracts";
import { Generation } from "../../src/runner/generation.js";
import type { GenerateOptions, RunnerLaunch } from "../../src/runner/supervisor.js";
import type { ModelHost, ReadyOutcome } from "../../src/rollout/model-host.js";
import { artifactKeyId } from "../../src/rollout/signature.js";

// ---------------------------------------------------------------- signing

export interface Signer {
  publicKey: string;
  keyId: string;
  sign(manifest: ArtifactManifest): SignedManifest;
  signChunks(list: BlobChunkList): SignedBlobChunkList;
}

/** An ed25519 key like the server's: public key as base64 SPKI DER, key id from its sha256. */
export function makeSigner(): Signer {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const der = publicKey.export({ format: "der", type: "spki" }).toString("base64");
  const keyId = artifactKeyId(der);
  return {
    publicKey: der,
    keyId,
    sign: (manifest) => ({ manifest, keyId, signature: sign(null, Buffer.from(canonicalJson(manifest)), privateKey).toString("base64") }),
    signChunks: (list) => ({ list, keyId, signature: sign(null, Buffer.from(canonicalJson(list)), privateKey).toString("base64") }),
  };
}

/** The chunk list the server computes for a file (`chunkSize` bytes per chunk, the last may be shorter). */
export function chunkList(data: Buffer, chunkSize: number): BlobChunkList {
  const chunks: string[] = [];
  for (let at = 0; at < data.length; at += chunkSize) chunks.push(sha256(data.subarray(at, at + chunkSize)));
  return { type: "orchard.blob-chunks", sha256: sha256(data), size: data.length, chunkSize, chunks };
}

// ---------------------------------------------------------------- artifacts

export interface TestFile {
  name: string;
  role: "model" | "tokenizer" | "tokenizer_config" | "other";
  data: Buffer;
}

export interface TestArtifact {
  artifactId: string;
  manifest: ArtifactManifest;
  signed: SignedManifest;
  files: TestFile[];
}

export const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** Deterministic bytes (not all zero, so a flipped byte shows). */
export function bytes(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i += 1) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export function makeArtifact(
  signer: Signer,
  options: {
    name?: string;
    version?: string;
    files?: TestFile[];
    size?: number;
    seed?: number;
    runtime?: ArtifactManifest["runtime"];
    runtimeVersion?: string;
    profile?: string | null;
    expectedTokenIds?: number[] | null;
    reference?: boolean;
  } = {},
): TestArtifact {
  const files = options.files ?? [
    { name: "model.bin", role: "model" as const, data: bytes(options.size ?? 256 * 1024, options.seed ?? 1) },
  ];
  const manifest: ArtifactManifest = {
    schema: 1,
    name: options.name ?? "test-model",
    version: options.version ?? `v${options.seed ?? 1}`,
    runtime: options.runtime ?? "sim",
    runtimeVersion: options.runtimeVersion ?? "1",
    profile: options.profile ?? null,
    maxContext: 2048,
    files: files.map((f) => ({ name: f.name, role: f.role, size: f.data.length, sha256: sha256(f.data) })),
    reference:
      options.reference === false
        ? null
        : {
            prompt: "The capital of France is",
            expectedTokenIds: options.expectedTokenIds === undefined ? [11, 12, 13] : options.expectedTokenIds,
          },
    createdAt: 1_700_000_000_000,
  };
  return { artifactId: sha256(canonicalJson(manifest)), manifest, signed: signer.sign(manifest), files };
}

const DEFAULT_HEALTH: HealthGate = { referenceCheck: true, minDecodeTokS: null, timeoutMs: 30_000 };

let commandSeq = 0;
export function applyCommand(
  artifact: TestArtifact,
  options: { rolloutId?: string; id?: string; downloadUrl?: string; health?: Partial<HealthGate>; attempt?: number } = {},
): RolloutApplyCommand {
  return {
    ...(options.attempt === undefined ? {} : { attempt: options.attempt }),
    type: "rollout.apply",
    id: options.id ?? `cmd-${++commandSeq}`,
    ts: 1_700_000_000_000,
    rolloutId: options.rolloutId ?? `ro-${artifact.artifactId.slice(0, 8)}`,
    artifactId: artifact.artifactId,
    signed: artifact.signed,
    downloadUrl: options.downloadUrl ?? "/api/artifacts/blobs",
    health: { ...DEFAULT_HEALTH, ...options.health },
  };
}

// ---------------------------------------------------------------- the blob server

export interface BlobRequest {
  sha256: string;
  range: string | null;
  status: number;
  /** Bytes of body written to the socket for this request. */
  served: number;
  at: number;
}

/**
 * GET /api/artifacts/blobs/{sha256} with Basic auth and Range, like the server's
 * endpoint. Knobs: `busy` answers the next n requests 503 with Retry-After; `cutAfter`
 * destroys the connection after that many body bytes (once); `stallAfter` stops
 * sending after that many bytes and keeps the connection open; `corrupt` flips a byte.
 */
export class BlobServer {
  readonly blobs = new Map<string, Buffer>();
  readonly requests: BlobRequest[] = [];
  busy = 0;
  retryAfterSeconds = 1;
  cutAfter: number | null = null;
  stallAfter: number | null = null;
  corrupt = new Set<string>();
  /** Answer every request with this status (e.g. 404, 500). */
  failWith: number | null = null;
  /** Flips a byte (as `corrupt` does) in the answers to this many next blob requests. */
  corruptRequests = 0;
  /** Served at GET /api/artifacts/blobs/{sha256}/chunks (same auth), by sha256; 404 for the others. */
  readonly chunkLists = new Map<string, SignedBlobChunkList>();
  chunkListRequests = 0;
  /** Served at GET /api/device/artifact-key (same auth), when set. */
  artifactKey: { artifactPublicKey: string; keyId: string } | null = null;
  keyRequests = 0;
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  port = 0;

  /** `authorization`: the exact header every request must carry; undefined = requests must carry none (another host). */
  constructor(readonly authorization: string | undefined) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** False between down() and up(). */
  get listening(): boolean {
    return this.#server?.listening ?? false;
  }

  get bytesServed(): number {
    return this.requests.reduce((n, r) => n + r.served, 0);
  }

  add(artifact: TestArtifact): void {
    for (const f of artifact.files) this.blobs.set(sha256(f.data), f.data);
  }

  async start(port = 0): Promise<this> {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.#server!.listen(port, "127.0.0.1", resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  /** An outage: connections are cut and refused (ECONNREFUSED) until up(). */
  async down(): Promise<void> {
    await this.stop();
    this.#server = null;
  }

  /** Back after down(), on the same port. */
  async up(): Promise<void> {
    const port = this.port;
    await this.start(port);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === "/api/device/artifact-key") {
      this.keyRequests += 1;
      const ok = req.headers.authorization === this.authorization && this.artifactKey;
      res.writeHead(ok ? 200 : 401, { "content-type": "application/json" }).end(JSON.stringify(ok ? this.artifactKey : {}));
      return;
    }
    const chunks = /^\/api\/artifacts\/blobs\/([0-9a-f]{64})\/chunks$/.exec(req.url ?? "");
    if (chunks) {
      this.chunkListRequests += 1;
      const list = req.headers.authorization === this.authorization ? this.chunkLists.get(chunks[1]!) : undefined;
      res
        .writeHead(list ? 200 : 404, { "content-type": "application/json" })
        .end(JSON.stringify(list ?? { error: { code: "not_found", message: "no chunk list" } }));
      return;
    }
    const m = /^\/api\/artifacts\/blobs\/([0-9a-f]{64})$/.exec(req.url ?? "");
    if (!m) {
      // Not a blob request (on a shared machine, something else may knock on a port it thought was free): not counted.
      res
        .writeHead(404, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { code: "not_found", message: "no such route" } }));
      return;
    }
    const record: BlobRequest = { sha256: m[1]!, range: req.headers.range ?? null, status: 0, served: 0, at: Date.now() };
    this.requests.push(record);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
    };
    if (req.headers.authorization !== this.authorization)
      return answer(401, { error: { code: "unauthorized", message: "bad device credentials" } });
    if (this.failWith !== null) return answer(this.failWith, { error: { code: "test", message: `forced ${this.failWith}` } });
    if (this.busy > 0) {
      this.busy -= 1;
      return answer(503, { error: { code: "busy", message: "too many downloads" } }, { "retry-after": String(this.retryAfterSeconds) });
    }
    const stored = this.blobs.get(m[1]!);
    if (!stored) return answer(404, { error: { code: "not_found", message: "no such blob" } });
    let blob = stored;
    const corruptThis = this.corruptRequests > 0;
    if (corruptThis) this.corruptRequests -= 1;
    if (this.corrupt.has(m[1]!) || corruptThis) {
      blob = Buffer.from(stored);
      const at = Math.floor(blob.length / 2);
      blob[at] = blob[at]! ^ 0xff;
    }
    let start = 0;
    let status = 200;
    const headers: Record<string, string> = { "content-type": "application/octet-stream", "accept-ranges": "bytes" };
    if (record.range) {
      const r = /^bytes=(\d+)-$/.exec(record.range);
      if (!r || Number(r[1]) >= blob.length) {
        return answer(416, { error: { code: "range", message: "range not satisfiable" } }, { "content-range": `bytes */${blob.length}` });
      }
      start = Number(r[1]);
      status = 206;
      headers["content-range"] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
    }
    headers["content-length"] = String(blob.length - start);
    record.status = status;
    res.writeHead(status, headers);
    const body = blob.subarray(start);
    const limit = this.cutAfter ?? this.stallAfter;
    if (limit !== null) {
      const cut = this.cutAfter !== null;
      this.cutAfter = null;
      this.stallAfter = null;
      const part = body.subarray(0, Math.min(limit, body.length));
      record.served = part.length;
      res.write(part, () => {
        if (cut) setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    record.served = body.length;
    res.end(body);
  }
}

// ---------------------------------------------------------------- a fake runner host

/** What the runner runs: the model file's name, or "cli" for the command line's model. */
export function launchLabel(launch: RunnerLaunch | null): string {
  if (!launch) return "none";
  if (!launch.model) return "cli";
  return launch.model.split("/").slice(-2).join("/");
}

export class FakeHost implements ModelHost {
  readonly ops: string[] = [];
  running: RunnerLaunch | null = null;
  /** Models (by launchLabel) that fail to load. */
  failLoad = new Set<string>();
  /** Token ids the reference prompt produces, by launchLabel; default [11, 12, 13]. */
  tokenIds = new Map<string, number[]>();
  decodeTokS = 100;
  readonly generations: GenerateOptions[] = [];

  async exclusive<T>(_key: string, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    signal.throwIfAborted();
    return fn();
  }

  async stop(): Promise<void> {
    this.ops.push("stop");
    this.running = null;
  }

  async start(launch: RunnerLaunch): Promise<void> {
    this.ops.push(`start:${launchLabel(launch)}`);
    this.running = launch;
  }

  async waitReady(): Promise<ReadyOutcome> {
    if (!this.running) return { ok: false, message: "the runner is not running" };
    const label = launchLabel(this.running);
    if (this.failLoad.has(label))
      return { ok: false, message: `the runner did not load the model: exited with code 1: load_failed: ${label}` };
    return { ok: true };
  }

  generate(request: GenerateOptions): Generation {
    this.generations.push(request);
    const ids = this.tokenIds.get(launchLabel(this.running)) ?? [11, 12, 13];
    const { generation, sink } = Generation.create(request.id, () => undefined);
    const done: RunnerDone = {
      type: "done",
      id: request.id,
      finish_reason: "length",
      prompt_tokens: 8,
      reused_tokens: 0,
      generated_tokens: ids.length,
      ttft_ms: 5,
      prefill_ms: 5,
      decode_ms: 30,
      prefill_tok_s: 1000,
      decode_tok_s: this.decodeTokS,
      peak_rss_bytes: 1_000_000,
      token_ids: ids,
    };
    queueMicrotask(() => sink.done(done));
    return generation;
  }
}
