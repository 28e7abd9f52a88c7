/**
 * Rollouts end to end in one agent: the assembled Agent on a real broker, the real
 * `orchard-runner --backend sim` loading simulated model files (scripts/sim-model.ts),
 * files served by a real HTTP blob server, commands and events over MQTT. The health
 * gate's reference ids come from running the real runner on the model first.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ChatStreamMessage, DeviceEvent, type DeviceStatus, type RolloutApplyCommand, topics } from "@orchard/contracts";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { simReferenceIds, writeSimModel } from "../../../../scripts/sim-model.ts";
import { Observer, TestBroker } from "../../test/helpers/broker.js";
import { BlobServer, type TestArtifact, applyCommand, makeArtifact, makeSigner } from "../../test/helpers/rollout.js";
import { Agent } from "../agent/agent.js";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import { deviceAuthorization } from "./artifact-key.js";
import { probeCapabilities } from "./capabilities.js";
import { until as untilDone } from "../../test/helpers/until.js";

const until = <T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000) =>
  untilDone(what, probe, timeoutMs);

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const DEVICE = "pi-rollout-01";
const PASSWORD = "rollout-test-password";
const FAST_SIM = ["--sim-load-ms=20", "--sim-decode-tok-s=400", "--sim-prefill-tok-s=4000"];

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

beforeAll(async () => {
  if (!existsSync(RUNNER)) throw new Error(`the runner binary ${RUNNER} is missing: build native/ first`);
  // A runner that cannot say what it loads predates rollouts: say so instead of failing obscurely.
  await probeCapabilities(RUNNER);
});

async function setup(options: { enrolledWithKey?: boolean } = {}) {
  const broker = await new TestBroker({ devices: { [DEVICE]: PASSWORD } }).start();
  cleanup.push(() => broker.stop());
  const blobs = await new BlobServer(deviceAuthorization(DEVICE, PASSWORD)).start();
  cleanup.push(() => blobs.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-rollout-sim-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const signer = makeSigner();
  const dataDir = path.join(dir, "data");
  const agent = new Agent({
    enrollment: {
      version: 1,
      serverUrl: blobs.url,
      deviceId: DEVICE,
      name: "rollout-test",
      mqtt: { url: broker.url, username: DEVICE, password: PASSWORD },
      enrolledAt: new Date().toISOString(),
      ...(options.enrolledWithKey === false ? {} : { artifactPublicKey: signer.publicKey }),
    },
    dataDir,
    runner: {
      backend: "sim",
      bin: { path: RUNNER, source: "flag" },
      model: null,
      tokenizer: null,
      profile: null,
      extraArgs: FAST_SIM,
      llamaThreads: 1,
    },
    telemetryIntervalMs: 1_000,
    logger: silentLogger,
    restartPolicy: { initialMs: 100 },
    rollout: { downloadBackoff: { initialMs: 20, maxMs: 50, factor: 2, jitter: 0 } },
  });
  cleanup.push(() => agent.shutdown());
  const server = await Observer.connect(broker.url, `orchard/v1/devices/${DEVICE}/#`);
  cleanup.push(() => server.close());
  const events = () => server.on(topics.events(DEVICE)).map((e) => DeviceEvent.parse(e));
  const rolloutStates = (rolloutId: string) =>
    events().flatMap((e) => (e.kind === "rollout.state" && e.rolloutId === rolloutId ? [e] : []));
  const statuses = () => server.on(topics.status(DEVICE)) as DeviceStatus[];

  /** A simulated model file served by the blob server, signed, with the real runner's reference ids (or others). */
  async function simArtifact(
    name: string,
    header: Parameters<typeof writeSimModel>[0]["header"],
    referenceFrom?: string,
  ): Promise<TestArtifact> {
    const file = path.join(dir, `${name}.bin`);
    await writeSimModel({ file, sizeBytes: 3 * 1024 * 1024 + 17, header: { name, ...header } });
    const expected = header?.fail_load
      ? [1, 2, 3]
      : await simReferenceIds({ runnerBin: RUNNER, modelFile: referenceFrom ?? file, maxNewTokens: 8 });
    const artifact = makeArtifact(signer, {
      name,
      version: "1.0.0",
      files: [{ name: "model.bin", role: "model", data: await readFile(file) }],
      expectedTokenIds: expected,
    });
    blobs.add(artifact);
    return artifact;
  }

  async function roll(command: RolloutApplyCommand, until_: string[] = ["active", "failed", "rolled_back"]) {
    await server.publish(topics.cmd(DEVICE), command);
    return until(`rollout ${command.rolloutId} to end`, () =>
      rolloutStates(command.rolloutId).find((e) => e.kind === "rollout.state" && until_.includes(e.state)),
    );
  }

  return { agent, blobs, server, events, rolloutStates, statuses, simArtifact, roll, dataDir, dir, signer };
}

describe("a rollout with the real sim runner", () => {
  it("activates a simulated model, keeps a chat sent during activation waiting, then rolls back a bad one", async () => {
    const { agent, server, events, rolloutStates, statuses, simArtifact, roll, dir } = await setup();
    await agent.start();
    await until("ready on the command line's model", () => agent.supervisor.status().state === "ready");
    expect(agent.supervisor.status().model).toMatch(/sim/);

    // Loading takes a second, so a chat sent once activation starts surely arrives during it.
    const alpha = await simArtifact("alpha", { decode_tok_s: 300, load_ms: 1000 });
    // A chat sent the moment activation starts waits in the queue and is answered by the new model.
    let chatSent = false;
    const chatOnActivating = setInterval(() => {
      if (chatSent || !rolloutStates("ro-alpha").some((e) => e.state === "activating")) return;
      chatSent = true;
      void server.publish(topics.cmd(DEVICE), {
        type: "chat.start",
        id: "chat-cmd-1",
        ts: Date.now(),
        requestId: "chat-during-activation",
        session: "conv-1",
        messages: [{ role: "user", content: "Hello there" }],
        maxNewTokens: 4,
        temperature: 0,
      });
    }, 1);
    cleanup.push(async () => clearInterval(chatOnActivating));

    const done = await roll(applyCommand(alpha, { rolloutId: "ro-alpha", health: { timeoutMs: 20_000 } }));
    expect(done).toMatchObject({ state: "active", error: null, attempt: 1 });
    expect(rolloutStates("ro-alpha").map((e) => e.state)).toEqual([
      "pending",
      "preflight",
      "downloading",
      "verifying",
      "staged",
      "activating",
      "health_check",
      "active",
    ]);
    expect(
      events().some((e) => e.kind === "rollout.progress" && e.bytesDone === e.bytesTotal && e.bytesTotal === alpha.files[0]!.data.length),
    ).toBe(true);
    await until("ready on alpha", () => agent.supervisor.status().state === "ready" && /alpha/.test(agent.supervisor.status().model ?? ""));
    const online = await until("status with the active model", () =>
      statuses().find(
        (s): s is Extract<DeviceStatus, { state: "online" }> => s.state === "online" && s.activeModel?.artifactId === alpha.artifactId,
      ),
    );
    expect(online.activeModel).toEqual({
      name: "alpha",
      sha256: alpha.manifest.files[0]!.sha256,
      artifactId: alpha.artifactId,
      version: "1.0.0",
      runtime: "sim",
    });
    expect(online.previousModel).toBeNull();

    // The chat was held behind the activation (queue position 1), never refused, and answered once the new model was up.
    expect(chatSent).toBe(true);
    const chatMessages = () => server.on(topics.chat(DEVICE, "chat-during-activation")).map((m) => ChatStreamMessage.parse(m));
    expect(chatMessages()[0]).toMatchObject({ type: "accepted", queuePosition: 1 });
    const final = await until("the chat's answer", () => chatMessages().find((m) => m.type === "done" || m.type === "error"));
    expect(final).toMatchObject({ type: "done", stats: { modelSha256: alpha.manifest.files[0]!.sha256 } });
    expect(final.type === "done" && final.stats.model).toMatch(/alpha/);

    // Another model whose ids differ from its manifest's (the reference was taken with alpha): rolled back to alpha.
    const beta = await simArtifact("beta", { token_offset: 7 }, path.join(dir, "alpha.bin"));
    const bad = await roll(applyCommand(beta, { rolloutId: "ro-beta" }));
    expect(bad).toMatchObject({ state: "rolled_back", error: { code: "reference_mismatch" } });
    await until(
      "alpha ready again",
      () => agent.supervisor.status().state === "ready" && /alpha/.test(agent.supervisor.status().model ?? ""),
    );
    expect(agent.rollout.models().active?.artifactId).toBe(alpha.artifactId);

    // One that does not load at all.
    const broken = await simArtifact("broken", { fail_load: true });
    const failed = await roll(applyCommand(broken, { rolloutId: "ro-broken" }));
    expect(failed).toMatchObject({ state: "rolled_back", error: { code: "load_failed" } });
    expect(failed.kind === "rollout.state" && failed.error?.message).toMatch(/configured to fail loading/);
    await until(
      "alpha ready again",
      () => agent.supervisor.status().state === "ready" && /alpha/.test(agent.supervisor.status().model ?? ""),
    );

    // And an operator's rollback of alpha: back to the command line's model.
    await server.publish(topics.cmd(DEVICE), { type: "rollout.rollback", id: "rb-1", ts: Date.now(), rolloutId: "ro-alpha" });
    const result = await until("rollback result", () => events().find((e) => e.kind === "command.result" && e.commandId === "rb-1"));
    expect(result).toMatchObject({ ok: true, message: "rollout ro-alpha rolled back; the device runs its command-line model" });
    await until(
      "the command line's model",
      () => agent.supervisor.status().state === "ready" && !/alpha/.test(agent.supervisor.status().model ?? ""),
    );
    expect(agent.rollout.models()).toEqual({ active: null, previous: null });
  });

  it("an agent enrolled before rollouts fetches the server's key once, saves it in agent.json, and verifies with it", async () => {
    const { agent, blobs, simArtifact, roll, dataDir, signer } = await setup({ enrolledWithKey: false });
    blobs.artifactKey = { artifactPublicKey: signer.publicKey, keyId: signer.keyId };
    await agent.start();
    await until("the key fetched and saved", () => existsSync(path.join(dataDir, "agent.json")));
    const saved = JSON.parse(await readFile(path.join(dataDir, "agent.json"), "utf8")) as { artifactPublicKey?: string; deviceId: string };
    expect(saved).toMatchObject({ deviceId: DEVICE, artifactPublicKey: signer.publicKey });
    const gamma = await simArtifact("gamma", {});
    expect(await roll(applyCommand(gamma, { rolloutId: "ro-gamma" }))).toMatchObject({ state: "active" });
    expect(blobs.keyRequests).toBe(1);
  });
});
