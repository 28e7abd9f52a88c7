/** HTTP contracts between the agent and the server (enrollment), and the REST endpoints tools read. */
import { z } from "zod";

export const EnrollRequest = z.object({
  token: z.string().min(8).max(128),
  hostname: z.string().min(1).max(255),
  arch: z.string().max(32),
  agentVersion: z.string().max(64),
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({
  deviceId: z.string(),
  name: z.string(),
  /** Where the agent connects; derived from the URL it enrolled with unless the server overrides it. */
  mqttUrl: z.string().url(),
  mqttUsername: z.string(),
  mqttPassword: z.string(),
  /**
   * The server's ed25519 artifact-signing public key (SPKI DER, base64): agents verify every
   * rollout manifest with it. Absent from servers older than rollouts; such agents (and agents
   * enrolled before) fetch it from `GET /api/device/artifact-key` (ArtifactKeyResponse).
   */
  artifactPublicKey: z.string().min(1).max(512).optional(),
});
export type EnrollResponse = z.infer<typeof EnrollResponse>;

/** `GET /api/device/artifact-key` (Basic auth: device id and broker password): the key rollout manifests are signed with. */
export const ArtifactKeyResponse = z.object({
  artifactPublicKey: z.string().min(1).max(512),
  /** base64url of sha256(SPKI DER), first 16 characters: the keyId in SignedManifest. */
  keyId: z.string().min(1).max(64),
});
export type ArtifactKeyResponse = z.infer<typeof ArtifactKeyResponse>;

/** Error body of every REST endpoint: a stable code and a sentence a person can act on. */
export const ApiError = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ApiError = z.infer<typeof ApiError>;

export const HealthResponse = z.object({
  status: z.enum(["ok", "degraded"]),
  db: z.enum(["ok", "down"]),
  broker: z.enum(["ok", "down"]),
  version: z.string(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;
