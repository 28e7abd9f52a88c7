/**
 * llama.cpp models and the one-click runtime comparison in a real browser (Debian's
 * Chromium via playwright-core): upload a simulated model and the tiny random-weights
 * GGUF on the Models page (the .gguf picks the llama.cpp runtime, and the list labels it
 * so), roll the sim model out to one agent, then "Compare runtimes" from the Benchmarks
 * page: the live step text, both runtimes side by side at the end, and the device back on
 * its own model. test/integration/compare-runtimes.test.ts covers the same from the CLI.
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSimModel } from "../../scripts/sim-model.ts";
import { writeTinyGguf } from "../../scripts/tiny-gguf.ts";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

const MiB = 1024 * 1024;

describe("runtime comparison in Chromium", () => {
  let server: TestServer;
  let agent: TestAgent;
  let browser: TestBrowser;
  let page: Page;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-compare-e2e-"));
    server = await startServer();
    agent = await enrollAgent(server, "compare-browser");
    agent.start();
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  });

  afterAll(async () => {
    await browser?.close();
    await agent?.proc?.stop();
    await server?.stop();
    if (agent) await removeDir(agent.dataDir);
    if (server) await removeDir(server.dataDir);
    if (tmp) await removeDir(tmp);
  });

  /** The add-model dialog, upload mode; `runtime` is chosen only when given (a .gguf chooses llama.cpp itself). */
  async function upload(file: string, name: string, runtime?: string) {
    await page.getByTestId("models-upload").click();
    await page.getByTestId("model-file").setInputFiles(file);
    await page.getByTestId("model-name").fill(name);
    await page.getByTestId("model-version").fill("1");
    if (runtime) await page.getByTestId("model-runtime-select").selectOption(runtime);
    await page.getByTestId("model-submit").click();
    const row = page.locator(`[data-testid="model-row"][data-name="${name}"]`);
    await row.waitFor({ timeout: 60_000 });
    return row;
  }

  it("uploads a tiny GGUF with the llama.cpp runtime and lists it with its runtime badge", async () => {
    await page.getByTestId("nav-models").click();
    await page.waitForURL(`${server.url}/models`);
    const simRow = await upload(
      (await writeSimModel({ file: path.join(tmp, "compare.sim"), sizeBytes: MiB, header: { name: "compare" } })).file,
      "compare-sim",
      "sim",
    );
    await expect(simRow.getByTestId("model-runtime").getAttribute("data-runtime")).resolves.toBe("sim");

    const gguf = await writeTinyGguf({ file: path.join(tmp, "tiny.gguf"), seed: 3 });
    await page.getByTestId("models-upload").click();
    await page.getByTestId("model-file").setInputFiles(gguf.file);
    // The file's extension chose the runtime and its version (what orchard-llama-runner --capabilities reports).
    await expect(page.getByTestId("model-runtime-select").inputValue()).resolves.toBe("llama.cpp");
    await expect(page.getByTestId("model-runtime-version").inputValue()).resolves.toBe("v0.4.0");
    await page.getByTestId("model-name").fill("tiny-gguf");
    await page.getByTestId("model-version").fill("1");
    await page.getByTestId("model-submit").click();
    const row = page.locator('[data-testid="model-row"][data-name="tiny-gguf"]');
    await row.waitFor({ timeout: 60_000 });
    const badge = row.getByTestId("model-runtime");
    await expect(badge.getAttribute("data-runtime")).resolves.toBe("llama.cpp");
    await expect(badge.textContent()).resolves.toBe("llama.cpp v0.4.0");

    const created = (await server.client.artifacts.list.query()).find((m) => m.name === "tiny-gguf");
    expect(created).toMatchObject({
      runtime: "llama.cpp",
      runtimeVersion: "v0.4.0",
      profile: null,
      files: [{ name: "tiny.gguf", role: "model", size: gguf.sizeBytes, sha256: gguf.sha256 }],
    });
  });

  it("compares the sim model with the GGUF on one device from the Benchmarks page", async () => {
    const models = await server.client.artifacts.list.query();
    const sim = models.find((m) => m.name === "compare-sim")!;
    const gguf = models.find((m) => m.name === "tiny-gguf")!;
    // The device's model comes from a rollout, so the comparison can put it back.
    const rollout = await server.client.rollouts.create.mutate({
      artifactId: sim.id,
      deviceIds: [agent.deviceId],
      strategy: { canary: 0 },
    });
    await waitFor(
      "the sim model's rollout",
      async () => (await server.client.rollouts.get.query({ id: rollout.id })).state === "completed",
      120_000,
    );
    await waitFor("the device ready on the sim model", async () => {
      const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
      return d?.online && d.runner?.state === "ready" && d.activeModel?.artifactId === sim.id;
    });

    await page.getByTestId("nav-benchmarks").click();
    await page.waitForURL(`${server.url}/benchmarks`);
    await page.getByTestId("compare-runtimes").click();
    await page.getByTestId("compare-device").selectOption(agent.deviceId);
    // The device's own model is preselected as A; the GGUF becomes B.
    const option = (id: string) => page.locator(`[data-testid="compare-model-option"][data-artifact-id="${id}"] input`);
    await waitFor("the running model preselected", () => option(sim.id).isChecked());
    await option(gguf.id).check();
    await page.getByTestId("compare-max-tokens").fill("4");
    await expect(page.getByTestId("compare-start").textContent()).resolves.toContain("Compare 2 models");
    await page.getByTestId("compare-start").click();
    await page.waitForURL(/\/benchmarks\/compare\/[A-Za-z0-9_-]+$/);
    const view = page.getByTestId("comparison-view");

    // The steps change live (socket.io, no reload): record every step text shown until the end.
    const seen = new Set<string>();
    await waitFor(
      "the comparison to complete",
      async () => {
        const text = (await page.getByTestId("comparison-step").textContent())?.trim();
        if (text) seen.add(text);
        const state = await view.getAttribute("data-state");
        if (state === "failed" || state === "cancelled") throw new Error(`comparison ${state}: ${await view.textContent()}`);
        return state === "completed";
      },
      120_000,
    );
    expect(seen.size).toBeGreaterThan(1);
    await expect(page.getByTestId("comparison-state").textContent()).resolves.toBe("completed");
    const steps = await page.getByTestId("comparison-step-row").evaluateAll((els) => els.map((e) => e.getAttribute("data-step-state")));
    expect(steps).toEqual(["done", "done"]);

    // Side by side: both runtimes as columns, every metric with a value, B's factor against A.
    const headers = await page.getByTestId("comparison-model").allTextContents();
    expect(headers).toHaveLength(2);
    expect(headers[0]).toMatch(/^A: compare-sim 1 \(sim\)/);
    expect(headers[1]).toMatch(/^B: tiny-gguf 1 \(llama\.cpp\)/);
    const rows = page.getByTestId("comparison-row");
    await expect(rows.count()).resolves.toBeGreaterThan(0);
    const decode = page.getByTestId("comparison-aggregate").filter({ hasText: "Decode" });
    const values = await decode.locator("td").allTextContents();
    expect(values.slice(2, 4).every((v) => Number.parseFloat(v) > 0)).toBe(true);
    await expect(decode.getByTestId("comparison-speedup").textContent()).resolves.toMatch(/×/);

    // The device runs its own model again.
    await waitFor("the sim model back on the device", async () => {
      const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
      return d?.runner?.state === "ready" && d.activeModel?.artifactId === sim.id;
    });
  });
});
