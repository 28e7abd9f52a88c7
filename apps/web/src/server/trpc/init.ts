/**
 * tRPC setup: the request context, the error formatter that turns AppError into
 * tRPC codes, and the two kinds of procedure. Every procedure except the login
 * is `protectedProcedure`.
 */
import { initTRPC, TRPCError } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import { ZodError } from "zod";
import { AppError, type AppErrorCode } from "../errors.ts";
import type { Principal } from "../services/auth.ts";
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
}

const TRPC_CODES: Record<AppErrorCode, TRPC_ERROR_CODE_KEY> = {
  bad_request: "BAD_REQUEST",
  unauthorized: "UNAUTHORIZED",
  forbidden: "FORBIDDEN",
  not_found: "NOT_FOUND",
  conflict: "CONFLICT",
  gone: "NOT_FOUND",
  unavailable: "SERVICE_UNAVAILABLE",
};

const t = initTRPC.context<TrpcContext>().create({
  errorFormatter({ shape, error }) {
    return {
      ...shape,
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
export const protectedProcedure = publicProcedure.use(({ ctx, next }) => {
  if (!ctx.principal) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in first." });
  return next({ ctx: { ...ctx, principal: ctx.principal } });
});
