import { defineConfig } from "vitest/config";

// One runner for every TypeScript test: unit tests beside the code, tests that
// cross process boundaries in test/ (integration, runner black-box, browser e2e).
export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts", "apps/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "test/bench/**"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration tests start servers and agents; on a 2-core machine run files one at a time.
    fileParallelism: false,
    reporters: process.env.CI ? ["verbose"] : ["default"],
  },
});
