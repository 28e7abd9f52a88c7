/**
 * TLS end to end, as docs/operations.md sets it up: a lab CA from infra/tls/make-lab-ca.sh,
 * the server on HTTPS (ORCHARD_TLS_CERT_FILE/KEY_FILE), Mosquitto from the shipped
 * mosquitto.conf with its TLS listener, PostgreSQL when ORCHARD_TEST_POSTGRES_URL is set.
 * An agent enrolled with `--ca` reaches the server over https:// and the broker over
 * mqtts://, answers a chat, and downloads a rolled-out model over https://; without the
 * CA its enrollment is refused with a sentence that says what to do. The CLI uses
 * NODE_EXTRA_CA_CERTS, as documented.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArtifactDto } from "@orchard/client";
import { REFERENCE_PROMPT, simReferenceIds, writeSimModel } from "../../scripts/sim-model.ts";
import { createPostgresDatabase } from "../../apps/web/test/db.ts";
import {
  ROOT,
  RUNNER_BIN,
  enrollAgent,
  removeDir,
  startProcess,
  startServer,
  waitFor,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";
import { mosquittoMissing, startMosquitto, type TestMosquitto } from "../support/mosquitto.ts";

const missing = mosquittoMissing();
if (missing && process.env.CI) throw new Error(`Mosquitto is required in CI: ${missing}`);
if (missing) console.warn(`skipping tls.test.ts: ${missing}`);

const MiB = 2 ** 20;
let mosquitto: TestMosquitto;
let server: TestServer;
let agent: TestAgent;
let tmp: string;

describe.skipIf(missing !== null)("TLS: HTTPS server, Mosquitto over mqtts, agent with a lab CA", () => {
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-tls-"));
    mosquitto = await startMosquitto();
    const tlsDir = path.dirname(mosquitto.caFile);
    server = await startServer({
      databaseUrl: process.env.ORCHARD_TEST_POSTGRES_URL ? await createPostgresDatabase() : undefined,
      // The server's certificate is the broker's (both are "localhost" here), signed by the lab CA.
      tls: { certFile: path.join(tlsDir, "server.crt"), keyFile: path.join(tlsDir, "server.key"), caFile: mosquitto.caFile },
      env: {
        MQTT_URL: mosquitto.tlsUrl,
        ORCHARD_PUBLIC_MQTT_URL: mosquitto.tlsUrl,
        // The server's own MQTT connection trusts the lab CA the standard Node way.
        NODE_EXTRA_CA_CERTS: mosquitto.caFile,
        MQTT_USERNAME: "orchard-server",
        MQTT_PASSWORD: "tls-test-server-password",
        MQTT_DYNSEC_USERNAME: mosquitto.admin.username,
        MQTT_DYNSEC_PASSWORD: mosquitto.admin.password,
      },
    });
  }, 120_000);

  afterAll(async () => {
    await agent?.proc?.stop();
    await server?.stop();
    await mosquitto?.stop();
    if (agent) await removeDir(agent.dataDir);
    if (server) await removeDir(server.dataDir);
    if (tmp) await removeDir(tmp);
  });

  it("refuses to enroll over https without the CA, and says to pass --ca", async () => {
    const { token } = await server.client.enrollment.create.mutate({ deviceName: "tls-no-ca", ttlMinutes: 5 });
    const dataDir = await mkdtemp(path.join(tmp, "no-ca-"));
    const enroll = startProcess("enroll without --ca", [
      path.join(ROOT, "apps/agent/bin/orchard-agent.mjs"),
      "enroll",
      "--server",
      server.url,
      "--token",
      token,
      "--data-dir",
      dataDir,
    ]);
    expect((await enroll.exited).code).toBe(1);
    expect(enroll.output).toMatch(/not signed by a CA this device trusts .*enroll with --ca FILE/);
    // The token was not spent: the device is not in the fleet.
    expect((await server.client.devices.list.query()).map((d) => d.name)).not.toContain("tls-no-ca");
  });

  it("an agent enrolled with --ca comes online over mqtts and answers a chat", async () => {
    agent = await enrollAgent(server, "tls-pi", { enrollArgs: ["--ca", mosquitto.caFile] });
    agent.start(["--log-format", "json"]);
    const device = await waitFor(
      "the agent online over mqtts with its runner ready",
      async () => {
        const d = await server.client.devices.get.query({ id: agent.deviceId });
        return d?.online && d.runner?.state === "ready" ? d : null;
      },
      60_000,
    );
    expect(device.name).toBe("tls-pi");
    // The agent was told the TLS listener and used it.
    expect(agent.proc!.output).toContain(`"url":"${mosquitto.tlsUrl}"`);

    const sent = await server.client.chat.send.mutate({ deviceId: agent.deviceId, content: "Hello over TLS", maxNewTokens: 8 });
    const answer = await waitFor("the answer", async () => {
      const c = await server.client.chat.get.query({ id: sent.conversationId });
      const m = c.messages.find((x) => x.id === sent.assistantMessageId);
      return m && m.status !== "streaming" ? m : null;
    });
    expect(answer.status).toBe("complete");
    expect(answer.content.length).toBeGreaterThan(0);
  }, 90_000);

  it("rolls a model out over https: pushed by the CLI (NODE_EXTRA_CA_CERTS), downloaded by the agent with its CA", async () => {
    const file = path.join(tmp, "tls-model.sim");
    await writeSimModel({ file, sizeBytes: 8 * MiB, header: { name: "tls-model" } });
    const ids = await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile: file });
    const push = spawn(
      process.execPath,
      [
        path.join(ROOT, "apps/cli/bin/orchard.mjs"),
        "artifact",
        "push",
        file,
        "--name",
        "tls-model",
        "--version",
        "1",
        "--runtime",
        "sim",
        "--reference-prompt",
        REFERENCE_PROMPT,
        "--expected-ids",
        ids.join(","),
        "--json",
      ],
      { env: { ...process.env, ORCHARD_URL: server.url, ORCHARD_API_KEY: server.apiKey, NODE_EXTRA_CA_CERTS: mosquitto.caFile } },
    );
    let out = "";
    let err = "";
    push.stdout.on("data", (c: Buffer) => (out += c.toString()));
    push.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => push.on("exit", resolve));
    expect(code, err).toBe(0);
    const artifact = JSON.parse(out) as ArtifactDto;

    const created = await server.client.rollouts.create.mutate({
      artifactId: artifact.id,
      deviceIds: [agent.deviceId],
      strategy: { canary: 0, retries: 0, health: { referenceCheck: true, minDecodeTokS: null, timeoutMs: 30_000 } },
    });
    const done = await waitFor(
      "the rollout to end",
      async () => {
        const r = await server.client.rollouts.get.query({ id: created.id });
        return r.state !== "running" ? r : null;
      },
      90_000,
    );
    expect(done.state, JSON.stringify(done.devices)).toBe("completed");
    expect(done.devices[0]).toMatchObject({ state: "active", bytesDone: 8 * MiB, error: null });
  }, 120_000);
});
