/**
 * tRPC setup: the request context, the error formatter that turns AppError into
 * tRPC codes, and the kinds of procedure. Every procedure but the login needs a
 * signed-in caller with at least a role: `viewerProcedure` (read), `operatorProcedure`
 * (rollouts, chat, benchmarks), `adminProcedure` (everything). The role each one
 * needs is also its `meta.minRole`, which the access test enumerates.
 */
import { initTRPC, TRPCError } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import { ZodError } from "zod";
import { AppError, type AppErrorCode } from "../errors.ts";
import { TRPC_MAX_BODY_BYTES, bodyTooLarge } from "../http/request.ts";
import { requireRole, type Principal, type Role } from "../services/auth.ts";
import type { Services } from "../services/index.ts";

export interface TrpcContext {
  services: Services;
  principal: Principal | null;
  /** Raw session cookie, for logout. */
  sessionToken: string | undefined;
  /** Set-Cookie from a procedure (login, logout). */
  setCookie: (cookie: string) => void;
  /** ORCHARD_PUBLIC_URL, else the origin the browser used (scheme://host:port): for commands that point back at this server. */
  origin: string;
  /** The address the request came from (the login limit counts failures per address). */
  clientIp: string | undefined;
  /** The request's User-Agent (kept with a new session, for the account page). */
  userAgent?: string | undefined;
}

const TRPC_CODES: Record<AppErrorCode, TRPC_ERROR_CODE_KEY> = {
  bad_request: "BAD_REQUEST",
  unauthorized: "UNAUTHORIZED",
  forbidden: "FORBIDDEN",
  not_found: "NOT_FOUND",
  conflict: "CONFLICT",
  gone: "NOT_FOUND",
  payload_too_large: "PAYLOAD_TOO_LARGE",
  too_many_requests: "TOO_MANY_REQUESTS",
  unavailable: "SERVICE_UNAVAILABLE",
};

export interface ProcedureMeta {
  /** The lowest role that may call the procedure; absent only on public ones (login). */
  minRole?: Role;
}

const t = initTRPC
  .context<TrpcContext>()
  .meta<ProcedureMeta>()
  .create({
    errorFormatter({ shape, error }) {
      return {
        ...shape,
        // tRPC's own refusal of a body that grew past maxBodySize while being read says only its code.
        message:
          error.code === "PAYLOAD_TOO_LARGE" && error.message === "PAYLOAD_TOO_LARGE"
            ? bodyTooLarge(TRPC_MAX_BODY_BYTES).message
            : shape.message,
        data: {
          ...shape.data,
          stack: undefined,
          zodIssues: error.cause instanceof ZodError ? error.cause.issues.map((i) => `${i.path.join(".")}: ${i.message}`) : undefined,
        },
      };
    },
  });

/** Maps AppError thrown by services to tRPC errors with the same message. */
const appErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof AppError) {
    const cause = result.error.cause;
    throw new TRPCError({ code: TRPC_CODES[cause.code], message: cause.message, cause });
  }
  return result;
});

export const router = t.router;
export const publicProcedure = t.procedure.use(appErrors);

/**
 * A procedure for callers with at least `minRole`: 401 without a caller, 403 with a lower role
 * (the same `requireRole` REST and socket.io use). It runs before the input is parsed, so a
 * caller without the role learns nothing about the input the procedure expects.
 */
function withRole(minRole: Role) {
  return publicProcedure.meta({ minRole }).use(({ ctx, next }) => {
    const principal = requireRole(ctx.principal, minRole);
    return next({ ctx: { ...ctx, principal } });
  });
}

export const viewerProcedure = withRole("viewer");
export const operatorProcedure = withRole("operator");
export const adminProcedure = withRole("admin");
