/**
 * Enrollment over HTTP: trade a single-use token from the dashboard for a device
 * identity and broker credentials (POST /api/enroll, contracts' api.ts).
 */
import { ApiError, EnrollRequest, EnrollResponse, isValidDeviceId } from "@orchard/contracts";
import { MqttUrl } from "../config/agent-file.js";
import { SYSTEM_TRUST, describeCertificateError, type Trust } from "../lib/trust.js";
import { parseArtifactPublicKey } from "../rollout/signature.js";

export class EnrollError extends Error {
  override readonly name = "EnrollError";
}

export interface EnrollParams {
  serverUrl: string;
  token: string;
  hostname: string;
  arch: string;
  agentVersion: string;
  timeoutMs?: number;
  /** The CAs to trust for an https:// server (default: the system's). */
  trust?: Trust;
}

function describeFetchFailure(error: unknown, serverUrl: string, timeoutMs: number, trust: Trust): string {
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer from ${serverUrl} within ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`}`;
  }
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const certificate = describeCertificateError(cause?.code, trust);
  if (certificate) return `cannot reach ${serverUrl}: ${certificate}`;
  const reasons: Record<string, string> = {
    ECONNREFUSED: "connection refused (is the server running on that port?)",
    ENOTFOUND: "host not found",
    EHOSTUNREACH: "host unreachable",
    ETIMEDOUT: "connection timed out",
    ECONNRESET: "connection reset",
  };
  const reason = (cause?.code && reasons[cause.code]) ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
  return `cannot reach ${serverUrl}: ${reason}`;
}

export async function requestEnrollment(params: EnrollParams): Promise<EnrollResponse> {
  const timeoutMs = params.timeoutMs ?? 15_000;
  const body = EnrollRequest.parse({
    token: params.token,
    hostname: params.hostname.slice(0, 255) || "unknown",
    arch: params.arch.slice(0, 32),
    agentVersion: params.agentVersion.slice(0, 64),
  });
  const url = `${params.serverUrl.replace(/\/+$/, "")}/api/enroll`;

  const trust = params.trust ?? SYSTEM_TRUST;
  let response: Response;
  try {
    response = await trust.fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: "error",
    });
  } catch (error) {
    throw new EnrollError(describeFetchFailure(error, params.serverUrl, timeoutMs, trust));
  }

  const text = await response.text().catch(() => "");
  let json: unknown = undefined;
  try {
    json = JSON.parse(text);
  } catch {
    // Not JSON: reported below with the status.
  }

  if (response.status !== 201 && response.status !== 200) {
    const apiError = ApiError.safeParse(json);
    if (apiError.success) {
      throw new EnrollError(`enrollment refused: ${apiError.data.error.message} (${apiError.data.error.code})`);
    }
    const snippet = text.trim().slice(0, 200);
    throw new EnrollError(`enrollment failed: ${url} answered HTTP ${response.status}${snippet ? `: ${snippet}` : ""}`);
  }

  const parsed = EnrollResponse.safeParse(json);
  if (!parsed.success) {
    throw new EnrollError(
      `enrollment failed: ${url} answered ${response.status} without a valid enrollment (${parsed.error.issues[0]?.message ?? "not JSON"})`,
    );
  }
  if (!isValidDeviceId(parsed.data.deviceId)) {
    throw new EnrollError(
      `enrollment failed: the server issued a device id this agent cannot use: ${JSON.stringify(parsed.data.deviceId)}`,
    );
  }
  if (!MqttUrl.safeParse(parsed.data.mqttUrl).success) {
    throw new EnrollError(`enrollment failed: the server issued a broker URL this agent cannot use: ${parsed.data.mqttUrl}`);
  }
  if (parsed.data.artifactPublicKey !== undefined) {
    try {
      parseArtifactPublicKey(parsed.data.artifactPublicKey);
    } catch (error) {
      throw new EnrollError(`enrollment failed: the server sent an artifact key this agent cannot use (${(error as Error).message})`);
    }
  }
  return parsed.data;
}
