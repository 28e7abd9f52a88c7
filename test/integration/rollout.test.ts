/**
 * Rollouts end to end with real processes: the server (embedded broker, PGlite), three
 * agents running the real `orchard-runner --backend sim` on simulated model files
 * generated here, models pushed with the real `orchard artifact push`, rollouts
 * started and followed with `orchard rollout … --wait` and the tRPC API, socket.io
 * for the live view. Covers the happy path (canary, then batches), a server restart
 * in the middle of a rollout, rolling a device back, and a model that fails its
 * reference check (rolled back on the canary, the rollout paused, then aborted).
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RolloutDto } from "@orchard/contracts";
import type { ArtifactDto } from "@orchard/client";
import { simReferenceIds, writeSimModel, type SimModelHeader } from "../../scripts/sim-model.ts";
import {
  RUNNER_BIN,
  connectSocket,
  enrollAgent,
  login,
  removeDir,
  startServer,
  waitFor,
  type FleetSocket,
  type TestAgent,
  type TestServer,
  runCli,
} from "../support/harness.ts";

const MiB = 2 ** 20;
let server: TestServer;
let agents: TestAgent[];
let tmp: string;
let socket: FleetSocket;
const seen: RolloutDto[] = [];

const cli = (args: string[]) => runCli(server, args);

/** Writes a 64 MiB simulated model, asks the real runner for its reference ids, and pushes it with the CLI. */
async function pushModel(version: string, header: SimModelHeader, tamper = (ids: number[]) => ids): Promise<ArtifactDto> {
  const file = path.join(tmp, `model-${version}.sim`);
  await writeSimModel({ file, sizeBytes: 64 * MiB, header });
  const ids = tamper(await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile: file }));
  const pushed = await cli([
    "artifact",
    "push",
    file,
    "--name",
    "rollout-sim",
    "--version",
    version,
    "--runtime",
    "sim",
    "--reference-prompt",
    "The capital of France is",
    "--expected-ids",
    ids.join(","),
    "--json",
  ]);
  expect(pushed.code, pushed.err).toBe(0);
  return JSON.parse(pushed.out) as ArtifactDto;
}

async function ready(agent: TestAgent, artifactId: string | null = null) {
  await waitFor(
    `${agent.name} ready${artifactId ? ` on ${artifactId.slice(0, 8)}` : ""}`,
    async () => {
      const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
      return d?.online && d.runner?.state === "ready" && (artifactId === null || d.activeModel?.artifactId === artifactId);
    },
    60_000,
  );
}

async function settled(id: string, timeoutMs = 120_000): Promise<RolloutDto> {
  return waitFor(
    `rollout ${id} to end`,
    async () => {
      const r = await server.client.rollouts.get.query({ id });
      return r.state !== "running" ? r : null;
    },
    timeoutMs,
  ).catch(async (err: Error) => {
    const r = await server.client.rollouts.get.query({ id }).catch(() => null);
    throw new Error(`${err.message}\nrollout: ${JSON.stringify(r?.devices.map((d) => [d.deviceName, d.state, d.error]))}`);
  });
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-rollout-test-"));
  server = await startServer();
  agents = [];
  for (const name of ["roll-a", "roll-b", "roll-c"]) agents.push(await enrollAgent(server, name));
  for (const a of agents) a.start();
  for (const a of agents) await ready(a);
  socket = await connectSocket(server, await login(server));
  socket.on("rollout:changed", (r) => seen.push(r));
}, 180_000);

afterAll(async () => {
  socket?.disconnect();
  for (const a of agents ?? []) await a.proc?.stop();
  await server?.stop();
  for (const a of agents ?? []) await removeDir(a.dataDir);
  if (server) await removeDir(server.dataDir);
  if (tmp) await removeDir(tmp);
});

describe("rollouts", () => {
  let first: ArtifactDto;

  it("rolls a model out to three agents, the canary first and then in batches; `orchard rollout create --wait` exits 0", async () => {
    first = await pushModel("1", { name: "rollout-sim-1" });
    const names = agents.map((a) => a.name);
    const run = await cli([
      "rollout",
      "create",
      "--artifact",
      first.id.slice(0, 12),
      ...names.flatMap((n) => ["--device", n]),
      "--canary",
      "1",
      "--batch",
      "2",
      "--max-downloads",
      "2",
      "--name",
      "first model",
      "--wait",
      "--json",
    ]);
    expect(run.code, `${run.err}\n${run.out}`).toBe(0);
    const r = JSON.parse(run.out) as RolloutDto;
    expect(r).toMatchObject({ name: "first model", state: "completed", artifactId: first.id, artifactRuntime: "sim" });
    expect(r.counts).toMatchObject({ total: 3, active: 3, failed: 0 });
    const canary = r.devices.find((d) => d.canary)!;
    expect(r.devices.filter((d) => d.canary)).toHaveLength(1);
    for (const d of r.devices) {
      expect(d).toMatchObject({
        state: "active",
        attempt: 1,
        error: null,
        bytesDone: 64 * MiB,
        bytesTotal: 64 * MiB,
        previousArtifactId: null,
      });
      // Nobody was sent the model before the canary ran it.
      if (!d.canary) expect(d.sentAt!).toBeGreaterThanOrEqual(canary.finishedAt!);
    }
    // --wait told the operator how each device went, on stderr.
    expect(run.err).toContain(`${canary.deviceName} (canary): active`);
    expect(run.err).toContain("rollout completed");

    // The devices report the new model; the browser saw the rollout live.
    for (const a of agents) await ready(a, first.id);
    const fleet = await server.client.devices.list.query();
    for (const a of agents) {
      expect(fleet.find((d) => d.id === a.deviceId)!.activeModel).toMatchObject({ artifactId: first.id, version: "1", runtime: "sim" });
    }
    await waitFor("the completed rollout over socket.io", () => seen.some((s) => s.id === r.id && s.state === "completed"));
    expect(seen.some((s) => s.id === r.id && s.devices.some((d) => d.state !== "pending" && d.state !== "active"))).toBe(true);

    // Status and list from the CLI.
    const status = await cli(["rollout", "status", r.id]);
    expect(status.code).toBe(0);
    expect(status.out).toContain("devices: 3/3 active");
  }, 180_000);

  it("completes a rollout after the server restarts in the middle of it, then rolls a device back", async () => {
    // A slow reference check (16 tokens at 4 tokens/s) keeps each device busy for seconds after its download.
    const second = await pushModel("2", { name: "rollout-sim-2", decode_tok_s: 4 });
    const created = await server.client.rollouts.create.mutate({
      artifactId: second.id,
      deviceIds: agents.map((a) => a.deviceId),
      name: "restart",
      strategy: { canary: 0, batchSize: 1, maxConcurrentDownloads: 1, retries: 2 },
    });
    expect(created.state).toBe("running");
    await waitFor(
      "one device to finish",
      async () => {
        const r = await server.client.rollouts.get.query({ id: created.id });
        return r.counts.active >= 1 && r.counts.active < 3;
      },
      60_000,
    );

    // Stop the server (and its embedded broker) and start it again on the same ports and data.
    await server.stop();
    const old = server;
    server = await startServer({ dataDir: old.dataDir, port: Number(new URL(old.url).port), mqttPort: old.mqttPort });
    await server.proc.waitForOutput(/rollouts resumed/);

    const r = await settled(created.id);
    expect(r.state).toBe("completed");
    for (const d of r.devices) expect(d).toMatchObject({ state: "active", previousArtifactId: first.id });
    for (const a of agents) await ready(a, second.id);
    const device = (await server.client.devices.get.query({ id: agents[0]!.deviceId }))!;
    expect(device.previousModel).toMatchObject({ artifactId: first.id, version: "1" });

    // Roll one device back from the device page's path: the rollout that installed its model.
    const installedBy = await server.client.rollouts.ofDevice.query({ deviceId: agents[0]!.deviceId });
    expect(installedBy).toEqual({ rolloutId: created.id, name: "restart" });
    await server.client.rollouts.rollbackDevice.mutate({ id: created.id, deviceId: agents[0]!.deviceId });
    await ready(agents[0]!, first.id);
    const back = await waitFor("the rollback to be recorded", async () => {
      const x = await server.client.rollouts.get.query({ id: created.id });
      const d = x.devices.find((y) => y.deviceId === agents[0]!.deviceId)!;
      return d.state === "rolled_back" ? d : null;
    });
    expect(back.error?.code).toBe("rolled_back");
    const rolled = await server.client.rollouts.get.query({ id: created.id });
    expect(rolled.counts).toMatchObject({ active: 2, rolledBack: 1 });
  }, 300_000);

  it("a model that fails its reference check is rolled back on the canary and pauses the rollout; --wait exits 1", async () => {
    // The manifest expects other token ids than the model gives.
    const bad = await pushModel("3", { name: "rollout-sim-3" }, (ids) => [ids[0]! + 1, ...ids.slice(1)]);
    const before = await server.client.devices.list.query();
    const run = await cli([
      "rollout",
      "create",
      "--artifact",
      bad.id,
      ...agents.flatMap((a) => ["--device", a.deviceId]),
      "--canary",
      "1",
      "--failure-threshold",
      "3",
      "--wait",
      "--json",
    ]);
    expect(run.code, run.err).toBe(1);
    const r = JSON.parse(run.out) as RolloutDto;
    expect(r.state).toBe("paused");
    const canary = r.devices.find((d) => d.canary)!;
    expect(canary).toMatchObject({ state: "rolled_back", attempt: 1, willRetry: false, error: { code: "reference_mismatch" } });
    expect(r.pausedReason).toMatch(new RegExp(`^Canary ${canary.deviceName}: .+ The other devices wait`));
    expect(run.err).toContain("rollout paused: Canary");
    // Nobody else was sent it; the canary runs what it ran before.
    expect(r.devices.filter((d) => !d.canary).every((d) => d.state === "pending" && !d.sent)).toBe(true);
    const was = before.find((d) => d.id === canary.deviceId)!.activeModel!.artifactId!;
    await ready(
      agents.find((a) => a.deviceId === canary.deviceId)!,
      was,
    );

    const aborted = await cli(["rollout", "abort", r.id, "--json"]);
    expect(aborted.code, aborted.err).toBe(0);
    const end = JSON.parse(aborted.out) as RolloutDto;
    expect(end.state).toBe("aborted");
    expect(end.counts).toMatchObject({ rolledBack: 1, aborted: 2 });
  }, 180_000);
});
