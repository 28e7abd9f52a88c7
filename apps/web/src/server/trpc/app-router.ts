/**
 * The API's type and nothing else: what the dashboard's and the CLI's tRPC clients are typed with
 * (`import type { AppRouter } from "@orchard/web/router"`). A type-only module, so importing it never
 * brings server code into the browser bundle or the CLI's esbuild bundle.
 */
export type { AppRouter } from "./root.ts";
