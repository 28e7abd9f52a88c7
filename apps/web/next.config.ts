import type { NextConfig } from "next";

const config: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
  // The UI talks to the server only over HTTP (tRPC) and socket.io; server code never enters the bundle.
  typescript: { tsconfigPath: "tsconfig.json" },
};

export default config;
