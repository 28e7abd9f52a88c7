/**
 * Rollouts when things go wrong, with real processes: the server (embedded broker,
 * PGlite), three agents running the real `orchard-runner --backend sim`, simulated
 * models written here (scripts/sim-model.ts) and pushed through the real upload API
 * with the `orchard artifact push` code, rollouts created through tRPC.
 *
 *   - an agent SIGKILLed mid-download resumes on restart, fetching again only what it
 *     had received but not yet written. Bytes served are the server's
 *     orchard_artifact_bytes_served_total (only one device downloads at a time here); the
 *     server is frozen (SIGSTOP) around the kill so that nothing is in transit on the
 *     loopback when the agent dies, which makes "what the kill lost" a measurable figure
 *   - a byte flipped in the server's stored file: verification fails (two clean
 *     downloads, then hash_mismatch), nothing is activated; once the byte is restored a
 *     new rollout succeeds
 *   - an agent whose --models-quota is smaller than the model refuses in preflight
 *     (disk_full) before a byte is fetched
 *   - a model whose runner answers its reference prompt with other ids (token_offset)
 *     is rolled back on each device until the failure threshold pauses the rollout; the
 *     old models keep answering chats
 *
 *   - the server stopped mid-download for longer than the agent's old retry budget: the
 *     agent keeps resuming with backoff, and the rollout completes on its first try
 *
 * A server or broker restart mid-rollout (between devices) is covered by rollout.test.ts.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, readFile, readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ConversationMessageDto, RolloutDeviceDto, RolloutDto, RolloutStrategy } from "@orchard/contracts";
import { planPush, push } from "../../apps/cli/src/artifact.ts";
import type { ArtifactDto } from "@orchard/client";
import { REFERENCE_PROMPT, simReferenceIds, writeSimModel, type SimModelHeader } from "../../scripts/sim-model.ts";
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
} from "../support/harness.ts";

const MiB = 2 ** 20;
/**
 * The agent writes (and hashes) what it receives in blocks: it buffers network chunks
 * until at least this much has arrived, then writes them (apps/agent/src/rollout/download.ts,
 * WRITE_BLOCK). What a SIGKILL loses is what was buffered: less than one block plus one
 * network chunk.
 */
const AGENT_WRITE_BLOCK = MiB;
/**
 * The server reads a blob in chunks of this size and counts each as served when it reads it
 * (artifacts/store.ts read(), http/artifacts.ts): a chunk read but not yet handed to the
 * socket when the device hangs up is counted too.
 */
const SERVER_READ_CHUNK = MiB;
/**
 * What the agent's HTTP stack (undici's socket reads and the response body's stream queue)
 * can hold that the download loop has not taken yet, while that loop waits on a block write.
 * Each network chunk is at most 64 KiB, but under load several queue up: 1.6–2.6 MiB lost in
 * total was measured across runs, so the agent-side allowance is one more block.
 */
const AGENT_FETCH_QUEUE_MAX = MiB;

let server: TestServer;
let tmp: string;
let socket: FleetSocket;
/** rf-a and rf-b run rolled-out models; rf-c has a models quota smaller than any model here. */
let a: TestAgent;
let b: TestAgent;
let c: TestAgent;
let base: PushedModel;
const QUOTA = "32MiB";
const rolloutsSeen: RolloutDto[] = [];

interface PushedModel {
  artifact: ArtifactDto;
  file: string;
  sha256: string;
  size: number;
  ids: number[] | null;
}

/** Writes a simulated model and pushes it through the real upload API (the `orchard artifact push` code). */
async function pushModel(
  version: string,
  sizeBytes: number,
  header: SimModelHeader = {},
  expectedIds?: (ownIds: number[]) => number[],
): Promise<PushedModel> {
  const file = path.join(tmp, `model-${version}.sim`);
  const written = await writeSimModel({ file, sizeBytes, header: { name: `rf-${version}`, ...header } });
  const ids = await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile: file });
  const expected = expectedIds ? expectedIds(ids) : ids;
  const plan = await planPush({
    files: [file],
    name: "rollout-failures",
    version,
    runtime: "sim",
    runtimeVersion: undefined,
    profile: undefined,
    maxContext: undefined,
    referencePrompt: REFERENCE_PROMPT,
    expectedIds: expected.join(","),
  });
  const artifact = await push(plan, { client: server.client, url: server.url, apiKey: server.apiKey, err: () => undefined, tty: false });
  expect(artifact.files[0]).toMatchObject({ sha256: written.sha256, size: sizeBytes });
  return { artifact, file, sha256: written.sha256, size: sizeBytes, ids };
}

async function scrape(): Promise<string> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
  expect(res.status).toBe(200);
  return res.text();
}

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`/metrics has no ${series}`);
  return Number(line.slice(series.length + 1));
}

/** Bytes of model files the server has sent, once no download is in flight (so the figure is settled). */
async function bytesServed(): Promise<number> {
  const text = await waitFor("no model download in flight", async () => {
    const t = await scrape();
    return metric(t, "orchard_artifact_downloads_in_flight") === 0 ? t : null;
  });
  return metric(text, "orchard_artifact_bytes_served_total");
}

async function ready(agent: TestAgent, artifactId: string) {
  await waitFor(
    `${agent.name} ready on ${artifactId.slice(0, 8)}`,
    async () => {
      const d = await server.client.devices.get.query({ id: agent.deviceId });
      return d?.online && d.runner?.state === "ready" && d.activeModel?.artifactId === artifactId;
    },
    60_000,
  );
}

async function rolloutWhen(id: string, what: string, pred: (r: RolloutDto) => boolean, timeoutMs = 90_000): Promise<RolloutDto> {
  return waitFor(
    `rollout ${id} ${what}`,
    async () => {
      const r = await server.client.rollouts.get.query({ id });
      return pred(r) ? r : null;
    },
    timeoutMs,
  ).catch(async (err: Error) => {
    const r = await server.client.rollouts.get.query({ id }).catch(() => null);
    throw new Error(
      `${err.message}\nrollout ${r?.state}: ${JSON.stringify(r?.devices.map((d) => [d.deviceName, d.state, d.bytesDone, d.error]))}`,
    );
  });
}

const ended = (r: RolloutDto) => r.state !== "running";

function deviceIn(r: RolloutDto, agent: TestAgent): RolloutDeviceDto {
  const d = r.devices.find((x) => x.deviceId === agent.deviceId);
  if (!d) throw new Error(`${agent.name} is not in rollout ${r.id}`);
  return d;
}

function createRollout(model: PushedModel, agents: TestAgent[], strategy: Partial<RolloutStrategy>) {
  return server.client.rollouts.create.mutate({
    artifactId: model.artifact.id,
    deviceIds: agents.map((x) => x.deviceId),
    strategy: { canary: 0, retries: 0, health: { referenceCheck: true, minDecodeTokS: null, timeoutMs: 30_000 }, ...strategy },
  });
}

const modelsDir = (agent: TestAgent) => path.join(agent.dataDir, "models");
const partialOf = (agent: TestAgent, model: PushedModel) => path.join(modelsDir(agent), model.artifact.id, ".partial", model.sha256);
const sizeOf = (file: string) =>
  stat(file).then(
    (s) => s.size,
    () => null,
  );
const readCurrent = (agent: TestAgent) => readFile(path.join(modelsDir(agent), "current.json"), "utf8");
/** The artifacts models/current.json names (active, previous). */
function pointer(json: string): [string | null, string | null] {
  const current = JSON.parse(json) as { active: { artifactId: string } | null; previous: { artifactId: string } | null };
  return [current.active?.artifactId ?? null, current.previous?.artifactId ?? null];
}

/** Every file under a folder (relative paths); [] when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/**
 * Bytes queued in the kernel on loopback TCP connections to `port`: what the server side has
 * not sent yet and what the client side has not read yet (/proc/net/tcp, IPv4).
 */
async function loopbackQueued(port: number): Promise<number> {
  const text = await readFile("/proc/net/tcp", "utf8");
  let queued = 0;
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 5) continue;
    const localPort = parseInt(cols[1]!.split(":")[1]!, 16);
    const remotePort = parseInt(cols[2]!.split(":")[1]!, 16);
    const [tx, rx] = cols[4]!.split(":").map((h) => parseInt(h, 16));
    if (localPort === port) queued += tx!;
    if (remotePort === port) queued += rx!;
  }
  return queued;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Sends a chat to a device through the dashboard API and waits for the whole answer. */
async function chat(agent: TestAgent, content: string): Promise<ConversationMessageDto> {
  const sent = await server.client.chat.send.mutate({ deviceId: agent.deviceId, content, maxNewTokens: 16 });
  return waitFor(`${agent.name}'s answer`, async () => {
    const conversation = await server.client.chat.get.query({ id: sent.conversationId });
    const answer = conversation.messages.find((m) => m.id === sent.assistantMessageId);
    return answer && answer.status !== "streaming" ? answer : null;
  });
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-rollout-failures-"));
  server = await startServer();
  a = await enrollAgent(server, "rf-a");
  b = await enrollAgent(server, "rf-b");
  c = await enrollAgent(server, "rf-c");
  a.start(["--log-format", "json"]);
  b.start(["--log-format", "json"]);
  c.start(["--log-format", "json", "--models-quota", QUOTA]);
  await waitFor(
    "three devices ready",
    async () => (await server.client.devices.list.query()).filter((d) => d.online && d.runner?.state === "ready").length === 3,
    60_000,
  );
  socket = await connectSocket(server, await login(server));
  socket.on("rollout:changed", (r) => rolloutsSeen.push(r));

  // rf-a and rf-b run a rolled-out model first, so "the old model" below is one with an artifact.
  base = await pushModel("1", 64 * MiB);
  const created = await createRollout(base, [a, b], { batchSize: 2 });
  const r = await rolloutWhen(created.id, "to end", ended);
  expect(r.state).toBe("completed");
  await ready(a, base.artifact.id);
  await ready(b, base.artifact.id);
}, 180_000);

afterAll(async () => {
  socket?.disconnect();
  if (server?.proc.running) server.proc.child.kill("SIGCONT");
  for (const x of [a, b, c]) await x?.proc?.stop();
  await server?.stop();
  for (const x of [a, b, c]) if (x) await removeDir(x.dataDir);
  if (server) await removeDir(server.dataDir);
  if (tmp) await removeDir(tmp);
});

/**
 * A test that failed half-way may leave an agent killed or a rollout running: start the agent
 * again and abort what is still running, so the next test starts from a settled fleet.
 */
afterEach(async () => {
  if (server?.proc.running) server.proc.child.kill("SIGCONT");
  for (const x of [a, b]) if (x && !x.proc?.running) x.start(["--log-format", "json"]);
  if (c && !c.proc?.running) c.start(["--log-format", "json", "--models-quota", QUOTA]);
  for (const r of await server.client.rollouts.list.query({ limit: 100 })) {
    if (r.state !== "running" && r.state !== "paused") continue;
    await server.client.rollouts.abort.mutate({ id: r.id });
    await rolloutWhen(r.id, "to stop after an abort", (x) => x.state !== "running" && x.state !== "paused");
  }
}, 120_000);

describe("rollout failures", () => {
  it("an agent SIGKILLed mid-download resumes where its file on disk ends: only what it had not written yet is fetched again", async () => {
    const model = await pushModel("2", 256 * MiB);
    const partial = partialOf(a, model);
    const servedBefore = await bytesServed();
    const created = await createRollout(model, [a], {});

    // Catch the download once the dashboard shows bytes done (rollout.progress relayed over
    // socket.io), or, on a machine where loopback is faster than that relay, at 60 % of the
    // file by the partial file's size (the agent's own record).
    const reportedDone = () => Math.max(0, ...rolloutsSeen.filter((r) => r.id === created.id).map((r) => deviceIn(r, a).bytesDone));
    const stagedFile = path.join(modelsDir(a), model.artifact.id, "model-2.sim");
    const deadline = Date.now() + 60_000;
    let seenOnDisk = 0;
    for (;;) {
      seenOnDisk = (await sizeOf(partial)) ?? 0;
      if ((reportedDone() > 0 && seenOnDisk > 0) || seenOnDisk >= model.size * 0.6) break;
      if ((await sizeOf(stagedFile)) !== null) throw new Error("the download finished before the test could stop it");
      if (!a.proc!.running || Date.now() > deadline) throw new Error(`no download to interrupt:\n${a.proc!.output.slice(-3000)}`);
      await sleep(5);
    }
    expect(seenOnDisk).toBeLessThan(model.size);

    // Freeze the server, so nothing more is sent and what is in transit reaches the agent:
    // then the agent holds only what it received and has not written yet. Kill it there.
    const port = Number(new URL(server.url).port);
    server.proc.child.kill("SIGSTOP");
    let onDisk: number;
    try {
      await waitFor("the loopback queues to the server to drain", async () => (await loopbackQueued(port)) === 0, 20_000);
      // The agent writes what it has taken in; wait until its file stops growing.
      let last = -1;
      for (;;) {
        const now = (await sizeOf(partial))!;
        if (now === last) break;
        last = now;
        await sleep(500);
      }
      await a.proc!.stop("SIGKILL");
      onDisk = (await sizeOf(partial))!;
    } finally {
      server.proc.child.kill("SIGCONT");
    }
    expect(onDisk).toBeGreaterThanOrEqual(seenOnDisk);
    expect(onDisk).toBeLessThan(model.size);
    // Whatever the agent reported as downloaded is on its disk.
    const reported = reportedDone();
    expect(onDisk).toBeGreaterThanOrEqual(reported);

    const servedBeforeKill = (await bytesServed()) - servedBefore;
    // Served but not on the agent's disk: what it had buffered (under one write block, plus
    // what its HTTP stack had queued) and what the server had read but not sent yet (one
    // read chunk at most). Far less than the 60 % of the file a restart from zero would cost.
    const lost = servedBeforeKill - onDisk;
    expect(lost).toBeGreaterThanOrEqual(0);
    expect(lost).toBeLessThan(AGENT_WRITE_BLOCK + AGENT_FETCH_QUEUE_MAX + SERVER_READ_CHUNK);
    const mid = await server.client.rollouts.get.query({ id: created.id });
    expect(deviceIn(mid, a).state).toBe("downloading");

    // Started again on the same data dir, it carries on and the rollout completes.
    const proc = a.start(["--log-format", "json"]);
    const r = await rolloutWhen(created.id, "to end", ended);
    expect(r.state).toBe("completed");
    expect(deviceIn(r, a)).toMatchObject({ state: "active", attempt: 1, error: null, bytesDone: model.size, bytesTotal: model.size });
    await ready(a, model.artifact.id);

    // The resumed request asked for exactly the bytes after the partial file's end.
    const servedAfterRestart = (await bytesServed()) - servedBefore - servedBeforeKill;
    expect(servedAfterRestart).toBe(model.size - onDisk);
    const downloaded = proc.output
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg?: string; fetched?: number; file?: string })
      .filter((l) => l.msg === "file downloaded" && l.file === "model-2.sim");
    expect(downloaded).toHaveLength(1);
    expect(downloaded[0]!.fetched).toBe(model.size - onDisk);

    // The staged file is the model, whole.
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(stagedFile)) hash.update(chunk as Buffer);
    expect(hash.digest("hex")).toBe(model.sha256);
    expect(await filesUnder(path.join(modelsDir(a), model.artifact.id, ".partial"))).toEqual([]);
  }, 180_000);

  it("a corrupted file on the server fails verification and activates nothing; once restored, a new rollout succeeds", async () => {
    const model = await pushModel("3", 64 * MiB);
    const blob = path.join(server.dataDir, "artifacts", "blobs", model.sha256.slice(0, 2), model.sha256);
    expect((await stat(blob)).size).toBe(model.size);
    const at = Math.floor(model.size / 2);
    const handle = await open(blob, "r+");
    const original = Buffer.alloc(1);
    try {
      await handle.read(original, 0, 1, at);
      await handle.write(Buffer.from([original[0]! ^ 0xff]), 0, 1, at);
    } finally {
      await handle.close();
    }

    const currentBefore = await readCurrent(b);
    const servedBefore = await bytesServed();
    const created = await createRollout(model, [b], {});
    const r = await rolloutWhen(created.id, "to end", ended);
    expect(r.state).toBe("failed");
    const d = deviceIn(r, b);
    expect(d).toMatchObject({ state: "failed", attempt: 1, willRetry: false, error: { code: "hash_mismatch" } });
    expect(d.error!.message).toContain(`sha256`);
    expect(d.error!.message).toContain("after 2 download attempts");
    // Downloaded twice, each time from a clean state (the bad bytes were not resumed from).
    expect((await bytesServed()) - servedBefore).toBe(2 * model.size);

    // Nothing was activated: the pointer is byte for byte what it was, the old model runs.
    expect(await readCurrent(b)).toBe(currentBefore);
    await ready(b, base.artifact.id);
    const device = (await server.client.devices.get.query({ id: b.deviceId }))!;
    expect(device.activeModel).toMatchObject({ artifactId: base.artifact.id, sha256: base.sha256 });
    expect(await filesUnder(path.join(modelsDir(b), model.artifact.id))).toEqual([]);

    // Restore the byte: a new rollout of the same model goes through, one download.
    const restore = await open(blob, "r+");
    try {
      await restore.write(original, 0, 1, at);
    } finally {
      await restore.close();
    }
    const servedBeforeRetry = await bytesServed();
    const retry = await createRollout(model, [b], {});
    const done = await rolloutWhen(retry.id, "to end", ended);
    expect(done.state).toBe("completed");
    expect(deviceIn(done, b)).toMatchObject({ state: "active", error: null, previousArtifactId: base.artifact.id });
    expect((await bytesServed()) - servedBeforeRetry).toBe(model.size);
    await ready(b, model.artifact.id);
    const after = (await server.client.devices.get.query({ id: b.deviceId }))!;
    expect(after.previousModel).toMatchObject({ artifactId: base.artifact.id });
  }, 180_000);

  it("an agent without room for the model refuses it in preflight (disk_full) before fetching a byte", async () => {
    const servedBefore = await bytesServed();
    const created = await createRollout(base, [c], { retries: 2 });
    const r = await rolloutWhen(created.id, "to end", ended);
    expect(r.state).toBe("failed");
    const d = deviceIn(r, c);
    // disk_full is not retried: the same disk gives the same answer.
    expect(d).toMatchObject({ state: "failed", attempt: 1, willRetry: false, bytesDone: 0, error: { code: "disk_full" } });
    expect(d.error!.message).toMatch(/not enough room for the model: it needs 64\.0 MiB more/);
    expect(d.error!.message).toContain("--models-quota 32.0 MiB");
    expect((await bytesServed()) - servedBefore).toBe(0);
    expect(await filesUnder(path.join(modelsDir(c), base.artifact.id))).toEqual([]);
    // Its runner never stopped.
    const device = (await server.client.devices.get.query({ id: c.deviceId }))!;
    expect(device.online).toBe(true);
    expect(device.activeModel?.artifactId ?? null).toBeNull();
    expect(device.runner?.state).toBe("ready");
  }, 120_000);

  it("a model that fails its reference check is rolled back on each device until the threshold pauses the rollout; the old models keep answering", async () => {
    // token_offset makes the sim runner shift every id it generates: the manifest carries the
    // ids the model would give without it, so the health gate sees other ids than it expects.
    const offsetModel = await pushModel("4", 64 * MiB, { token_offset: 7 }, () => base.ids!);
    expect(offsetModel.ids).not.toEqual(base.ids);
    const before = await server.client.devices.list.query();
    const oldModel = (x: TestAgent) => before.find((d) => d.id === x.deviceId)!.activeModel!;
    const currentA = await readCurrent(a);
    const currentB = await readCurrent(b);

    // One device at a time, pausing at the second failure: rf-a, then rf-b; rf-c waits.
    const created = await createRollout(offsetModel, [a, b, c], { batchSize: 1, maxConcurrentDownloads: 1, failureThreshold: 2 });
    const r = await rolloutWhen(created.id, "to pause", (x) => x.state !== "running");
    expect(r.state).toBe("paused");
    expect(r.pausedReason).toMatch(/^2 devices failed \(threshold 2\): /);
    for (const x of [a, b]) {
      const d = deviceIn(r, x);
      expect(d).toMatchObject({ state: "rolled_back", attempt: 1, willRetry: false, error: { code: "reference_mismatch" } });
      expect(d.error!.message).toContain(`expected [${base.ids!.join(", ")}]`);
    }
    expect(deviceIn(r, c)).toMatchObject({ state: "pending", sent: false });
    expect(r.counts).toMatchObject({ total: 3, rolledBack: 2, waiting: 1 });

    // Each device switched back to what it ran; its pointer is as before and the old model answers chats.
    for (const [x, current] of [
      [a, currentA],
      [b, currentB],
    ] as const) {
      await ready(x, oldModel(x).artifactId!);
      expect(pointer(await readCurrent(x))).toEqual(pointer(current));
      const answer = await chat(x, "Are you still there?");
      expect(answer.status).toBe("complete");
      expect(answer.content.length).toBeGreaterThan(0);
      expect(answer.stats).toMatchObject({ backend: "sim", modelSha256: oldModel(x).sha256 });
      expect(await filesUnder(path.join(modelsDir(x), offsetModel.artifact.id))).toEqual([]);
    }

    const aborted = await server.client.rollouts.abort.mutate({ id: created.id });
    expect(aborted.state).toBe("aborted");
    expect(deviceIn(aborted, c)).toMatchObject({ state: "aborted", sent: false });
  }, 180_000);

  it("the server stopped mid-download for longer than 30 s: the agent waits it out and the rollout completes on its first try", async () => {
    const model = await pushModel("5", 256 * MiB);
    const partial = partialOf(a, model);
    const stagedFile = path.join(modelsDir(a), model.artifact.id, "model-5.sim");
    const logFrom = a.proc!.output.length;
    const created = await createRollout(model, [a], { retries: 1 });

    // Stop the server (and its embedded broker) once the agent has part of the file on disk.
    const deadline = Date.now() + 60_000;
    while (((await sizeOf(partial)) ?? 0) === 0) {
      if ((await sizeOf(stagedFile)) !== null) throw new Error("the download finished before the test could stop the server");
      if (Date.now() > deadline) throw new Error(`no download to interrupt:\n${a.proc!.output.slice(-3000)}`);
      await sleep(5);
    }
    // Frozen first, so nothing more is sent while the stop is asked for; its shutdown cuts the download.
    server.proc.child.kill("SIGSTOP");
    server.proc.child.kill("SIGTERM");
    server.proc.child.kill("SIGCONT");
    await server.proc.exited;
    const stoppedAt = (await sizeOf(partial)) ?? 0;
    expect(stoppedAt).toBeGreaterThan(0);
    expect(stoppedAt).toBeLessThan(model.size);

    // Down for longer than the agent's old retry budget (5 retries, about 30 s in all); a restart took 42 s in the field.
    await sleep(40_000);
    const old = server;
    server = await startServer({ dataDir: old.dataDir, port: Number(new URL(old.url).port), mqttPort: old.mqttPort });
    await server.proc.waitForOutput(/rollouts resumed/);

    const r = await rolloutWhen(created.id, "to end", ended, 120_000);
    expect(r.state).toBe("completed");
    // The first try went through: the agent never gave up on the download, and no report of it failed the device.
    expect(deviceIn(r, a)).toMatchObject({ state: "active", attempt: 1, error: null, bytesDone: model.size });
    await ready(a, model.artifact.id);
    const logLines = a
      .proc!.output.slice(logFrom)
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { msg?: string; why?: string; state?: string; to?: string });
    expect(logLines.some((l) => l.msg === "download interrupted; resuming" && /ECONNREFUSED/.test(l.why ?? ""))).toBe(true);
    expect(logLines.some((l) => l.msg === "rollout state" && l.to === "failed")).toBe(false);
    // The download was checked chunk by chunk with the server's signed chunk list.
    expect(logLines.filter((l) => l.msg?.startsWith("downloading without chunk hashes"))).toEqual([]);
  }, 300_000);
});
