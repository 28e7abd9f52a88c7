/**
 * `npm run bench [-- NAME…]`: runs the benchmarks (not part of `npm test`) and prints
 * their figures with the method. Results are for this machine; docs/benchmarks.md
 * records the ones measured for the project.
 */
import os from "node:os";
import { benchChatRelay } from "./chat-relay.ts";
import { benchCliStartup } from "./cli-startup.ts";
import { benchFleetIngest } from "./fleet-ingest.ts";
import { benchRolloutDownload } from "./rollout-download.ts";
import { benchRunnerExecuTorch } from "./runner-executorch.ts";

const benches: Record<string, () => Promise<string[]>> = {
  "chat-relay": () => benchChatRelay({ concurrency: [1, 50], durationS: Number(process.env.BENCH_DURATION_S ?? 20) }),
  "cli-startup": () => benchCliStartup({ runs: Number(process.env.BENCH_RUNS ?? 10) }),
  "fleet-ingest": () =>
    benchFleetIngest({
      devices: Number(process.env.BENCH_DEVICES ?? 10_000),
      seconds: Number(process.env.BENCH_SECONDS ?? 60),
      broker: process.env.BENCH_BROKER === "mosquitto" ? "mosquitto" : "aedes",
    }),
  "rollout-download": () =>
    benchRolloutDownload({
      sizeMiB: Number(process.env.BENCH_ARTIFACT_MB ?? 2048),
      downloaders: Number(process.env.BENCH_DOWNLOADERS ?? 10),
    }),
  "runner-executorch": () => benchRunnerExecuTorch({ dir: process.env.BENCH_PTE_DIR, runs: Number(process.env.BENCH_RUNS ?? 5) }),
};

const chosen = process.argv.slice(2);
const unknown = chosen.filter((n) => !(n in benches));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}; available: ${Object.keys(benches).join(", ")}\n`);
  process.exit(2);
}
process.stdout.write(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n\n`,
);
for (const name of chosen.length > 0 ? chosen : Object.keys(benches)) {
  process.stdout.write(`== ${name}\n`);
  const lines = await benches[name]!();
  process.stdout.write(`\n${lines.join("\n")}\n\n`);
}
process.exit(0);
