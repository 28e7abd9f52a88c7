/**
 * A typed client for the Orchard server's API, authenticated with an API key.
 * The CLI and the demo launcher use it; the type comes from the server's router.
 */
import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import type { AppRouter } from "@orchard/web/router";

export type OrchardClient = ReturnType<typeof createOrchardClient>;

export function createOrchardClient(opts: { url: string; apiKey: string; fetch?: typeof fetch }) {
  return createTRPCClient<AppRouter>({
    links: [
      httpBatchLink({
        url: `${opts.url.replace(/\/$/, "")}/api/trpc`,
        headers: { authorization: `Bearer ${opts.apiKey}` },
        ...(opts.fetch ? { fetch: opts.fetch } : {}),
      }),
    ],
  });
}

/** A sentence for a person: what failed and, for the usual mistakes, what to do. */
export function describeError(err: unknown, url: string): string {
  if (err instanceof TRPCClientError) {
    const status = (err.data as { httpStatus?: number } | undefined)?.httpStatus;
    if (status === 401) return "the server refused the API key (check ORCHARD_API_KEY)";
    if (err.cause && /fetch failed|ECONNREFUSED/i.test(String(err.cause.message ?? err.message))) {
      return `cannot reach the Orchard server at ${url} (check ORCHARD_URL and that the server is running)`;
    }
    return err.message;
  }
  return (err as Error).message;
}
