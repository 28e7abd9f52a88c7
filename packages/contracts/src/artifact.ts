/**
 * Artifacts: a model and its tokenizer files, described by a manifest the server
 * signs with its ed25519 key. Agents learn the public key at enrollment and refuse
 * any manifest whose signature does not verify, so a model can only reach a Pi
 * through the server that enrolled it.
 *
 * The signature covers `canonicalJson(manifest)`: keys sorted, no whitespace, so the
 * bytes signed on the server are the bytes verified on the agent whatever order the
 * JSON travelled in. Files are stored and fetched by sha256 (content-addressed); their
 * names only say what a runner should call them on disk, and are checked so that no
 * name can leave the artifact's folder.
 */
import { z } from "zod";

export const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 in lower-case hex");

/**
 * Runtimes an artifact can be for. `sim` artifacts are simulated models for tests and
 * demos (a small header that tells the `sim` backend how to behave, then padding);
 * the dashboard labels them as such. `llama.cpp` artifacts are one `.gguf` (tokenizer
 * and chat template inside), run by the `llamacpp` runner backend.
 */
export const ARTIFACT_RUNTIMES = ["executorch", "sim", "llama.cpp"] as const;
export const ArtifactRuntime = z.enum(ARTIFACT_RUNTIMES);
export type ArtifactRuntime = z.infer<typeof ArtifactRuntime>;

/**
 * Why a device cannot load models of `runtime`, from the runtimes its status lists; null
 * when it can, or when it has not said (older agents: its preflight decides).
 */
export function runtimeRefusal(device: { name: string; runtimes: readonly string[] | null }, runtime: string): string | null {
  if (device.runtimes === null || device.runtimes.includes(runtime)) return null;
  return `${device.name} cannot load ${runtime} models: its runners load ${device.runtimes.length > 0 ? device.runtimes.join(", ") : "nothing"}.`;
}

/**
 * A file name inside an artifact: one path segment, no `..`, no separators, no
 * leading dot, printable ASCII. "model.pte", "tokenizer.json" pass; "../x",
 * "a/b", "a\\b", ".hidden" and "" do not.
 */
export const ArtifactFileName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/, "a plain file name (letters, digits, '.', '_', '-'; no path separators)")
  .refine((n) => !n.includes(".."), "a file name must not contain '..'");

export const ARTIFACT_FILE_ROLES = ["model", "tokenizer", "tokenizer_config", "other"] as const;

export const ArtifactFile = z.object({
  name: ArtifactFileName,
  role: z.enum(ARTIFACT_FILE_ROLES),
  size: z
    .number()
    .int()
    .nonnegative()
    .max(2 ** 45),
  sha256: Sha256Hex,
});
export type ArtifactFile = z.infer<typeof ArtifactFile>;

/** The health gate's reference check: greedy generation of the prompt (one user message, chat template). */
export const ReferenceCheck = z.object({
  prompt: z.string().min(1).max(4000),
  /** The token ids the model must produce; null = only check that it generates at all. */
  expectedTokenIds: z.array(z.number().int().nonnegative()).min(1).max(256).nullable(),
});
export type ReferenceCheck = z.infer<typeof ReferenceCheck>;

export const ArtifactManifest = z
  .object({
    schema: z.literal(1),
    name: z.string().min(1).max(128),
    version: z.string().min(1).max(64),
    runtime: ArtifactRuntime,
    /** The runtime version the model was exported for (e.g. ExecuTorch "1.2.0"); agents refuse what their runner cannot load. */
    runtimeVersion: z.string().min(1).max(64),
    /** Runner model profile (executorch: "gemma4-e2b-extcache" or "llm-standard"); null for sim and llama.cpp. */
    profile: z.string().min(1).max(64).nullable(),
    maxContext: z.number().int().positive().max(1_048_576).nullable(),
    files: z.array(ArtifactFile).min(1).max(16),
    reference: ReferenceCheck.nullable(),
    createdAt: z.number().int().positive(),
  })
  .superRefine((m, ctx) => {
    const names = new Set<string>();
    for (const f of m.files) {
      if (names.has(f.name)) ctx.addIssue({ code: "custom", message: `the file name ${f.name} appears twice`, path: ["files"] });
      names.add(f.name);
    }
    if (m.files.filter((f) => f.role === "model").length !== 1) {
      ctx.addIssue({ code: "custom", message: "an artifact has exactly one file with role model", path: ["files"] });
    }
  });
export type ArtifactManifest = z.infer<typeof ArtifactManifest>;

/**
 * `orchard-model.json`: what tools/export writes next to the `.pte` and tokenizer
 * files it exports. `orchard artifact push DIR` reads it, so the health gate's
 * reference ids come from the export (the .pte's own greedy ids) and are never
 * typed by hand. Only the fields Orchard uses are checked; the tool writes more
 * (the eager models' ids, versions, the I/O layout) for people and tests.
 */
export const ExportedModelManifest = z.object({
  name: z.string().min(1).max(128),
  version: z.string().min(1).max(64),
  runtime: z.literal("executorch"),
  runtimeVersion: z.string().min(1).max(64),
  profile: z.string().min(1).max(64),
  maxContext: z.number().int().positive().max(1_048_576),
  reference: ReferenceCheck.extend({ expectedTokenIds: z.array(z.number().int().nonnegative()).min(1).max(256) }),
  /** "random" for the tiny test models: they generate, but not words. */
  weights: z.string().min(1).max(64),
});
export type ExportedModelManifest = z.infer<typeof ExportedModelManifest>;

/** The name of that file in an exported model folder. */
export const EXPORTED_MODEL_MANIFEST = "orchard-model.json";

/** A manifest with its signature: base64 of the ed25519 signature over canonicalJson(manifest). */
export const SignedManifest = z.object({
  manifest: ArtifactManifest,
  /** Which key signed it: base64url of sha256(public key as SPKI DER), first 16 characters. */
  keyId: z.string().min(1).max(64),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "a base64 ed25519 signature"),
});
export type SignedManifest = z.infer<typeof SignedManifest>;

/**
 * Chunk hashes of one stored file, so a device can check a download piece by piece and
 * fetch again only a bad piece, not the whole file. The server computes them from the
 * blob it serves (`GET /api/artifacts/blobs/{sha256}/chunks`) and signs the list with the
 * manifest key, so a middlebox cannot swap them; the manifest's whole-file sha256 stays
 * the final word (a device checks it after the last chunk). They are not in the manifest:
 * adding them there would change the id and signature of every artifact stored before,
 * and agents that do not know them would refuse new manifests (zod drops unknown keys).
 *
 * Chunk i is bytes [i × chunkSize, min((i + 1) × chunkSize, size)); `chunks[i]` its sha256.
 */
export const BlobChunkList = z
  .object({
    /** Says what is signed, so a signed chunk list can never pass for a manifest, nor one for it. */
    type: z.literal("orchard.blob-chunks"),
    sha256: Sha256Hex,
    size: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 45),
    chunkSize: z
      .number()
      .int()
      .min(64 * 1024)
      .max(2 ** 40),
    chunks: z.array(Sha256Hex).max(4096),
  })
  .refine((c) => c.chunks.length === Math.ceil(c.size / c.chunkSize), "one sha256 per chunk of chunkSize bytes (the last may be shorter)");
export type BlobChunkList = z.infer<typeof BlobChunkList>;

/** A chunk list with its signature: base64 of the ed25519 signature over canonicalJson(list), with the manifest key. */
export const SignedBlobChunkList = z.object({
  list: BlobChunkList,
  keyId: z.string().min(1).max(64),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, "a base64 ed25519 signature"),
});
export type SignedBlobChunkList = z.infer<typeof SignedBlobChunkList>;

/** The chunk size the server uses: 8 MiB, doubled for files so big that a list would have more than 4096 chunks. */
export const BLOB_CHUNK_SIZE = 8 * 1024 * 1024;
export function blobChunkSize(size: number): number {
  let chunk = BLOB_CHUNK_SIZE;
  while (Math.ceil(size / chunk) > 4096) chunk *= 2;
  return chunk;
}

/** Bytes a model of this manifest occupies on disk. */
export function manifestBytes(m: Pick<ArtifactManifest, "files">): number {
  return m.files.reduce((n, f) => n + f.size, 0);
}

/**
 * JSON with object keys sorted at every level and no whitespace: the exact bytes a
 * signature covers. Arrays keep their order; undefined members are dropped as
 * JSON.stringify does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const s = JSON.stringify(value);
    if (s === undefined) throw new TypeError("canonicalJson: value is not representable in JSON");
    return s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

/** The artifact's id: sha256 of its canonical manifest (computed by the server; agents key their model folders by it). */
export const ArtifactId = Sha256Hex;

/** Bytes of a model file's start that `modelFileProblem` reads. */
export const MODEL_HEAD_BYTES = 8;

/**
 * Why `head` (the first MODEL_HEAD_BYTES of a model file, or all of a shorter one) is not a
 * model of `runtime`, or null when it looks like one. An ExecuTorch program is a flatbuffer
 * whose file identifier, bytes 4-7, is "ET" and two digits ("ET12" since ExecuTorch 0.4;
 * the runtime's Program::check_header reads the same bytes); a GGUF file starts with the 4
 * bytes "GGUF". sim files are not checked (any bytes make a simulated model).
 */
export function modelFileProblem(runtime: ArtifactRuntime, name: string, head: Uint8Array): string | null {
  const ascii = (from: number, to: number) => String.fromCharCode(...head.subarray(from, to));
  const isPte = head.length >= 8 && /^ET\d\d$/.test(ascii(4, 8));
  const isGguf = head.length >= 4 && ascii(0, 4) === "GGUF";
  if (runtime === "executorch") {
    if (isPte) return null;
    if (head.length < 8) return `${name} is not an ExecuTorch program: it has ${head.length} bytes, fewer than a .pte header.`;
    if (isGguf) return `${name} is not an ExecuTorch program: it is a GGUF file (runtime llama.cpp).`;
    return `${name} is not an ExecuTorch program: the file does not start with the .pte header (bytes 4-7 are a flatbuffer file identifier such as ET12). Export it with ExecuTorch (to_executorch().write_to_file or tools/export).`;
  }
  if (runtime === "llama.cpp") {
    if (isGguf) return null;
    if (isPte) return `${name} is not a GGUF file: it is an ExecuTorch program (runtime executorch).`;
    return `${name} is not a GGUF file: it does not start with the GGUF magic (the 4 bytes 'GGUF').`;
  }
  return null;
}

/**
 * Files a model of `runtime` cannot run without, missing from `names`, as a sentence; null
 * when none is missing. orchard-runner's executorch backend loads `tokenizer.json` from the
 * model's folder (docs/runner.md); tokenizer_config.json (the chat template) is optional.
 * A .gguf carries its tokenizer; a sim model needs nothing.
 */
export function missingModelFilesProblem(runtime: ArtifactRuntime, names: readonly string[]): string | null {
  if (runtime === "executorch" && !names.includes("tokenizer.json")) {
    return "An ExecuTorch model needs tokenizer.json beside it (the runner loads the tokenizer from the model's folder); add it to the model's files.";
  }
  return null;
}
