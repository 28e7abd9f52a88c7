/**
 * The server's artifact signing key, for agents enrolled before enrollment handed it
 * out: fetched once from `GET /api/device/artifact-key` with the device's broker
 * credentials (Basic auth), checked (an ed25519 SPKI key whose id is the one the
 * server names) and saved in agent.json.
 */
import { ApiError, ArtifactKeyResponse } from "@orchard/contracts";
import { ArtifactKeyError, artifactKeyId, parseArtifactPublicKey } from "./signature.js";

/** Basic auth for the device's own HTTP requests (downloads, the key): device id and broker password. */
export function deviceAuthorization(deviceId: string, password: string): string {
  return `Basic ${Buffer.from(`${deviceId}:${password}`).toString("base64")}`;
}

export async function fetchArtifactKey(params: {
  serverUrl: string;
  authorization: string;
  timeoutMs?: number;
  /** fetch with the CAs the agent trusts (lib/trust.ts); the global one by default. */
  fetch?: typeof fetch;
}): Promise<string> {
  const url = `${params.serverUrl.replace(/\/+$/, "")}/api/device/artifact-key`;
  let response: Response;
  try {
    response = await (params.fetch ?? fetch)(url, {
      headers: { authorization: params.authorization, accept: "application/json" },
      signal: AbortSignal.timeout(params.timeoutMs ?? 15_000),
      redirect: "error",
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new ArtifactKeyError(`cannot reach ${url}: ${cause?.code ?? (error as Error).message}`);
  }
  const text = await response.text().catch(() => "");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const api = ApiError.safeParse(json);
    throw new ArtifactKeyError(
      `${url} answered HTTP ${response.status}${api.success ? `: ${api.data.error.message} (${api.data.error.code})` : ""}`,
    );
  }
  const parsed = ArtifactKeyResponse.safeParse(json);
  if (!parsed.success) throw new ArtifactKeyError(`${url} did not answer with an artifact key`);
  parseArtifactPublicKey(parsed.data.artifactPublicKey);
  const ours = artifactKeyId(parsed.data.artifactPublicKey);
  if (ours !== parsed.data.keyId) {
    throw new ArtifactKeyError(`${url} named key ${parsed.data.keyId}, but the key it sent has the id ${ours}`);
  }
  return parsed.data.artifactPublicKey;
}
