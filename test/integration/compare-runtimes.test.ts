/**
 * The one-click runtime comparison with real processes: the server (embedded broker,
 * PGlite), an agent whose sim runner runs a simulated model that came through a
 * rollout, and `orchard bench compare --wait --json` comparing that model with the
 * tiny random-weights GGUF (real llama.cpp inference through node-llama-cpp). The
 * server rolls the GGUF out, benchmarks both, and rolls the sim model back.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RuntimeComparisonDetail } from "@orchard/contracts";
import type { ArtifactDto } from "@orchard/client";
import { simReferenceIds, writeSimModel } from "../../scripts/sim-model.ts";
import { writeTinyGguf } from "../../scripts/tiny-gguf.ts";
import {
  ROOT,
  RUNNER_BIN,
  enrollAgent,
  runCli,
  removeDir,
  startServer,
  waitFor,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";

const LLAMA_RUNNER_BIN = path.join(ROOT, "apps/agent/bin/orchard-llama-runner.mjs");
const MiB = 2 ** 20;

let server: TestServer;
let agent: TestAgent;
let tmp: string;
let simArtifact: ArtifactDto;
let ggufArtifact: ArtifactDto;

const cli = (args: string[]) => runCli(server, args);

async function push(args: string[]): Promise<ArtifactDto> {
  const pushed = await cli(["artifact", "push", ...args, "--reference-prompt", "The capital of France is", "--json"]);
  expect(pushed.code, pushed.err).toBe(0);
  return JSON.parse(pushed.out) as ArtifactDto;
}

async function llamaRelease(): Promise<string> {
  const caps = await new Promise<string>((resolve, reject) => {
    const c = spawn(process.execPath, [LLAMA_RUNNER_BIN, "--capabilities"], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    c.stdout.on("data", (b: Buffer) => (out += b.toString()));
    c.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`--capabilities exited ${code}`))));
  });
  return (JSON.parse(caps) as { runtimes: Record<string, { versions: string[] }> }).runtimes["llama.cpp"]!.versions[0]!;
}

async function readyOn(artifactId: string) {
  await waitFor(
    `${agent.name} ready on ${artifactId.slice(0, 8)}`,
    async () => {
      const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
      return d?.online && d.runner?.state === "ready" && d.activeModel?.artifactId === artifactId;
    },
    120_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- agent output ---\n${agent.proc?.output.slice(-4000) ?? ""}`);
  });
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-compare-test-"));
  server = await startServer();
  agent = await enrollAgent(server, "compare-pi");
  agent.start();

  const simFile = path.join(tmp, "model.sim");
  await writeSimModel({ file: simFile, sizeBytes: 1 * MiB, header: { name: "compare-sim" } });
  const ids = await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile: simFile });
  simArtifact = await push([simFile, "--name", "compare-sim", "--version", "1", "--runtime", "sim", "--expected-ids", ids.join(",")]);
  const gguf = await writeTinyGguf({ file: path.join(tmp, "tiny.gguf"), seed: 3 });
  ggufArtifact = await push([
    gguf.file,
    "--name",
    "tiny-gguf",
    "--version",
    "1",
    "--runtime",
    "llama.cpp",
    "--runtime-version",
    await llamaRelease(),
  ]);

  // The device's model comes from a rollout, so the comparison can put it back.
  const r = await server.client.rollouts.create.mutate({
    artifactId: simArtifact.id,
    deviceIds: [agent.deviceId],
    strategy: { canary: 0 },
  });
  await waitFor(
    "the sim model's rollout",
    async () => (await server.client.rollouts.get.query({ id: r.id })).state === "completed",
    120_000,
  );
  await readyOn(simArtifact.id);
}, 240_000);

afterAll(async () => {
  await agent?.proc?.stop();
  await server?.stop();
  if (agent) await removeDir(agent.dataDir);
  if (server) await removeDir(server.dataDir);
  if (tmp) await removeDir(tmp);
});

describe("runtime comparison, end to end", () => {
  it("refuses fewer than two models from the API", async () => {
    await expect(server.client.bench.compareRuntimes.mutate({ deviceId: agent.deviceId, artifactIds: [simArtifact.id] })).rejects.toThrow(
      /at least two models/,
    );
  });

  it("orchard bench compare --wait --json: sim vs llama.cpp on one device, then the sim model is back", async () => {
    const res = await cli([
      "bench",
      "compare",
      "--device",
      "compare-pi",
      "--models",
      `${simArtifact.id.slice(0, 12)},${ggufArtifact.id}`,
      "--max-tokens",
      "4",
      "--name",
      "sim vs gguf",
      "--wait",
      "--json",
    ]);
    expect(res.code, `${res.err}\n${server.proc.output.slice(-3000)}`).toBe(0);
    const detail = JSON.parse(res.out) as RuntimeComparisonDetail;
    expect(detail.comparison).toMatchObject({ name: "sim vs gguf", state: "completed", error: null, originalArtifactId: simArtifact.id });
    expect(detail.comparison.steps.map((s) => [s.runtime, s.state])).toEqual([
      ["sim", "done"],
      ["llama.cpp", "done"],
    ]);
    // Two complete runs, one per backend, every prompt answered by the engine.
    expect(detail.runs.map((r) => r?.devices[0]?.state)).toEqual(["done", "done"]);
    expect(detail.runs.map((r) => r?.devices[0]?.result?.backend)).toEqual(["sim", "llamacpp"]);
    for (const run of detail.runs) {
      const prompts = run!.devices[0]!.result!.prompts;
      expect(prompts).toHaveLength(4);
      expect(prompts.every((p) => p.generatedTokens > 0 && p.generatedTokens <= 4 && p.decodeTokS > 0)).toBe(true);
    }
    expect(detail.runs[1]!.devices[0]!.result!.modelSha256).toBe(ggufArtifact.files[0]!.sha256);
    // Side by side: both models, an aggregate row, a factor for the GGUF against the sim model.
    expect(detail.sideBySide.models.map((m) => m.backend)).toEqual(["sim", "llamacpp"]);
    const agg = detail.sideBySide.rows.at(-1)!;
    expect(agg.aggregate).toBe(true);
    expect(agg.speedup.decodeTokS[0]).toBeNull();
    expect(agg.speedup.decodeTokS[1]).toBeGreaterThan(0);
    // The steps went by on stderr (polled once a second, so quick ones may be missed), ending with the outcome.
    expect(res.err).toMatch(/(Rolling out|Benchmarking) tiny-gguf 1 \(llama\.cpp\)/);
    expect(res.err.trim().split("\n").at(-1)).toBe("Done: 2 models compared, original model restored");

    // The device runs the sim model again, from the sim runner.
    await readyOn(simArtifact.id);
    const d = (await server.client.devices.get.query({ id: agent.deviceId }))!;
    expect(d.runner?.backend).toBe("sim");
    expect(d.activeModel?.artifactId).toBe(simArtifact.id);
    const rollouts = await server.client.rollouts.list.query();
    expect(rollouts.find((r) => r.id === detail.comparison.restoreRolloutId)?.state).toBe("completed");
  }, 300_000);

  it("exits non-zero from the CLI when the comparison cannot start", async () => {
    const res = await cli(["bench", "compare", "--device", "compare-pi", "--models", simArtifact.id, "--wait", "--json"]);
    expect(res.code).toBe(2);
    expect(res.err).toMatch(/at least two models/);
  });
});
