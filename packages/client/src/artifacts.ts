/**
 * What the server says about models (artifacts) and the uploads that bring their files
 * in: the shapes the `artifacts` tRPC router returns, shared by the Models page and the
 * `orchard artifact` CLI.
 */
import { z } from "zod";
import { ArtifactFile, ArtifactId, ArtifactRuntime, ReferenceCheck, Sha256Hex } from "@orchard/contracts";

export const UPLOAD_STATES = ["receiving", "complete", "failed"] as const;
export const UploadState = z.enum(UPLOAD_STATES);
export type UploadState = z.infer<typeof UploadState>;

export const UploadDto = z.object({
  id: z.string(),
  /** The name the file had where it came from (a label; the artifact's file names are chosen when it is created). */
  name: z.string(),
  /** Bytes the file has; null for a download from a URL whose size is not known yet. */
  size: z.number().int().nonnegative().nullable(),
  received: z.number().int().nonnegative(),
  state: UploadState,
  /** Set once complete: the sha256 computed while receiving. */
  sha256: Sha256Hex.nullable(),
  sourceUrl: z.string().nullable(),
  expectedSha256: Sha256Hex.nullable(),
  error: z.string().nullable(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type UploadDto = z.infer<typeof UploadDto>;

/** A device that has the model: running it, or keeping it for a rollback. */
export const ArtifactDeviceRef = z.object({
  id: z.string(),
  name: z.string(),
  online: z.boolean(),
  role: z.enum(["active", "previous"]),
});
export type ArtifactDeviceRef = z.infer<typeof ArtifactDeviceRef>;

export const ARTIFACT_SOURCES = ["upload", "url", "cli"] as const;

export const ArtifactDto = z.object({
  id: ArtifactId,
  name: z.string(),
  version: z.string(),
  runtime: ArtifactRuntime,
  runtimeVersion: z.string(),
  profile: z.string().nullable(),
  maxContext: z.number().nullable(),
  files: z.array(ArtifactFile),
  reference: ReferenceCheck.nullable(),
  totalBytes: z.number(),
  source: z.enum(ARTIFACT_SOURCES),
  keyId: z.string(),
  createdAt: z.number(),
  devices: z.array(ArtifactDeviceRef),
});
export type ArtifactDto = z.infer<typeof ArtifactDto>;

/** "1,2, 3" or "[1, 2, 3]" → [1, 2, 3]; null for an empty string; throws with a sentence for anything else. */
export function parseTokenIds(text: string): number[] | null {
  const trimmed = text.trim().replace(/^\[/, "").replace(/\]$/, "").trim();
  if (trimmed === "") return null;
  const ids = trimmed.split(/[\s,]+/).map((part) => {
    if (!/^\d+$/.test(part)) throw new Error(`"${part}" is not a token id (whole numbers separated by commas)`);
    return Number(part);
  });
  if (ids.length > 256) throw new Error("at most 256 expected token ids");
  return ids;
}

/** The role a file given besides the model gets, from its name: tokenizer.json → tokenizer, tokenizer_config.json → tokenizer_config, chat_template.jinja → other. */
export function roleForFileName(name: string): "tokenizer" | "tokenizer_config" | "other" {
  if (/^tokenizer_config\.json$/i.test(name)) return "tokenizer_config";
  if (/^tokenizer\b/i.test(name) || /\.(model|tiktoken)$/i.test(name)) return "tokenizer";
  return "other";
}
