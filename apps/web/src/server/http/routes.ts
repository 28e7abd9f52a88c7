/**
 * Routes everything that is not the UI: health, metrics, enrollment, tRPC. Also
 * the gate in front of the UI: pages need a session, except the login page and
 * Next's static assets. Returns false when the request is the UI's to serve.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { EnrollRequest } from "@orchard/contracts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Services } from "../services/index.ts";
import { appRouter } from "../trpc/root.ts";
import type { TrpcContext } from "../trpc/init.ts";
import { createArtifactRoutes, type DownloadGate } from "./artifacts.ts";
import { createOpenAiRoutes } from "./openai.ts";
import { credentialsOf, originOf, readJsonBody, sendError, sendJson } from "./request.ts";

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

  const trpc = createHTTPHandler({
    router: appRouter,
    basePath: "/api/trpc/",
    createContext: async ({ req, res }): Promise<TrpcContext> => {
      const credentials = credentialsOf(req);
      const cookies: string[] = [];
      return {
        services,
        principal: await services.auth.resolve(credentials),
        sessionToken: credentials.sessionToken,
        origin: deps.publicUrl?.replace(/\/$/, "") ?? originOf(req),
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
      if (path === "/api/health" && req.method === "GET") {
        const health = await services.system.health();
        sendJson(res, health.status === "ok" ? 200 : 503, health);
        return true;
      }
      if (path === "/metrics" && req.method === "GET") {
        if (!(await services.auth.resolve(credentialsOf(req)))) {
          throw new AppError("unauthorized", "Scraping /metrics needs an API key (Authorization: Bearer …).");
        }
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(services.metrics.render());
        return true;
      }
      if (path === "/api/enroll") {
        if (req.method !== "POST") throw new AppError("bad_request", "Use POST.");
        const parsed = EnrollRequest.safeParse(await readJsonBody(req, 16 * 1024));
        if (!parsed.success)
          throw new AppError(
            "bad_request",
            `Invalid enrollment request: ${parsed.error.issues[0]?.path.join(".")} ${parsed.error.issues[0]?.message}`,
          );
        const response = await services.enrollment.enroll(parsed.data, deps.mqttUrlFor(req));
        log.info("device enrolled", { device: response.deviceId, name: response.name });
        sendJson(res, 201, response);
        return true;
      }
      if (path.startsWith("/api/trpc/")) {
        trpc(req, res);
        return true;
      }
      const benchExport = /^\/api\/benchmarks\/([A-Za-z0-9_-]{1,64})\.(csv|md)$/.exec(path);
      if (benchExport) {
        if (req.method !== "GET") throw new AppError("bad_request", "Use GET.");
        if (!(await services.auth.resolve(credentialsOf(req)))) {
          throw new AppError("unauthorized", "Downloading benchmark results needs a session or an API key (Authorization: Bearer …).");
        }
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
      if (await artifacts(req, res, path)) return true;
      if (path.startsWith("/api/")) throw new AppError("not_found", `No API endpoint ${path}.`);
      if (await openai(req, res, path)) return true;

      // The UI: everything but the login page and static assets needs a session.
      if (PUBLIC_UI_PREFIXES.some((p) => path === p || path.startsWith(p))) return false;
      const principal = await services.auth.fromSession(credentialsOf(req).sessionToken);
      if (!principal) {
        res.writeHead(302, { location: `/login?next=${encodeURIComponent(path + url.search)}`, "cache-control": "no-store" });
        res.end();
        return true;
      }
      return false;
    } catch (err) {
      if (!(err instanceof AppError)) log.error("request failed", { path, error: (err as Error).message });
      sendError(res, err);
      return true;
    }
  };
}
