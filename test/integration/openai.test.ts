/**
 * The OpenAI-compatible API as real clients use it: the `openai` npm package and
 * the `orchard chat` CLI against a real server with a real agent and sim runner.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

let server: TestServer;
let agent: TestAgent;
let slow: TestAgent;
let openai: OpenAI;
let model: string;

beforeAll(async () => {
  server = await startServer();
  agent = await enrollAgent(server, "openai-pi");
  agent.start(["--runner-arg=--sim-decode-tok-s=200", "--runner-arg=--sim-prefill-tok-s=2000"]);
  // Any sim answer (10-30 words) takes this one over 10 s, and it holds one chat at a time:
  // whether it takes a new request right after a client walks away shows whether the old one was cancelled.
  slow = await enrollAgent(server, "openai-slow-pi");
  slow.start(["--runner-arg=--sim-decode-tok-s=5", "--runner-arg=--sim-prefill-tok-s=2000", "--chat-queue", "1"]);
  await waitFor("the devices ready", async () => (await server.client.devices.list.query()).every((d) => d.runner?.state === "ready"));
  // A key created the way an admin creates one in the dashboard.
  const { key } = await server.client.apiKeys.create.mutate({ name: "openai test" });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
  model = `device:${agent.deviceId}`;
});

afterAll(async () => {
  for (const a of [agent, slow]) await a?.proc?.stop();
  await server?.stop();
  for (const a of [agent, slow]) if (a) await removeDir(a.dataDir);
  if (server) await removeDir(server.dataDir);
});

describe("OpenAI-compatible API", () => {
  it("lists the device and its model", async () => {
    const ids = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    expect(ids).toContain(model);
    expect(ids).toContain("sim (no model)");
  });

  it("answers without streaming, with usage", async () => {
    const completion = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "Say hello." }], max_tokens: 64 });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(completion.choices[0]!.finish_reason);
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens);
  });

  it("streams the same answer a non-streaming request gives (greedy), then usage", async () => {
    const messages = [{ role: "user" as const, content: "Describe an orchard." }];
    const whole = await openai.chat.completions.create({ model, messages, max_tokens: 64 });
    const stream = await openai.chat.completions.create({ model: "sim (no model)", messages, max_tokens: 64, stream: true });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe(whole.choices[0]!.finish_reason);
    expect(usage?.completion_tokens).toBe(whole.usage!.completion_tokens);
  });

  it("cancels the generation on the device when a streaming client disconnects", async () => {
    const slowModel = `device:${slow.deviceId}`;
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: slowModel, messages: [{ role: "user", content: "A very long story, please." }], max_tokens: 2000, stream: true },
      { signal: controller.signal },
    );
    let received = 0;
    try {
      for await (const chunk of stream) {
        if (chunk.choices[0]?.delta?.content) received++;
        if (received >= 2) controller.abort();
      }
    } catch (err) {
      expect((err as Error).name).toMatch(/Abort/);
    }
    expect(received).toBe(2);
    // While the abandoned answer ran, this device would refuse with 429 (queue of one) for another 10 s or more.
    const next = await waitFor(
      "the device to take a new request",
      () =>
        openai.chat.completions
          .create({ model: slowModel, messages: [{ role: "user", content: "Still there?" }], max_tokens: 2 })
          .catch(() => null),
      5_000,
    );
    expect(next.choices[0]!.message.content!.length).toBeGreaterThan(0);
  });

  it("answers errors in OpenAI's shape with the right status", async () => {
    const bad = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "not-a-key", maxRetries: 0 });
    await expect(bad.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
      status: 401,
      code: "invalid_api_key",
    });
    await expect(
      openai.chat.completions.create({ model: "device:pi-nosuchdevice", messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toMatchObject({
      status: 404,
      code: "model_not_found",
    });
    await expect(openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
      status: 404,
      code: "model_not_found",
    });
    await expect(openai.chat.completions.create({ model, messages: [] })).rejects.toMatchObject({ status: 400 });
    await expect(openai.chat.completions.create({ model, messages: [{ role: "user", content: "" }] })).rejects.toMatchObject({
      status: 400,
    });
    await expect(
      openai.chat.completions.create({ model, messages: [{ role: "user", content: "x".repeat(40_000) }] }),
    ).rejects.toMatchObject({ status: 400, code: "message_too_long" });
    const raw = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "application/json" },
      body: "{nope",
    });
    expect(raw.status).toBe(400);
    expect(await raw.json()).toMatchObject({ error: { type: "invalid_request_error", code: "invalid_json" } });
  });

  it("streams to the terminal with orchard chat", async () => {
    const cli = spawn(process.execPath, [path.join(ROOT, "apps/cli/bin/orchard.mjs"), "chat", "openai-pi", "Hello", "from", "the", "CLI"], {
      env: { ...process.env, ORCHARD_URL: server.url, ORCHARD_API_KEY: server.apiKey },
    });
    let out = "";
    let err = "";
    cli.stdout.on("data", (c: Buffer) => (out += c.toString()));
    cli.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => cli.on("exit", resolve));
    expect(code, err).toBe(0);
    expect(out.trim().length).toBeGreaterThan(0);
    expect(err).toMatch(/\d+ tokens · [\d.]+ tok\/s/);
  });
});
