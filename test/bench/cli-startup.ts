/**
 * CLI and agent start-up: wall time of whole processes, from spawn to exit, as a user
 * waits for them. `orchard artifact list` against a real server on 127.0.0.1 (PGlite,
 * no models: it answers `[]`-sized output, so the time is start-up plus one request)
 * and `orchard --help` and `orchard-agent --version` (start-up alone), each run RUNS times:
 *   dist   — the bin entry with the compiled bundle (apps/*\/dist, scripts/build.mjs), as installed;
 *   source — ORCHARD_FROM_SOURCE=1: the TypeScript sources through tsx, with tsx's transform cache warm
 *            (what every start cost before the bundles, after the first);
 *   source, cold cache — the same with TSX_DISABLE_CACHE=1 (a first start, or one after a source changed).
 * One process at a time; the server is idle between runs.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { bundleStaleReason } from "../../scripts/lib/launch.mjs";
import { ROOT, removeDir, startServer } from "../support/harness.ts";
import { summarize } from "./stats.ts";

const CLI = path.join(ROOT, "apps/cli/bin/orchard.mjs");
const AGENT = path.join(ROOT, "apps/agent/bin/orchard-agent.mjs");

function timed(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) =>
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${args.join(" ")} exited ${code}: ${err}`));
    }),
  );
}

export async function benchCliStartup(opts: { runs: number }): Promise<string[]> {
  const stale = ["apps/cli/dist/orchard.mjs", "apps/agent/dist/orchard-agent.mjs"]
    .map((b) => [b, bundleStaleReason(path.join(ROOT, b), ROOT)] as const)
    .filter(([, why]) => why !== null);
  if (stale.length > 0) {
    return [`skipped: ${stale.map(([b, why]) => `${b} is not up to date (${why})`).join("; ")}; run npm run build first`];
  }
  const server = await startServer();
  const cliEnv = { ORCHARD_URL: server.url, ORCHARD_API_KEY: server.apiKey };
  const variants: [string, NodeJS.ProcessEnv][] = [
    ["dist", {}],
    ["source", { ORCHARD_FROM_SOURCE: "1" }],
    ["source, cold cache", { ORCHARD_FROM_SOURCE: "1", TSX_DISABLE_CACHE: "1" }],
  ];
  const commands: [string, string[], NodeJS.ProcessEnv][] = [
    ["orchard --help", [CLI, "--help"], {}],
    ["orchard artifact list", [CLI, "artifact", "list"], cliEnv],
    ["orchard-agent --version", [AGENT, "--version"], {}],
  ];
  const lines = [
    `method: wall time from spawn to exit, ${opts.runs} runs each (BENCH_RUNS), one process at a time, the variants taking turns ` +
      "(so a passing load affects each alike) after 3 unmeasured rounds (the server's first requests, the page cache, tsx's cache); " +
      "server on 127.0.0.1 with PGlite, idle",
    "",
    "| command | how it runs | p50 | p90 | max |",
    "|---|---|---|---|---|",
  ];
  try {
    for (const [label, args, env] of commands) {
      const times = variants.map(() => [] as number[]);
      for (let round = 0; round < opts.runs + 3; round++) {
        for (const [i, [, variantEnv]] of variants.entries()) {
          const ms = await timed(args, { ...env, ...variantEnv });
          if (round >= 3) times[i]!.push(ms);
        }
      }
      for (const [i, [how]] of variants.entries()) {
        const s = summarize(times[i]!);
        lines.push(
          `| ${label} | ${how} | ${(s.p50 / 1000).toFixed(2)} s | ${(s.p90 / 1000).toFixed(2)} s | ${(s.max / 1000).toFixed(2)} s |`,
        );
      }
    }
  } finally {
    await server.stop();
    await removeDir(server.dataDir);
  }
  return lines;
}
