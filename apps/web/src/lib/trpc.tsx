"use client";
/**
 * The browser's tRPC client and react-query cache. The API is served by the
 * Orchard process at /api/trpc (not a Next route); only its type is imported
 * from the server code. A request refused for lack of a session sends the user
 * to the login page, coming back to where they were.
 */
import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { TRPCClientError, createTRPCClient, httpBatchLink } from "@trpc/client";
import { createTRPCContext } from "@trpc/tanstack-react-query";
import type { inferRouterInputs, inferRouterOutputs } from "@trpc/server";
import { useState, type ReactNode } from "react";
import type { AppRouter } from "@orchard/web/router";

export type RouterOutputs = inferRouterOutputs<AppRouter>;
export type RouterInputs = inferRouterInputs<AppRouter>;

export const { TRPCProvider, useTRPC, useTRPCClient } = createTRPCContext<AppRouter>();

type ApiError = TRPCClientError<AppRouter>;

function isApiError(err: unknown): err is ApiError {
  return err instanceof TRPCClientError;
}

/** The server's tRPC code (UNAUTHORIZED, NOT_FOUND, …) of a failed call, if it got that far. */
export function errorCode(err: unknown): string | undefined {
  return isApiError(err) ? err.data?.code : undefined;
}

/** The sentence to show a person for a failed call: the server's message, or what went wrong on the way. */
export function errorMessage(err: unknown): string {
  if (isApiError(err)) {
    const issues = err.data?.zodIssues;
    if (issues && issues.length > 0) return issues.join("; ");
    if (err.message === "Failed to fetch" || err.message.startsWith("NetworkError")) {
      return "The Orchard server cannot be reached. Check that it is running.";
    }
    return err.message;
  }
  if (err instanceof Error) return err.message;
  return "Something went wrong.";
}

/** Where the login page sends the user back to: the current page. */
export function loginUrl(): string {
  const here = window.location.pathname + window.location.search;
  return here === "/" ? "/login" : `/login?next=${encodeURIComponent(here)}`;
}

let signingOut = false;

/** Sign-out is under way: requests refused from now on are expected, not a reason to redirect with `next`. */
export function markSigningOut(): void {
  signingOut = true;
}

function redirectToLoginIfSignedOut(err: unknown): void {
  if (typeof window === "undefined" || signingOut || errorCode(err) !== "UNAUTHORIZED") return;
  // The login page's own "wrong password" is UNAUTHORIZED too: that one is shown, not redirected.
  if (window.location.pathname.startsWith("/login")) return;
  window.location.assign(loginUrl());
}

const NO_RETRY = new Set(["UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "BAD_REQUEST", "CONFLICT"]);

function makeQueryClient(): QueryClient {
  return new QueryClient({
    queryCache: new QueryCache({ onError: redirectToLoginIfSignedOut }),
    mutationCache: new MutationCache({ onError: redirectToLoginIfSignedOut }),
    defaultOptions: {
      queries: {
        // Live data arrives over socket.io; refetching is for catching up, not polling.
        staleTime: 15_000,
        retry: (failures, err) => !NO_RETRY.has(errorCode(err) ?? "") && failures < 2,
      },
      mutations: { retry: false },
    },
  });
}

export function TRPCReactProvider({ children }: { children: ReactNode }) {
  const [queryClient] = useState(makeQueryClient);
  const [trpcClient] = useState(() =>
    createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: "/api/trpc",
          fetch: (url, options) => fetch(url, { ...options, credentials: "same-origin" }),
        }),
      ],
    }),
  );
  return (
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        {children}
      </TRPCProvider>
    </QueryClientProvider>
  );
}
