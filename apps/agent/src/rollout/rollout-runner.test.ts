/**
 * The agent's rollout state machine against a real HTTP blob server on 127.0.0.1 and
 * real files in a temporary data dir, with a fake runner host (which model it runs,
 * whether that loads, which token ids it gives). Failures and crashes are injected at
 * every state through the runner's fault hook; a "crash" stops an instance dead and a
 * new instance on the same data dir carries on, as after a SIGKILL.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CommandDispatcher } from "../link/commands.js";
import { DeviceEvent, type RolloutDeviceState, canonicalJson } from "@orchard/contracts";
import { afterEach, describe, expect, it } from "vitest";
import {
  BlobServer,
  FakeHost,
  type Signer,
  type TestArtifact,
  applyCommand,
  bytes,
  chunkList,
  launchLabel,
  makeArtifact,
  makeSigner,
  sha256,
} from "../../test/helpers/rollout.js";
import type { RunnerConfig } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import type { RunnerCapabilities } from "./capabilities.js";
import { deviceAuthorization } from "./artifact-key.js";
import { canRun } from "./model-host.js";
import { CurrentModels, ModelStore } from "./model-store.js";
import { MAX_POST_SWITCH_RESUMES, type RolloutEvent, RolloutRunner, type RolloutRunnerOptions, SimulatedCrash } from "./rollout-runner.js";

const FULL: RolloutDeviceState[] = ["pending", "preflight", "downloading", "verifying", "staged", "activating", "health_check", "active"];
const AUTH = deviceAuthorization("pi-test-01", "broker-password");
const CLI: RunnerConfig = {
  backend: "sim",
  bin: { path: "orchard-runner", source: "PATH" },
  model: null,
  tokenizer: null,
  profile: null,
  extraArgs: [],
  llamaThreads: 1,
};
const SIM_CAPS: RunnerCapabilities = { version: "0.3.0", runtimes: { sim: { versions: ["1"], profiles: [] } } };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Device {
  dataDir: string;
  store: ModelStore;
  host: FakeHost;
  runner: RolloutRunner;
  events: RolloutEvent[];
}

interface Rig {
  dir: string;
  server: BlobServer;
  signer: Signer;
  /** Starts an agent on the data dir (a new process, as far as the rollout is concerned). */
  boot(options?: Partial<RolloutRunnerOptions> & { quotaBytes?: number | null }): Promise<Device>;
}

async function rig(): Promise<Rig> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-rollout-"));
  const server = await new BlobServer(AUTH).start();
  cleanups.push(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const signer = makeSigner();
  const dataDir = path.join(dir, "data");
  await mkdir(dataDir, { recursive: true });
  const devices: RolloutRunner[] = [];
  cleanups.push(async () => {
    for (const d of devices) await d.shutdown();
  });
  return {
    dir,
    server,
    signer,
    async boot(options = {}) {
      const { quotaBytes, ...rest } = options;
      const store = new ModelStore({ dataDir, quotaBytes: quotaBytes ?? null, logger: silentLogger });
      const host = new FakeHost();
      const events: RolloutEvent[] = [];
      const runner = new RolloutRunner({
        store,
        host,
        cli: CLI,
        stateFile: path.join(dataDir, "rollout.json"),
        serverUrl: server.url,
        authorization: () => AUTH,
        artifactKey: async () => signer.publicKey,
        capabilities: async () => SIM_CAPS,
        publish: (event) => {
          // Every event must be what the server accepts.
          DeviceEvent.parse(event);
          events.push(event);
        },
        logger: silentLogger,
        downloadBackoff: { initialMs: 10, maxMs: 20, factor: 2, jitter: 0 },
        progressMinIntervalMs: 0,
        ...rest,
      });
      devices.push(runner);
      // What Agent.start does: the pointer decides the runner's model, then the rollout carries on.
      const launch = await runner.init();
      if (canRun(launch)) await host.start(launch);
      host.ops.length = 0;
      runner.resume();
      return { dataDir, store, host, runner, events };
    },
  };
}

const states = (events: RolloutEvent[], rolloutId?: string) =>
  events.filter((e) => e.kind === "rollout.state" && (rolloutId === undefined || e.rolloutId === rolloutId)).map((e) => e.state);
const lastState = (events: RolloutEvent[]) => events.filter((e) => e.kind === "rollout.state").at(-1);

async function readCurrent(dataDir: string): Promise<CurrentModels> {
  return CurrentModels.parse(JSON.parse(await readFile(path.join(dataDir, "models", "current.json"), "utf8")));
}

/** The model label FakeHost reports for an artifact's model file. */
const label = (a: TestArtifact) => `${a.artifactId}/model.bin`;

async function rollOut(r: Rig, d: Device, artifact: TestArtifact, options: Parameters<typeof applyCommand>[1] = {}) {
  r.server.add(artifact);
  const command = applyCommand(artifact, options);
  await d.runner.apply(command);
  await d.runner.idle();
  return command;
}

describe("a rollout on the device", () => {
  it("goes through every state in order, stages the files and switches the pointer; the next one keeps it as previous", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1, size: 300_000 });
    await rollOut(r, d, a, { rolloutId: "ro-a" });

    expect(states(d.events)).toEqual(FULL);
    expect(lastState(d.events)).toMatchObject({ rolloutId: "ro-a", artifactId: a.artifactId, state: "active", attempt: 1, error: null });
    expect(d.host.ops).toEqual(["stop", `start:${label(a)}`]);
    expect(d.host.generations).toHaveLength(1);
    expect(d.host.generations[0]).toMatchObject({
      messages: [{ role: "user", content: "The capital of France is" }],
      max_new_tokens: 3,
      temperature: 0,
    });
    const staged = path.join(d.dataDir, "models", a.artifactId);
    expect(await readFile(path.join(staged, "model.bin"))).toEqual(a.files[0]!.data);
    expect(existsSync(path.join(staged, ".partial"))).toBe(false);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId }, previous: null });
    expect(d.runner.models()).toEqual({
      active: { name: "test-model", sha256: a.manifest.files[0]!.sha256, artifactId: a.artifactId, version: "v1", runtime: "sim" },
      previous: null,
    });
    // Progress: starts at 0, ends at the total, never goes past it.
    const progress = d.events.filter((e) => e.kind === "rollout.progress");
    expect(progress[0]).toMatchObject({ bytesDone: 0, bytesTotal: 300_000, state: "downloading" });
    expect(progress.at(-1)).toMatchObject({ bytesDone: 300_000, bytesTotal: 300_000, etaSeconds: 0 });

    const b = makeArtifact(r.signer, { seed: 2 });
    await rollOut(r, d, b, { rolloutId: "ro-b" });
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: b.artifactId }, previous: { artifactId: a.artifactId } });

    // A third: the first is neither active nor previous any more, and is deleted.
    const c = makeArtifact(r.signer, { seed: 3 });
    await rollOut(r, d, c, { rolloutId: "ro-c" });
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: c.artifactId }, previous: { artifactId: b.artifactId } });
    expect((await readdir(path.join(d.dataDir, "models"))).sort()).toEqual([b.artifactId, c.artifactId, "current.json"].sort());
    expect(d.runner.history().map((h) => [h.rolloutId, h.state])).toEqual([
      ["ro-b", "active"],
      ["ro-a", "active"],
    ]);
  });

  it("an artifact that is already active goes straight to active, without a download or a restart", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    await rollOut(r, d, a, { rolloutId: "ro-1" });
    const served = r.server.requests.length;
    d.host.ops.length = 0;
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-2" });
    expect(states(d.events)).toEqual(["pending", "preflight", "active"]);
    expect(r.server.requests.length).toBe(served);
    expect(d.host.ops).toEqual([]);
  });
});

describe("injected failures at every state", () => {
  // [fault point, the states the second rollout goes through, runner operations]
  const cases: [string, RolloutDeviceState[], (a: TestArtifact, b: TestArtifact) => string[]][] = [
    ["state:pending", ["pending", "failed"], () => []],
    ["state:preflight", ["pending", "preflight", "failed"], () => []],
    ["state:downloading", ["pending", "preflight", "downloading", "failed"], () => []],
    ["state:verifying", ["pending", "preflight", "downloading", "verifying", "failed"], () => []],
    ["state:staged", ["pending", "preflight", "downloading", "verifying", "staged", "failed"], () => []],
    // Switched (or about to): back to the old model.
    ["state:activating", [...FULL.slice(0, 6), "rolled_back"], () => []],
    ["activating:stopped", [...FULL.slice(0, 6), "rolled_back"], (a) => ["stop", `start:${label(a)}`]],
    ["activating:switched", [...FULL.slice(0, 6), "rolled_back"], (a) => ["stop", "stop", `start:${label(a)}`]],
    ["state:health_check", FULL.slice(0, 7).concat("rolled_back"), (a, b) => ["stop", `start:${label(b)}`, "stop", `start:${label(a)}`]],
    ["health_check:ready", FULL.slice(0, 7).concat("rolled_back"), (a, b) => ["stop", `start:${label(b)}`, "stop", `start:${label(a)}`]],
  ];

  for (const [point, expected, ops] of cases) {
    it(`${point}: ${expected.join(" → ")}, and the device ends on the old model`, async () => {
      const r = await rig();
      let armed = false;
      const d = await r.boot({
        fault: (p) => {
          if (armed && p === point) throw new Error(`injected at ${p}`);
        },
      });
      const a = makeArtifact(r.signer, { seed: 1 });
      await rollOut(r, d, a, { rolloutId: "ro-a" });
      armed = true;
      d.events.length = 0;
      d.host.ops.length = 0;
      const b = makeArtifact(r.signer, { seed: 2 });
      await rollOut(r, d, b, { rolloutId: "ro-b" });

      expect(states(d.events)).toEqual(expected);
      expect(lastState(d.events)?.error).toEqual({ code: "internal", message: `the agent failed: injected at ${point}` });
      expect(d.host.ops).toEqual(ops(a, b));
      // A loadable model: the pointer is on A, A's files are whole, the runner runs A.
      expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId } });
      expect(await d.store.isInstalled({ artifactId: a.artifactId, signed: a.signed })).toBe(true);
      expect(launchLabel(d.host.running)).toBe(label(a));
      expect(d.runner.models().active?.artifactId).toBe(a.artifactId);
      if (expected.at(-1) === "rolled_back") expect(existsSync(path.join(d.dataDir, "models", b.artifactId))).toBe(false);
    });
  }
});

describe("resuming after a crash at every state", () => {
  const points = [
    "state:pending",
    "state:preflight",
    "state:downloading",
    "downloading:file",
    "state:verifying",
    "state:staged",
    "state:activating",
    "activating:stopped",
    "activating:switched",
    "state:health_check",
    "health_check:ready",
  ];
  for (const point of points) {
    it(`killed at ${point}: a new agent on the same data dir finishes the rollout`, async () => {
      const r = await rig();
      const first = await r.boot();
      const a = makeArtifact(r.signer, { seed: 1 });
      await rollOut(r, first, a, { rolloutId: "ro-a" });
      await first.runner.shutdown();

      const crashing = await r.boot({
        fault: (p) => {
          if (p === point) throw new SimulatedCrash(p);
        },
      });
      const b = makeArtifact(r.signer, {
        seed: 2,
        files: [
          { name: "model.bin", role: "model", data: bytes(200_000, 2) },
          { name: "tokenizer.json", role: "tokenizer", data: Buffer.from('{"tokens":[]}') },
        ],
      });
      await rollOut(r, crashing, b, { rolloutId: "ro-b" });
      const before = states(crashing.events);
      expect(FULL).toEqual(expect.arrayContaining(before));
      expect(before.at(-1)).not.toBe("active");
      // What the disk holds now must be loadable: whatever the pointer says is installed.
      const pointer = await readCurrent(crashing.dataDir);
      expect(await crashing.store.isInstalled(pointer.active!)).toBe(true);

      const resumed = await r.boot();
      const launched = launchLabel(resumed.host.running);
      expect([label(a), label(b)]).toContain(launched);
      await resumed.runner.idle();
      const after = states(resumed.events);
      expect([...before, ...after]).toEqual(FULL);
      expect(await readCurrent(resumed.dataDir)).toMatchObject({
        active: { artifactId: b.artifactId },
        previous: { artifactId: a.artifactId },
      });
      expect(launchLabel(resumed.host.running)).toBe(label(b));
      // The files were fetched once in all (a crash between files resumes with the next one).
      const fetchedTwice = r.server.requests.filter(
        (q, i, all) => all.findIndex((o) => o.sha256 === q.sha256 && o.range === q.range) !== i,
      );
      expect(fetchedTwice).toEqual([]);
    });
  }

  it("killed while switching back: the next start runs the old model, not the failed one", async () => {
    const r = await rig();
    const first = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    await rollOut(r, first, a, { rolloutId: "ro-a" });
    await first.runner.shutdown();

    const crashing = await r.boot({
      fault: (p) => {
        if (p === "rolled_back:stopped") throw new SimulatedCrash(p);
      },
    });
    const b = makeArtifact(r.signer, { seed: 2 });
    crashing.host.tokenIds.set(label(b), [99, 98, 97]);
    await rollOut(r, crashing, b, { rolloutId: "ro-b" });
    expect((await readCurrent(crashing.dataDir)).active?.artifactId).toBe(b.artifactId); // killed before switching back

    const resumed = await r.boot();
    expect(launchLabel(resumed.host.running)).toBe(label(a));
    await resumed.runner.idle();
    expect(lastState(resumed.events)).toMatchObject({ state: "rolled_back", error: { code: "reference_mismatch" } });
    expect(await readCurrent(resumed.dataDir)).toMatchObject({ active: { artifactId: a.artifactId }, previous: null });
    expect(existsSync(path.join(resumed.dataDir, "models", b.artifactId))).toBe(false);
  });

  it(`a model that takes the agent down every time it loads is given up after ${MAX_POST_SWITCH_RESUMES} restarts`, async () => {
    const r = await rig();
    const first = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    await rollOut(r, first, a, { rolloutId: "ro-a" });
    await first.runner.shutdown();
    const b = makeArtifact(r.signer, { seed: 2 });
    const dies = { fault: (p: string) => (p === "health_check:ready" ? Promise.reject(new SimulatedCrash(p)) : undefined) };
    const crashing = await r.boot(dies);
    await rollOut(r, crashing, b, { rolloutId: "ro-b" });
    for (let i = 0; i < MAX_POST_SWITCH_RESUMES; i += 1) {
      const again = await r.boot(dies);
      expect(launchLabel(again.host.running)).toBe(label(b));
      await again.runner.idle();
      await again.runner.shutdown();
    }
    const last = await r.boot();
    expect(launchLabel(last.host.running)).toBe(label(a));
    await last.runner.idle();
    expect(lastState(last.events)).toMatchObject({ state: "rolled_back", error: { code: "load_failed" } });
    expect(lastState(last.events)?.error?.message).toMatch(/restarted 3 times while activating/);
  });
});

describe("downloads over HTTP", () => {
  it("a connection cut mid-download resumes with Range and fetches only the missing bytes", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { size: 3 * 1024 * 1024, seed: 5 });
    r.server.cutAfter = 1024 * 1024 + 4321;
    await rollOut(r, d, a);
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 1 });
    const [firstRequest, second, ...more] = r.server.requests;
    expect(more).toEqual([]);
    expect(firstRequest).toMatchObject({ range: null, served: 1024 * 1024 + 4321 });
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(second!.range ?? "")?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(1024 * 1024 + 4321);
    expect(second).toMatchObject({ status: 206, served: a.files[0]!.data.length - resumedAt });
    // At most what the cut connection had in flight is fetched again.
    expect(r.server.bytesServed - a.files[0]!.data.length).toBeLessThanOrEqual(1024 * 1024 + 4321 - resumedAt);
  });

  it("an agent stopped mid-download resumes from its partial file on the next start", async () => {
    const r = await rig();
    const first = await r.boot();
    const a = makeArtifact(r.signer, { size: 2 * 1024 * 1024, seed: 6 });
    r.server.add(a);
    r.server.stallAfter = 1536 * 1024;
    const command = applyCommand(a, { rolloutId: "ro-stop" });
    await first.runner.apply(command);
    const partial = path.join(first.dataDir, "models", a.artifactId, ".partial", a.manifest.files[0]!.sha256);
    // Wait for the partial to hold what the server sent (written in blocks of 1 MiB, the rest at shutdown).
    for (let i = 0; i < 500 && (!existsSync(partial) || (await stat(partial)).size < 1024 * 1024); i += 1)
      await new Promise((res) => setTimeout(res, 10));
    await first.runner.shutdown();
    const kept = (await stat(partial)).size;
    expect(kept).toBeGreaterThanOrEqual(1024 * 1024);
    expect(kept).toBeLessThanOrEqual(1536 * 1024); // what had arrived when it stopped
    expect(first.runner.record()?.state).toBe("downloading");

    const second = await r.boot();
    await second.runner.idle();
    expect(states(second.events)).toEqual(["verifying", "staged", "activating", "health_check", "active"]);
    expect(r.server.requests.at(-1)).toMatchObject({ range: `bytes=${kept}-`, served: a.files[0]!.data.length - kept });
  });

  it("a corrupted byte fails the hash: a clean retry within the budget, then hash_mismatch; nothing is activated", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 7 });
    r.server.corrupt.add(a.manifest.files[0]!.sha256);
    await rollOut(r, d, a, { rolloutId: "ro-corrupt" });
    expect(states(d.events)).toEqual(["pending", "preflight", "downloading", "verifying", "downloading", "verifying", "failed"]);
    const failed = lastState(d.events)!;
    expect(failed).toMatchObject({ attempt: 2, error: { code: "hash_mismatch" } });
    expect(failed.error?.message).toContain(`the manifest says ${a.manifest.files[0]!.sha256}`);
    expect(r.server.requests.map((q) => q.range)).toEqual([null, null]); // each attempt from a clean state
    expect(d.host.ops).toEqual([]);
    expect(existsSync(path.join(d.dataDir, "models", "current.json"))).toBe(false);
    expect(existsSync(path.join(d.dataDir, "models", a.artifactId, ".partial", a.manifest.files[0]!.sha256))).toBe(false);

    // The file is fixed on the server. The same try delivered again (even with a new command id) is answered with its state…
    r.server.corrupt.clear();
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-corrupt", attempt: 1 });
    expect(states(d.events)).toEqual(["failed"]);
    expect(r.server.requests).toHaveLength(2);
    // …the server's next try goes through.
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-corrupt", attempt: 2 });
    expect(states(d.events)).toEqual(FULL);
    expect(lastState(d.events)).toMatchObject({ attempt: 1 }); // download attempts of this run
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId } });
  });

  it("every report names the server's try it belongs to (serverAttempt); a re-sent earlier try is answered with the one in hand", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 7 });
    r.server.failWith = 404;
    await rollOut(r, d, a, { rolloutId: "ro-try", attempt: 1 });
    expect(d.events.length).toBeGreaterThan(0);
    expect(d.events.every((e) => e.serverAttempt === 1)).toBe(true);
    expect(lastState(d.events)).toMatchObject({ state: "failed", serverAttempt: 1 });

    r.server.failWith = null;
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-try", attempt: 2 });
    expect(states(d.events)).toEqual(FULL);
    expect(d.events.filter((e) => e.kind === "rollout.progress").length).toBeGreaterThan(0);
    expect(d.events.every((e) => e.serverAttempt === 2)).toBe(true);

    // The first try sent again (a server that restarted meanwhile): answered with the state of the second.
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-try", attempt: 1 });
    expect(d.events).toMatchObject([{ kind: "rollout.state", state: "active", serverAttempt: 2 }]);
    d.events.length = 0;
    d.runner.resendState();
    expect(d.events).toMatchObject([{ kind: "rollout.state", state: "active", serverAttempt: 2 }]);

    // A refusal (busy with another rollout) names the try it refuses.
    const b = makeArtifact(r.signer, { seed: 8, size: 1024 * 1024 });
    const c = makeArtifact(r.signer, { seed: 9 });
    r.server.add(b);
    r.server.add(c);
    r.server.stallAfter = 1000;
    await d.runner.apply(applyCommand(b, { rolloutId: "ro-long" }));
    d.events.length = 0;
    await d.runner.apply(applyCommand(c, { rolloutId: "ro-refused", attempt: 3 }));
    expect(d.events).toMatchObject([{ kind: "rollout.state", rolloutId: "ro-refused", state: "failed", serverAttempt: 3 }]);
  });

  it("a byte corrupted once is caught and the clean retry succeeds", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 8 });
    r.server.corrupt.add(a.manifest.files[0]!.sha256);
    r.server.add(a);
    await d.runner.apply(applyCommand(a));
    // The first download is served corrupted; then the file is fixed.
    for (let i = 0; i < 500 && r.server.requests.length === 0; i += 1) await new Promise((res) => setTimeout(res, 5));
    r.server.corrupt.clear();
    await d.runner.idle();
    expect(states(d.events)).toEqual(["pending", "preflight", "downloading", "verifying", "downloading", ...FULL.slice(3)]);
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 2 });
  });

  it("sends the device's credentials only to the server it enrolled with, not to a download URL on another host", async () => {
    const r = await rig();
    const elsewhere = await new BlobServer(undefined).start();
    cleanups.push(() => elsewhere.stop());
    const d = await r.boot();
    const artifact = makeArtifact(r.signer, { size: 4096 });
    elsewhere.add(artifact);
    await d.runner.apply(applyCommand(artifact, { downloadUrl: `${elsewhere.url}/api/artifacts/blobs` }));
    await d.runner.idle();
    expect(lastState(d.events)).toMatchObject({ state: "active" });
    expect(elsewhere.requests.length).toBeGreaterThan(0);
    expect(elsewhere.requests.every((q) => q.status === 200)).toBe(true); // it answers 401 to any request with credentials
    expect(r.server.requests).toHaveLength(0);
  });

  it("503 + Retry-After: waits and asks again, without counting it as a failed attempt", async () => {
    const r = await rig();
    const d = await r.boot({ httpRetries: 0 });
    const a = makeArtifact(r.signer, { seed: 9 });
    r.server.busy = 2;
    r.server.retryAfterSeconds = 1;
    await rollOut(r, d, a);
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 1 });
    expect(r.server.requests.map((q) => q.status)).toEqual([503, 503, 200]);
    const [q1, q2, q3] = r.server.requests;
    expect(q2!.at - q1!.at).toBeGreaterThanOrEqual(950);
    expect(q3!.at - q2!.at).toBeGreaterThanOrEqual(950);
  });

  it("HTTP errors are retried with backoff, then download_failed; a 404 is final at once", async () => {
    const r = await rig();
    const d = await r.boot({ httpRetries: 2 });
    const a = makeArtifact(r.signer, { seed: 10 });
    r.server.failWith = 500;
    await rollOut(r, d, a, { rolloutId: "ro-500" });
    expect(states(d.events)).toEqual(["pending", "preflight", "downloading", "failed"]);
    expect(lastState(d.events)?.error).toMatchObject({ code: "download_failed" });
    expect(lastState(d.events)?.error?.message).toMatch(/failed 3 times; last: HTTP 500: forced 500/);
    expect(r.server.requests).toHaveLength(3);

    r.server.failWith = 404;
    d.events.length = 0;
    await rollOut(r, d, a, { rolloutId: "ro-404" });
    expect(lastState(d.events)?.error?.message).toMatch(/HTTP 404: forced 404 \(test\)/);
    expect(r.server.requests).toHaveLength(4);
  });
});

describe("chunk hashes (the server's signed chunk list)", () => {
  const CHUNK = 64 * 1024;
  /** A five-chunk artifact (the last one shorter) whose signed chunk list the server serves. */
  function chunked(r: Rig, signer: Signer = r.signer) {
    const a = makeArtifact(r.signer, { seed: 21, size: 4 * CHUNK + 1000 });
    const data = a.files[0]!.data;
    r.server.add(a);
    r.server.chunkLists.set(sha256(data), signer.signChunks(chunkList(data, CHUNK)));
    return { a, data, sha: sha256(data) };
  }
  const blobRanges = (r: Rig) => r.server.requests.map((q) => q.range);

  it("a partial file with a corrupted byte in a middle chunk: only that chunk and what follows is fetched again", async () => {
    const r = await rig();
    const d = await r.boot();
    const { a, data, sha } = chunked(r);
    // What an earlier run left: the first three chunks and part of the fourth, one byte of the second (index 1) damaged.
    const partial = path.join(d.dataDir, "models", a.artifactId, ".partial", sha);
    await mkdir(path.dirname(partial), { recursive: true });
    const left = Buffer.from(data.subarray(0, 3 * CHUNK + 5000));
    left[CHUNK + 1234] = left[CHUNK + 1234]! ^ 0x01;
    await writeFile(partial, left);

    await d.runner.apply(applyCommand(a, { rolloutId: "ro-chunk" }));
    await d.runner.idle();
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 1, error: null });
    // The first chunk was kept; the bad one and everything after it came again, once.
    expect(blobRanges(r)).toEqual([`bytes=${CHUNK}-`]);
    expect(r.server.bytesServed).toBe(data.length - CHUNK);
    expect(r.server.chunkListRequests).toBe(1);
    expect(await readFile(path.join(d.dataDir, "models", a.artifactId, "model.bin"))).toEqual(data);
  });

  it("a chunk that arrives corrupted is fetched again from its start while downloading, not the whole file", async () => {
    const r = await rig();
    const d = await r.boot();
    const { a, data } = chunked(r);
    r.server.corruptRequests = 1; // the first answer has a byte flipped in the middle of the file (chunk 2)
    await rollOut(r, d, a, { rolloutId: "ro-chunk-live" });
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 1, error: null });
    const bad = Math.floor(Math.floor(data.length / 2) / CHUNK) * CHUNK;
    expect(blobRanges(r)).toEqual([null, `bytes=${bad}-`]);
    expect(states(d.events)).toEqual(FULL); // no second download attempt from a clean state
    expect(await readFile(path.join(d.dataDir, "models", a.artifactId, "model.bin"))).toEqual(data);
  });

  it("a chunk list signed with another key is not used: the whole-file check decides, as without one", async () => {
    const r = await rig();
    const d = await r.boot();
    const { a, data, sha } = chunked(r, makeSigner());
    const partial = path.join(d.dataDir, "models", a.artifactId, ".partial", sha);
    await mkdir(path.dirname(partial), { recursive: true });
    const left = Buffer.from(data.subarray(0, 3 * CHUNK));
    left[CHUNK + 1] = left[CHUNK + 1]! ^ 0x01;
    await writeFile(partial, left);
    await d.runner.apply(applyCommand(a, { rolloutId: "ro-chunk-forged" }));
    await d.runner.idle();
    // Resumed at the partial's end, caught by the whole-file sha256, downloaded again from a clean state.
    expect(blobRanges(r)).toEqual([`bytes=${3 * CHUNK}-`, null]);
    expect(lastState(d.events)).toMatchObject({ state: "active", attempt: 2 });
    expect(await readFile(path.join(d.dataDir, "models", a.artifactId, "model.bin"))).toEqual(data);
  });
});

describe("preflight refuses before fetching a byte", () => {
  it("a bad signature", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(makeSigner(), { seed: 1 }); // another server's key
    await rollOut(r, d, a);
    expect(states(d.events)).toEqual(["pending", "preflight", "failed"]);
    expect(lastState(d.events)?.error).toMatchObject({ code: "bad_signature" });
    expect(lastState(d.events)?.error?.message).toMatch(/signed with key .*, but this device trusts key/);

    // Same key id, tampered manifest.
    const b = makeArtifact(r.signer, { seed: 2 });
    const manifest = { ...b.manifest, version: "v-evil" };
    const tampered = { ...b, manifest, signed: { ...b.signed, manifest }, artifactId: sha256(canonicalJson(manifest)) };
    d.events.length = 0;
    await rollOut(r, d, tampered);
    expect(lastState(d.events)?.error).toMatchObject({ code: "bad_signature" });
    expect(lastState(d.events)?.error?.message).toMatch(/does not verify/);
    expect(r.server.requests).toEqual([]);
  });

  it("an artifact id that is not its manifest's", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    const b = makeArtifact(r.signer, { seed: 2 });
    await rollOut(r, d, { ...a, artifactId: b.artifactId });
    expect(lastState(d.events)?.error).toMatchObject({ code: "bad_manifest" });
    expect(r.server.requests).toEqual([]);
  });

  it("a runtime, runtime version or profile the runner does not have", async () => {
    const r = await rig();
    const d = await r.boot({
      capabilities: async () => ({
        version: "0.3.0",
        runtimes: { sim: { versions: ["1"], profiles: [] }, executorch: { versions: ["1.2.0"], profiles: ["llm-standard"] } },
      }),
    });
    const cases: [TestArtifact, RegExp][] = [
      [
        makeArtifact(r.signer, { seed: 1, runtime: "executorch", runtimeVersion: "0.7.0", profile: "llm-standard" }),
        /loads executorch 1\.2\.0, not 0\.7\.0/,
      ],
      [
        makeArtifact(r.signer, { seed: 2, runtime: "executorch", runtimeVersion: "1.2.0", profile: "gemma4-e2b-extcache" }),
        /no executorch profile gemma4-e2b-extcache \(it has: llm-standard\)/,
      ],
      [makeArtifact(r.signer, { seed: 3, runtime: "sim", runtimeVersion: "2" }), /loads sim 1, not 2/],
    ];
    for (const [artifact, message] of cases) {
      d.events.length = 0;
      await rollOut(r, d, artifact);
      expect(lastState(d.events)).toMatchObject({ state: "failed", error: { code: "unsupported_runtime" } });
      expect(lastState(d.events)?.error?.message).toMatch(message);
    }
    const noExecutorch = await r.boot({ capabilities: async () => SIM_CAPS });
    await rollOut(
      r,
      noExecutorch,
      makeArtifact(r.signer, { seed: 4, runtime: "executorch", runtimeVersion: "1.2.0", profile: "llm-standard" }),
    );
    expect(lastState(noExecutorch.events)?.error?.message).toMatch(/has no executorch runtime \(it has: sim\)/);
    const old = await r.boot({
      capabilities: async () => Promise.reject(new Error("orchard-runner --capabilities failed: unknown argument")),
    });
    await rollOut(r, old, makeArtifact(r.signer, { seed: 5 }));
    expect(lastState(old.events)?.error).toMatchObject({ code: "unsupported_runtime", message: expect.stringMatching(/unknown argument/) });
    expect(r.server.requests).toEqual([]);
  });

  it("a models quota too small for the new model while the active one is kept: disk_full", async () => {
    const r = await rig();
    const d = await r.boot({ quotaBytes: 700_000 });
    const a = makeArtifact(r.signer, { seed: 1, size: 400_000 });
    await rollOut(r, d, a, { rolloutId: "ro-a" });
    expect(lastState(d.events)?.state).toBe("active");
    const served = r.server.requests.length;

    d.events.length = 0;
    const b = makeArtifact(r.signer, { seed: 2, size: 400_000 });
    await rollOut(r, d, b, { rolloutId: "ro-b" });
    expect(states(d.events)).toEqual(["pending", "preflight", "failed"]);
    expect(lastState(d.events)?.error).toMatchObject({ code: "disk_full" });
    expect(lastState(d.events)?.error?.message).toMatch(/needs 391 KiB more .* the models quota \(--models-quota 684 KiB\) leaves 292 KiB/);
    expect(r.server.requests.length).toBe(served);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId } });
  });

  it("older models beyond active and previous are deleted to make room, never those two", async () => {
    const r = await rig();
    const d = await r.boot({ quotaBytes: 1_000_000 });
    const [a, b, c] = [1, 2, 3].map((seed) => makeArtifact(r.signer, { seed, size: 300_000 }));
    await rollOut(r, d, a!, { rolloutId: "ro-a" });
    await rollOut(r, d, b!, { rolloutId: "ro-b" });
    // A leftover folder of an abandoned download takes the room c needs.
    const junk = path.join(d.dataDir, "models", "f".repeat(64), ".partial");
    await mkdir(junk, { recursive: true });
    await writeFile(path.join(junk, "e".repeat(64)), bytes(300_000, 9));
    d.events.length = 0;
    await rollOut(r, d, c!, { rolloutId: "ro-c" });
    expect(lastState(d.events)?.state).toBe("active");
    expect(existsSync(path.join(d.dataDir, "models", "f".repeat(64)))).toBe(false);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: c!.artifactId }, previous: { artifactId: b!.artifactId } });
  });

  it("an executorch model bigger than the RAM allows: insufficient_memory", async () => {
    const r = await rig();
    const root = path.join(r.dir, "root");
    await mkdir(path.join(root, "proc"), { recursive: true });
    await writeFile(
      path.join(root, "proc", "meminfo"),
      "MemTotal:         400000 kB\nMemAvailable:     300000 kB\nSwapTotal:       0 kB\nSwapFree:        0 kB\n",
    );
    const d = await r.boot({
      systemRoot: root,
      capabilities: async () => ({ version: "0.3.0", runtimes: { executorch: { versions: ["1.2.0"], profiles: ["llm-standard"] } } }),
    });
    const a = makeArtifact(r.signer, {
      runtime: "executorch",
      runtimeVersion: "1.2.0",
      profile: "llm-standard",
      files: [
        { name: "model.pte", role: "model", data: bytes(300_000, 1) },
        { name: "tokenizer.json", role: "tokenizer", data: Buffer.from("{}") },
      ],
    });
    await rollOut(r, d, a);
    expect(lastState(d.events)).toMatchObject({ state: "failed", error: { code: "insufficient_memory" } });
    expect(lastState(d.events)?.error?.message).toMatch(/needs 512 MiB of RAM .* this device has 391 MiB/);
    expect(r.server.requests).toEqual([]);
  });
});

describe("commands", () => {
  it("a duplicate rollout.apply never starts a second download", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1, size: 1024 * 1024 });
    r.server.add(a);
    const command = applyCommand(a, { rolloutId: "ro-dup" });
    await d.runner.apply(command);
    await d.runner.apply(command); // the same delivery again
    await d.runner.apply({ ...command, id: "another-command-id" }); // the server sending it again
    await d.runner.idle();
    await d.runner.apply({ ...command, id: "after-it-ended", attempt: 2 }); // a higher try of a rollout that is active: its state
    await d.runner.idle();
    expect(r.server.requests).toHaveLength(1);
    const repeated = states(d.events);
    expect(repeated.filter((s) => s === "downloading")).toHaveLength(1);
    expect(repeated.at(-1)).toBe("active"); // answered with its state
    expect(repeated.filter((s) => s === "active")).toHaveLength(2);
  });

  it("another rollout while one runs is refused with a clear message", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1, size: 1024 * 1024 });
    const b = makeArtifact(r.signer, { seed: 2 });
    r.server.add(a);
    r.server.add(b);
    r.server.stallAfter = 1000;
    await d.runner.apply(applyCommand(a, { rolloutId: "ro-first" }));
    await d.runner.apply(applyCommand(b, { rolloutId: "ro-second" }));
    expect(states(d.events, "ro-second")).toEqual(["failed"]);
    const refusal = d.events.find((e) => e.kind === "rollout.state" && e.rolloutId === "ro-second");
    expect(refusal).toMatchObject({ artifactId: b.artifactId, error: { code: "internal" } });
    expect(refusal?.kind === "rollout.state" && refusal.error?.message).toMatch(
      /busy with rollout ro-first \((pending|preflight|downloading)\)/,
    );
    expect(d.runner.record()?.rolloutId).toBe("ro-first");
  });

  it("a file name with ../ is refused as bad_manifest, through the command dispatcher and directly", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    const evil = makeArtifact(r.signer, { files: [{ name: "../../agent.json", role: "model", data: Buffer.from("x") }] });
    const replies: DeviceEvent[] = [];
    const dispatcher = new CommandDispatcher({
      handlers: {
        ping: async () => null,
        "runner.restart": async () => null,
        "chat.start": async () => null,
        "chat.cancel": async () => null,
        "bench.run": async () => null,
        "rollout.apply": async (c) => {
          await d.runner.apply(c);
          return null;
        },
        "rollout.abort": (c) => d.runner.abort(c),
        "credentials.rotate": async () => null,
        "rollout.rollback": (c) => d.runner.rollback(c),
      },
      invalid: (json, reason) => d.runner.refuseInvalid(json, reason),
      reply: (e) => replies.push(e),
      logger: silentLogger,
    });
    await dispatcher.handle(Buffer.from(JSON.stringify(applyCommand(evil, { rolloutId: "ro-evil" }))));
    expect(replies).toEqual([]);
    expect(lastState(d.events)).toMatchObject({ rolloutId: "ro-evil", state: "failed", error: { code: "bad_manifest" } });
    expect(lastState(d.events)?.error?.message).toMatch(/no path separators|must not contain '\.\.'/);

    // Straight to the runner (as if the contract had let it through): refused the same way.
    d.events.length = 0;
    await d.runner.apply(applyCommand(evil, { rolloutId: "ro-evil-2" }));
    expect(lastState(d.events)).toMatchObject({ rolloutId: "ro-evil-2", state: "failed", error: { code: "bad_manifest" } });
    expect(r.server.requests).toEqual([]);
    expect(existsSync(path.join(d.dataDir, "agent.json"))).toBe(false);
    // The device still takes a good rollout afterwards.
    await rollOut(r, d, a, { rolloutId: "ro-good" });
    expect(lastState(d.events)).toMatchObject({ rolloutId: "ro-good", state: "active" });
  });

  it("abort before activating deletes the partial download; after the switch it is too late", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1, size: 2 * 1024 * 1024 });
    r.server.add(a);
    r.server.stallAfter = 1024 * 1024 + 10;
    await d.runner.apply(applyCommand(a, { rolloutId: "ro-abort" }));
    for (let i = 0; i < 500 && d.runner.record()?.state !== "downloading"; i += 1) await new Promise((res) => setTimeout(res, 5));
    const reply = await d.runner.abort({ rolloutId: "ro-abort" });
    expect(reply).toEqual({
      ok: true,
      message: "rollout ro-abort aborted before activation; its partial downloads were deleted and the previous model kept running",
    });
    expect(states(d.events)).toEqual(["pending", "preflight", "downloading", "aborted"]);
    expect(lastState(d.events)?.error).toMatchObject({ code: "aborted" });
    expect(existsSync(path.join(d.dataDir, "models", a.artifactId))).toBe(false);
    expect(d.host.ops).toEqual([]);
    expect(await d.runner.abort({ rolloutId: "ro-abort" })).toMatchObject({
      ok: true,
      message: "rollout ro-abort already ended on this device (aborted)",
    });
    expect(await d.runner.abort({ rolloutId: "ro-unknown" })).toMatchObject({
      ok: true,
      message: "rollout ro-unknown is not on this device: nothing to abort",
    });

    // Held in the health check: an abort is refused.
    const b = makeArtifact(r.signer, { seed: 2 });
    r.server.add(b);
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    const slow = await r.boot({ fault: (p) => (p === "health_check:ready" ? gate : undefined) });
    await slow.runner.apply(applyCommand(b, { rolloutId: "ro-late" }));
    for (let i = 0; i < 500 && slow.runner.record()?.state !== "health_check"; i += 1) await new Promise((res) => setTimeout(res, 5));
    const late = await slow.runner.abort({ rolloutId: "ro-late" });
    expect(late.ok).toBe(false);
    expect(late.message).toMatch(/^too late to abort rollout ro-late: the device has switched to the new model and is checking its health/);
    release();
    await slow.runner.idle();
    expect(lastState(slow.events)?.state).toBe("active");
  });

  it("rollback after active switches to the previous model and restarts it", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    const b = makeArtifact(r.signer, { seed: 2 });
    await rollOut(r, d, a, { rolloutId: "ro-a" });
    await rollOut(r, d, b, { rolloutId: "ro-b" });
    d.host.ops.length = 0;
    d.events.length = 0;
    const reply = await d.runner.rollback({ rolloutId: "ro-b" });
    expect(reply).toEqual({ ok: true, message: "rollout ro-b rolled back; the device runs test-model v1" });
    expect(states(d.events)).toEqual(["rolled_back"]);
    expect(lastState(d.events)?.error).toEqual({ code: "rolled_back", message: "rolled back by an operator" });
    expect(d.host.ops).toEqual(["stop", `start:${label(a)}`]);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId }, previous: null });
    expect(existsSync(path.join(d.dataDir, "models", b.artifactId))).toBe(false);
    // Again: nothing more happens.
    expect(await d.runner.rollback({ rolloutId: "ro-b" })).toMatchObject({ ok: true });
    expect(d.host.ops).toEqual(["stop", `start:${label(a)}`]);

    // Rolling back the first rollout now: back to the command line's model.
    expect(await d.runner.rollback({ rolloutId: "ro-a" })).toEqual({
      ok: true,
      message: "rollout ro-a rolled back; the device runs its command-line model",
    });
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: null, previous: null });
    expect(launchLabel(d.host.running)).toBe("cli");
  });

  it("rollback while downloading stops it: the previous model never stopped", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1, size: 2 * 1024 * 1024 });
    r.server.add(a);
    r.server.stallAfter = 100;
    await d.runner.apply(applyCommand(a, { rolloutId: "ro-rb" }));
    for (let i = 0; i < 500 && d.runner.record()?.state !== "downloading"; i += 1) await new Promise((res) => setTimeout(res, 5));
    const reply = await d.runner.rollback({ rolloutId: "ro-rb" });
    expect(reply.ok).toBe(true);
    expect(states(d.events)).toEqual(["pending", "preflight", "downloading", "rolled_back"]);
    expect(d.host.ops).toEqual([]);
  });
});

describe("the health gate", () => {
  it("wrong reference ids: rolled_back with reference_mismatch, the old model restarted", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    const b = makeArtifact(r.signer, { seed: 2, expectedTokenIds: [818, 5279, 529] });
    await rollOut(r, d, a, { rolloutId: "ro-a" });
    d.events.length = 0;
    d.host.ops.length = 0;
    d.host.tokenIds.set(label(b), [818, 5279, 530]);
    await rollOut(r, d, b, { rolloutId: "ro-b" });
    expect(states(d.events)).toEqual([...FULL.slice(0, 7), "rolled_back"]);
    expect(lastState(d.events)?.error).toMatchObject({ code: "reference_mismatch" });
    expect(lastState(d.events)?.error?.message).toMatch(/first difference at position 2 \(expected 529, got 530\)/);
    expect(d.host.ops).toEqual(["stop", `start:${label(b)}`, "stop", `start:${label(a)}`]);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: { artifactId: a.artifactId } });
  });

  it("a model that does not load: load_failed; under the tokens/s floor: too_slow", async () => {
    const r = await rig();
    const d = await r.boot();
    const a = makeArtifact(r.signer, { seed: 1 });
    d.host.failLoad.add(label(a));
    await rollOut(r, d, a, { rolloutId: "ro-load" });
    expect(lastState(d.events)).toMatchObject({ state: "rolled_back", error: { code: "load_failed" } });
    expect(lastState(d.events)?.error?.message).toMatch(/load_failed: /);
    expect(launchLabel(d.host.running)).toBe("cli");
    expect(existsSync(path.join(d.dataDir, "models", "current.json"))).toBe(true);
    expect(await readCurrent(d.dataDir)).toMatchObject({ active: null });

    const b = makeArtifact(r.signer, { seed: 2, reference: false });
    d.host.decodeTokS = 4.2;
    d.events.length = 0;
    await rollOut(r, d, b, { rolloutId: "ro-slow", health: { minDecodeTokS: 10 } });
    expect(lastState(d.events)).toMatchObject({ state: "rolled_back", error: { code: "too_slow" } });
    expect(lastState(d.events)?.error?.message).toBe(
      "decode ran at 4.2 tokens/s on the reference prompt, under the rollout's floor of 10 tokens/s",
    );
    expect(d.host.generations.at(-1)).toMatchObject({ max_new_tokens: 16 });
  });
});
