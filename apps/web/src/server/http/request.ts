/** Small helpers for plain Node HTTP handlers: credentials, origin, JSON bodies and replies. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type ApiError } from "@orchard/contracts";
import { AppError, HTTP_STATUS } from "../errors.ts";
import { SESSION_COOKIE, parseCookies } from "./cookies.ts";

export function credentialsOf(req: IncomingMessage): { sessionToken?: string; bearer?: string } {
  const auth = req.headers.authorization;
  const bearer = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
  return { sessionToken: parseCookies(req.headers.cookie)[SESSION_COOKIE], bearer };
}

/** scheme://host[:port] as the client addressed this server. */
export function originOf(req: IncomingMessage): string {
  const proto =
    (req.headers["x-forwarded-proto"] as string | undefined)?.split(",")[0]?.trim() ?? ("encrypted" in req.socket ? "https" : "http");
  const host = req.headers.host ?? "localhost";
  return `${proto}://${host}`;
}

export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new AppError("bad_request", `Request body is larger than ${maxBytes} bytes.`);
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
