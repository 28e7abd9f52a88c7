import type { NextConfig } from "next";

const config: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // ORCHARD_NEXT_DIST_DIR (e.g. ".next-mine") builds and serves the dashboard from another folder under apps/web, so
  // one checkout can test its own build of the dashboard while other test runs keep using .next.
  ...(process.env.ORCHARD_NEXT_DIST_DIR ? { distDir: process.env.ORCHARD_NEXT_DIST_DIR } : {}),
  // The workspace packages are TypeScript source shared with the server, the CLI and the agent.
  transpilePackages: ["@orchard/contracts", "@orchard/format", "@orchard/client"],
  // The UI talks to the server only over HTTP (tRPC) and socket.io; server code never enters the bundle.
  typescript: { tsconfigPath: "tsconfig.json" },
};

export default config;
