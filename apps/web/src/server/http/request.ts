/** Small helpers for plain Node HTTP handlers: credentials, origin and same-origin checks, JSON bodies and replies. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type ApiError } from "@orchard/contracts";
import { formatBytes } from "@orchard/format";
import { AppError, HTTP_STATUS } from "../errors.ts";
import { SESSION_COOKIE, parseCookies } from "./cookies.ts";

/**
 * The session cookie and the API key (`Authorization: Bearer …`) a request carries. A Bearer header
 * with an empty or missing key is a bearer of "" (refused as an invalid key, never ignored); other
 * schemes (a device's Basic) are not a user's bearer.
 */
export function credentialsOf(req: IncomingMessage): { sessionToken?: string; bearer?: string } {
  const auth = /^Bearer(?:\s+(.*))?$/i.exec(req.headers.authorization?.trim() ?? "");
  const bearer = auth ? (auth[1] ?? "").trim() : undefined;
  return { sessionToken: parseCookies(req.headers.cookie)[SESSION_COOKIE], bearer };
}

/** The most a tRPC request body may be (checked against Content-Length first, then counted while reading). */
export const TRPC_MAX_BODY_BYTES = 1024 * 1024;

/** The address the request came from (the proxy's, behind a reverse proxy). */
export function clientIpOf(req: IncomingMessage): string | undefined {
  return req.socket.remoteAddress ?? undefined;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Whether the request must prove it comes from the dashboard itself (CSRF): it changes
 * something and its only credential is the session cookie, which a browser attaches to
 * requests other sites make too. Requests with an API key carry no ambient credential
 * (and one whose key is not valid is refused with 401, never served with the cookie: AuthService.resolve).
 */
export function needsSameOrigin(req: IncomingMessage): boolean {
  if (req.method && SAFE_METHODS.has(req.method)) return false;
  const { sessionToken, bearer } = credentialsOf(req);
  return sessionToken !== undefined && bearer === undefined;
}

/**
 * Refuses (403) a request whose Origin is not this server: ORCHARD_PUBLIC_URL or the Host the
 * request came to. Without an Origin header only `Sec-Fetch-Site: same-origin` passes.
 */
export function assertSameOrigin(req: IncomingMessage, publicUrl: string | undefined): void {
  const origin = req.headers.origin;
  if (origin === undefined) {
    if (req.headers["sec-fetch-site"] === "same-origin") return;
  } else if (sameOrigin(origin, req, publicUrl)) {
    return;
  }
  const expected = [publicUrl ? new URL(publicUrl).origin : null, originOf(req)].filter((o) => o !== null).join(" or ");
  throw new AppError(
    "forbidden",
    `Cross-site request refused: a change made with the dashboard's session cookie must come from the dashboard ` +
      `(${expected}), not from ${origin ?? "a page that sent no Origin header"}. Scripts should send an API key (Authorization: Bearer …).`,
  );
}

function sameOrigin(origin: string, req: IncomingMessage, publicUrl: string | undefined): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:) or garbage
  }
  if (publicUrl && url.origin === new URL(publicUrl).origin) return true;
  // The host the browser addressed; the scheme is left out because a TLS proxy may not say X-Forwarded-Proto.
  const host = req.headers.host;
  if (!host) return false;
  try {
    return url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

/** scheme://host[:port] as the client addressed this server. */
export function originOf(req: IncomingMessage): string {
  const proto =
    (req.headers["x-forwarded-proto"] as string | undefined)?.split(",")[0]?.trim() ?? ("encrypted" in req.socket ? "https" : "http");
  const host = req.headers.host ?? "localhost";
  return `${proto}://${host}`;
}

/** The 413 a body over `maxBytes` gets (before it is read when Content-Length says so, else as soon as the count passes it). */
export function bodyTooLarge(maxBytes: number): AppError {
  return new AppError(
    "payload_too_large",
    `The request body is over the ${formatBytes(maxBytes, { trimZero: true })} limit (${maxBytes} bytes); nothing was changed.`,
  );
}

/** Whether Content-Length announces more than `maxBytes` (nothing read yet). */
export function announcesMoreThan(req: IncomingMessage, maxBytes: number): boolean {
  const length = req.headers["content-length"];
  return length !== undefined && Number(length) > maxBytes;
}

export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  if (announcesMoreThan(req, maxBytes)) throw bodyTooLarge(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw bodyTooLarge(maxBytes);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new AppError("bad_request", "Request body is not valid JSON.");
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof AppError) {
    sendJson(res, HTTP_STATUS[err.code], { error: { code: err.code, message: err.message } } satisfies ApiError);
  } else {
    sendJson(res, 500, { error: { code: "internal", message: "Internal error; see the server log." } } satisfies ApiError);
  }
}
