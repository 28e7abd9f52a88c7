import type { NextConfig } from "next";

const config: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // The contracts package is TypeScript source shared with the server and the agent.
  transpilePackages: ["@orchard/contracts", "@orchard/format"],
  // The UI talks to the server only over HTTP (tRPC) and socket.io; server code never enters the bundle.
  typescript: { tsconfigPath: "tsconfig.json" },
};

export default config;
