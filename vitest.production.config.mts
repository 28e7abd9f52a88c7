import { spawnSync } from "node:child_process";
import { defineConfig } from "vitest/config";
import base from "./vitest.config.mts";

// The second pass of `npm test`: the fleet, chat, rollout and credential suites again, with every server
// on its own Mosquitto (the shipped infra/mosquitto/mosquitto.conf, dynamic security) and PostgreSQL
// database, as in production (test/support/harness.ts, ORCHARD_TEST_MODE=production).
// Without Mosquitto or ORCHARD_TEST_POSTGRES_URL it fails in CI and is skipped, with the reason, elsewhere.
const PRODUCTION_SUITES = [
  "test/integration/fleet.test.ts",
  "test/integration/chat.test.ts",
  "test/integration/rollout.test.ts",
  "test/integration/credentials.test.ts",
  // #14: poisoned device messages, packet caps and retain rules hold on Mosquitto too (its retain sweeper only runs there).
  "test/integration/poison.test.ts",
  "test/integration/broker-limits.test.ts",
];

function missing(): string | null {
  if (!process.env.ORCHARD_TEST_POSTGRES_URL)
    return "ORCHARD_TEST_POSTGRES_URL is not set (a PostgreSQL server to create test databases on)";
  const probe = spawnSync(
    "sh",
    [
      "-c",
      "command -v mosquitto_ctrl && (command -v mosquitto || test -x /usr/sbin/mosquitto) && ls /usr/lib/*/mosquitto_dynamic_security.so",
    ],
    {
      encoding: "utf8",
    },
  );
  return probe.status === 0 ? null : "Mosquitto 2 with its dynamic security plugin is not installed (apt-get install mosquitto)";
}

const reason = missing();
if (reason && process.env.CI) throw new Error(`the production-mode test pass cannot run: ${reason}`);
if (reason) console.warn(`\n  skipping the production-mode test pass (Mosquitto + PostgreSQL): ${reason}\n`);
process.env.ORCHARD_TEST_MODE = "production";

// Not mergeConfig: it would append to the base config's include list instead of replacing it.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: reason ? [] : PRODUCTION_SUITES,
    passWithNoTests: reason !== null,
    env: { ORCHARD_TEST_MODE: "production" },
  },
});
