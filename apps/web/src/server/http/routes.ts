/**
 * Routes everything that is not the UI: health, metrics, enrollment, tRPC, models,
 * the OpenAI-compatible API. In front of them, for every request: the same-origin check
 * for changes made with the session cookie (CSRF), then the access table (access.ts)
 * with its role per endpoint, then body limits. Also the gate in front of the UI: pages
 * need a session, except the login page and Next's static assets. Returns false when the
 * request is the UI's to serve.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { AppError, HTTP_STATUS } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Principal } from "../services/auth.ts";
import { EnrollInput } from "../services/enrollment.ts";
import type { Services } from "../services/index.ts";
import { appRouter } from "../trpc/root.ts";
import type { TrpcContext } from "../trpc/init.ts";
import { createArtifactRoutes, type DownloadGate } from "./artifacts.ts";
import { authorize, isApiPath, routeFor } from "./access.ts";
import { createOpenAiRoutes, sendOpenAiAppError } from "./openai.ts";
import {
  TRPC_MAX_BODY_BYTES,
  announcesMoreThan,
  assertSameOrigin,
  bodyTooLarge,
  clientIpOf,
  credentialsOf,
  needsSameOrigin,
  originOf,
  readJsonBody,
  sendError,
  sendJson,
} from "./request.ts";

const PUBLIC_UI_PREFIXES = ["/login", "/_next/", "/favicon.ico", "/icon", "/manifest"];

export function createRoutes(deps: {
  services: Services;
  log: Logger;
  mqttUrlFor: (req: IncomingMessage) => string;
  /** ORCHARD_PUBLIC_URL: how Pis reach this server, when it differs from what the browser used. */
  publicUrl?: string;
  /** Caps model file downloads in flight (ORCHARD_MAX_CONCURRENT_DOWNLOADS). */
  downloads: DownloadGate;
}) {
  const { services, log } = deps;
  /** The caller of a tRPC request, resolved (and an invalid API key refused) before tRPC sees it. */
  const trpcCallers = new WeakMap<IncomingMessage, Principal | null>();

  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: "/api/trpc/",
    // Bodies without a Content-Length (chunked) are counted while read; the rest are checked before (handle below).
    maxBodySize: TRPC_MAX_BODY_BYTES,
    createContext: async ({ req, res }): Promise<TrpcContext> => {
      const credentials = credentialsOf(req);
      const cookies: string[] = [];
      return {
        services,
        principal: trpcCallers.get(req) ?? null,
        // The cookie only when it is the credential (logout with an API key does not end the browser's session).
        sessionToken: credentials.bearer === undefined ? credentials.sessionToken : undefined,
        origin: deps.publicUrl?.replace(/\/$/, "") ?? originOf(req),
        clientIp: clientIpOf(req),
        userAgent: req.headers["user-agent"],
        setCookie: (cookie) => {
          cookies.push(cookie);
          res.setHeader("set-cookie", cookies);
        },
      };
    },
    onError: ({ error, path }) => {
      if (error.code === "INTERNAL_SERVER_ERROR") log.error("tRPC procedure failed", { path, error: error.message });
    },
  });

  const openai = createOpenAiRoutes({ services, log: log.child("openai") });
  const artifacts = createArtifactRoutes({ services, log: log.child("artifacts"), downloads: deps.downloads });

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    try {
      if (needsSameOrigin(req)) assertSameOrigin(req, deps.publicUrl);
      const route = isApiPath(path) ? routeFor(req.method, path) : null;
      const principal = route ? await authorize((c) => services.auth.resolve(c), req, route) : null;

      if (path === "/api/health" && req.method === "GET") {
        const health = await services.system.health();
        sendJson(res, health.status === "ok" ? 200 : 503, health);
        return true;
      }
      if (path === "/metrics" && req.method === "GET") {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(services.metrics.render());
        return true;
      }
      if (path === "/api/enroll") {
        const parsed = EnrollInput.safeParse(await readJsonBody(req, 16 * 1024));
        if (!parsed.success)
          throw new AppError(
            "bad_request",
            `Invalid enrollment request: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`,
          );
        const response = await services.enrollment.enroll(parsed.data, deps.mqttUrlFor(req));
        log.info("device enrolled", { device: response.deviceId, name: response.name });
        await services.audit.record(
          { userId: null, username: response.name, via: "enrollment_token" },
          "device.enrolled",
          { type: "device", id: response.deviceId },
          { name: response.name, hostname: parsed.data.hostname, arch: parsed.data.arch },
        );
        sendJson(res, 201, response);
        return true;
      }
      if (path.startsWith("/api/trpc/")) {
        if (announcesMoreThan(req, TRPC_MAX_BODY_BYTES)) throw bodyTooLarge(TRPC_MAX_BODY_BYTES);
        trpcCallers.set(req, principal);
        trpc(req, res);
        return true;
      }
      const benchExport = /^\/api\/benchmarks\/([A-Za-z0-9_-]{1,64})\.(csv|md)$/.exec(path);
      if (benchExport) {
        const file = await services.benchmarks.export(benchExport[1]!, benchExport[2] === "csv" ? "csv" : "md");
        // The file name is the run's name reduced to [a-z0-9-] plus its id: nothing to quote.
        res.writeHead(200, {
          "content-type": file.contentType,
          "content-disposition": `attachment; filename="${file.fileName}"`,
          "cache-control": "no-store",
        });
        res.end(file.body);
        return true;
      }
      if (await artifacts(req, res, path, principal)) return true;
      if (path.startsWith("/api/")) throw new AppError("not_found", `No API endpoint ${path}.`);
      if (await openai(req, res, path, principal)) return true;

      // The UI: everything but the login page and static assets needs a session.
      if (PUBLIC_UI_PREFIXES.some((p) => path === p || path.startsWith(p))) return false;
      const viewer = await services.auth.fromSession(credentialsOf(req).sessionToken);
      if (!viewer) {
        res.writeHead(302, { location: `/login?next=${encodeURIComponent(path + url.search)}`, "cache-control": "no-store" });
        res.end();
        return true;
      }
      return false;
    } catch (err) {
      if (!(err instanceof AppError)) log.error("request failed", { path, error: (err as Error).message });
      // Refused before the body was read: close rather than read the rest of it for nothing.
      if (!req.complete && req.method !== "GET" && req.method !== "HEAD") res.setHeader("connection", "close");
      if (path.startsWith("/api/trpc/") && err instanceof AppError) sendTrpcError(res, err);
      else if (path.startsWith("/v1/") && err instanceof AppError) sendOpenAiAppError(res, err);
      else sendError(res, err);
      return true;
    }
  };
}

const TRPC_ERROR_CODES: Partial<Record<AppError["code"], { key: string; jsonRpc: number }>> = {
  unauthorized: { key: "UNAUTHORIZED", jsonRpc: -32001 },
  forbidden: { key: "FORBIDDEN", jsonRpc: -32003 },
  payload_too_large: { key: "PAYLOAD_TOO_LARGE", jsonRpc: -32413 },
};

/** A refusal made before tRPC saw the request, in tRPC's error shape so the dashboard's client shows its message. */
function sendTrpcError(res: ServerResponse, err: AppError): void {
  const code = TRPC_ERROR_CODES[err.code] ?? { key: "BAD_REQUEST", jsonRpc: -32600 };
  const status = HTTP_STATUS[err.code];
  sendJson(res, status, { error: { message: err.message, code: code.jsonRpc, data: { code: code.key, httpStatus: status } } });
}
