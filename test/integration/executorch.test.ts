/**
 * ExecuTorch end to end with real processes: the tiny random-weight Gemma 4 .pte that
 * tools/export makes (scripts/tiny-pte.ts) is pushed with the real
 * `orchard artifact push DIR` (its reference ids come from the folder's
 * orchard-model.json, never typed), rolled out to an agent whose orchard-runner is
 * linked against the ExecuTorch wheel, and passes the health gate on the real runtime;
 * a copy whose reference ids do not match its .pte is rolled back by the gate. Then a
 * dashboard chat and an OpenAI streaming request are answered by the .pte.
 */
import { cp, mkdtemp, readFile, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RolloutDto } from "@orchard/contracts";
import type { ArtifactDto } from "@orchard/client";
import { executorchUnavailable, tinyModel, type ExportedModel } from "../../scripts/tiny-pte.ts";
import { enrollAgent, runCli, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

const unavailable = executorchUnavailable();
if (unavailable && process.env.CI) throw new Error(`the ExecuTorch end-to-end tests cannot run in CI: ${unavailable}`);

/** The first use exports the tiny model (≈ 1.5–3 min on 2 cores); later runs reuse test/.models. */
const EXPORT_TIMEOUT_MS = 600_000;

let server: TestServer;
let agent: TestAgent;
let tmp: string;
let tiny: { dir: string; model: string; manifest: ExportedModel };

const cli = (args: string[]) => runCli(server, args);

async function pushFolder(dir: string, version: string): Promise<ArtifactDto> {
  const pushed = await cli(["artifact", "push", dir, "--version", version, "--json"]);
  expect(pushed.code, pushed.err).toBe(0);
  return JSON.parse(pushed.out) as ArtifactDto;
}

async function rollout(artifact: ArtifactDto, name: string): Promise<{ code: number | null; rollout: RolloutDto; err: string }> {
  const run = await cli(["rollout", "create", "--artifact", artifact.id, "--device", agent.name, "--name", name, "--wait", "--json"]);
  return { code: run.code, rollout: JSON.parse(run.out) as RolloutDto, err: run.err };
}

async function runningOn(artifactId: string) {
  return waitFor(
    `${agent.name} ready on ${artifactId.slice(0, 8)}`,
    async () => {
      const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
      return d?.online && d.runner?.state === "ready" && d.activeModel?.artifactId === artifactId ? d : null;
    },
    60_000,
  );
}

beforeAll(async () => {
  if (unavailable) return;
  tiny = tinyModel("gemma4-e2b-extcache");
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-executorch-e2e-"));
  server = await startServer();
  agent = await enrollAgent(server, "et-pi");
  agent.start();
  await waitFor("the agent ready", async () => (await server.client.devices.list.query())[0]?.runner?.state === "ready");
}, EXPORT_TIMEOUT_MS);

afterAll(async () => {
  await agent?.proc?.stop();
  await server?.stop();
  if (agent) await removeDir(agent.dataDir);
  if (server) await removeDir(server.dataDir);
  if (tmp) await removeDir(tmp);
});

describe.skipIf(unavailable !== null)(`ExecuTorch end to end${unavailable ? ` (skipped: ${unavailable})` : ""}`, () => {
  let good: ArtifactDto;

  it("`orchard artifact push DIR` takes the profile, context and reference ids from the export's orchard-model.json", async () => {
    good = await pushFolder(tiny.dir, "1");
    expect(good).toMatchObject({
      name: tiny.manifest.name,
      runtime: "executorch",
      runtimeVersion: tiny.manifest.runtimeVersion,
      profile: "gemma4-extcache",
      maxContext: tiny.manifest.maxContext,
      reference: tiny.manifest.reference,
    });
    expect(good.files.map((f) => f.name)).toEqual(["model.pte", "chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]);
  });

  it("rolls the .pte out; the health gate runs it on the real runtime and its ids are the manifest's", async () => {
    const run = await rollout(good, "tiny gemma 4");
    expect(run.code, `${run.err}\n${agent.proc?.output.slice(-3000)}`).toBe(0);
    expect(run.rollout.state).toBe("completed");
    const d = await runningOn(good.id);
    expect(d.runner).toMatchObject({ backend: "executorch", maxContext: tiny.manifest.maxContext });
    expect(d.runner?.model).toContain("gemma4-extcache");
    expect(agent.proc?.output).toContain("health gate passed");
  }, 180_000);

  it("a copy whose reference ids are not what its .pte computes fails the gate and is rolled back", async () => {
    const copy = path.join(tmp, "tampered");
    await cp(tiny.dir, copy, { recursive: true });
    const manifestFile = path.join(copy, "orchard-model.json");
    const m = JSON.parse(await readFile(manifestFile, "utf8")) as ExportedModel;
    m.reference.expectedTokenIds = [...m.reference.expectedTokenIds].reverse();
    await writeFile(manifestFile, JSON.stringify(m));
    const tampered = await pushFolder(copy, "tampered");

    const run = await rollout(tampered, "tampered copy");
    expect(run.code).toBe(1);
    const canary = run.rollout.devices[0]!;
    expect(canary).toMatchObject({ state: "rolled_back", error: { code: "reference_mismatch" } });
    // Back on the good model, which still answers.
    await runningOn(good.id);
  }, 180_000);

  it("a dashboard chat and an OpenAI streaming request are answered by the .pte", async () => {
    const sent = await server.client.chat.send.mutate({
      deviceId: agent.deviceId,
      content: tiny.manifest.reference.prompt,
      maxNewTokens: 8,
    });
    const answer = await waitFor(
      "the answer",
      async () => {
        const c = await server.client.chat.get.query({ id: sent.conversationId });
        const a = c.messages.find((x) => x.role === "assistant" && x.status !== "streaming");
        return a ?? null;
      },
      30_000,
    );
    expect(answer.status).toBe("complete");
    expect(answer.stats).toMatchObject({ backend: "executorch", promptTokens: tiny.manifest.promptTokenIds.length, generatedTokens: 8 });

    const { key } = await server.client.apiKeys.create.mutate({ name: "executorch test" });
    const openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
    const messages = [{ role: "user" as const, content: tiny.manifest.reference.prompt }];
    const stream = await openai.chat.completions.create({ model: `device:${agent.deviceId}`, messages, max_tokens: 8, stream: true });
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content !== undefined) chunks++;
      usage = chunk.usage ?? usage;
    }
    expect(chunks).toBeGreaterThan(0);
    expect(usage).toMatchObject({ prompt_tokens: tiny.manifest.promptTokenIds.length, completion_tokens: 8 });
  }, 120_000);
});
