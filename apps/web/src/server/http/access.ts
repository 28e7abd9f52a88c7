/**
 * Who may call which REST endpoint: one table, enforced in front of every handler by
 * routes.ts (a path under /api/, /v1/ or /metrics that is not in the table is a 404, so an
 * endpoint cannot exist without an entry) and walked by the access test. tRPC procedures
 * carry their role as `meta.minRole` instead; socket.io needs a viewer to connect.
 */
import type { IncomingMessage } from "node:http";
import { AppError } from "../errors.ts";
import { requireRole, type Principal, type Role } from "../services/auth.ts";
import { credentialsOf } from "./request.ts";

/**
 * - a role: a session or API key of at least that role (requireRole)
 * - "public": anyone (health)
 * - "enrollment_token": anyone; the single-use token in the body is the credential
 * - "device": an enrolled device (Basic auth with its id and broker password), checked by the handler
 * - "procedure": tRPC; each procedure's meta.minRole
 */
export type RouteAccess = Role | "public" | "enrollment_token" | "device" | "procedure";

export interface RestRoute {
  /** For people: the path with its parameters named. */
  path: string;
  /** A concrete path the pattern matches (the access test calls it). */
  example: string;
  pattern: RegExp;
  methods: string[];
  access: RouteAccess;
  /** Completes "… needs the operator role" in a refusal. */
  what: string;
}

const ID = "[A-Za-z0-9_-]{1,64}";

export const REST_ROUTES: RestRoute[] = [
  { path: "/api/health", example: "/api/health", pattern: /^\/api\/health$/, methods: ["GET"], access: "public", what: "Health" },
  { path: "/metrics", example: "/metrics", pattern: /^\/metrics$/, methods: ["GET"], access: "viewer", what: "Scraping /metrics" },
  {
    path: "/api/enroll",
    example: "/api/enroll",
    pattern: /^\/api\/enroll$/,
    methods: ["POST"],
    access: "enrollment_token",
    what: "Enrolling",
  },
  {
    path: "/api/trpc/{procedure}",
    example: "/api/trpc/system.info",
    pattern: /^\/api\/trpc\//,
    methods: ["GET", "POST"],
    access: "procedure",
    what: "tRPC",
  },
  {
    path: "/api/benchmarks/{id}.{csv|md}",
    example: "/api/benchmarks/run_1.csv",
    pattern: new RegExp(`^/api/benchmarks/${ID}\\.(csv|md)$`),
    methods: ["GET"],
    access: "viewer",
    what: "Downloading benchmark results",
  },
  {
    path: "/api/uploads",
    example: "/api/uploads",
    pattern: /^\/api\/uploads$/,
    methods: ["POST"],
    access: "operator",
    what: "Uploading a model",
  },
  {
    path: "/api/uploads/{id}",
    example: "/api/uploads/up_1",
    pattern: /^\/api\/uploads\/[^/]+$/,
    methods: ["GET", "HEAD"],
    access: "viewer",
    what: "Reading an upload",
  },
  {
    path: "/api/uploads/{id}",
    example: "/api/uploads/up_1",
    pattern: /^\/api\/uploads\/[^/]+$/,
    methods: ["PATCH", "DELETE"],
    access: "operator",
    what: "Uploading a model",
  },
  {
    path: "/api/artifacts/blobs/{sha256}",
    example: "/api/artifacts/blobs/0000000000000000000000000000000000000000000000000000000000000000",
    pattern: /^\/api\/artifacts\/blobs\/[^/]+$/,
    methods: ["GET", "HEAD"],
    access: "device",
    what: "Downloading a model file",
  },
  {
    path: "/api/artifacts/blobs/{sha256}/chunks",
    example: "/api/artifacts/blobs/0000000000000000000000000000000000000000000000000000000000000000/chunks",
    pattern: /^\/api\/artifacts\/blobs\/[^/]+\/chunks$/,
    methods: ["GET"],
    access: "device",
    what: "A model file's chunk hashes",
  },
  {
    path: "/api/device/artifact-key",
    example: "/api/device/artifact-key",
    pattern: /^\/api\/device\/artifact-key$/,
    methods: ["GET"],
    access: "device",
    what: "The signing key",
  },
  { path: "/v1/models", example: "/v1/models", pattern: /^\/v1\/models$/, methods: ["GET"], access: "viewer", what: "Listing models" },
  {
    path: "/v1/chat/completions",
    example: "/v1/chat/completions",
    pattern: /^\/v1\/chat\/completions$/,
    methods: ["POST"],
    access: "operator",
    what: "Chatting with a device",
  },
];

/** Paths the table governs: anything else is the UI's (with its own session gate). */
export function isApiPath(path: string): boolean {
  return path.startsWith("/api/") || path.startsWith("/v1/") || path === "/metrics";
}

/** The table's entry for a request; throws 404 for an unknown path and 400 naming the methods for a known path with another method. */
export function routeFor(method: string | undefined, path: string): RestRoute {
  const forPath = REST_ROUTES.filter((r) => r.pattern.test(path));
  if (forPath.length === 0) throw new AppError("not_found", `No API endpoint ${path}.`);
  const route = forPath.find((r) => r.methods.includes(method ?? "GET"));
  if (!route) throw new AppError("bad_request", `Use ${[...new Set(forPath.flatMap((r) => r.methods))].join(", ")} on ${path}.`);
  return route;
}

/**
 * Applies the route's access rule: the caller for role routes (401/403 otherwise); for tRPC the
 * caller or null (each procedure checks its role), refused with 401 when the request sends an API
 * key that is not valid; null for routes whose credential is checked elsewhere (public,
 * enrollment token, device).
 */
export async function authorize(
  resolve: (credentials: ReturnType<typeof credentialsOf>) => Promise<Principal | null>,
  req: IncomingMessage,
  route: RestRoute,
): Promise<Principal | null> {
  switch (route.access) {
    case "public":
    case "enrollment_token":
    case "device":
      return null;
    case "procedure":
      return resolve(credentialsOf(req));
    default:
      return requireRole(await resolve(credentialsOf(req)), route.access, route.what);
  }
}
