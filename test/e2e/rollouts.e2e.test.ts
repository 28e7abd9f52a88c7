/**
 * Rollouts in a real browser (Debian's Chromium via playwright-core) against a real
 * server and three agents with the sim runner: upload a model on the Models page, tag a
 * device on its page, roll the model out from the Rollouts page (by tag and by device,
 * canary first) and watch every progress bar fill, then roll a second model (pushed
 * with the CLI) out from a device page and roll that device back to the model it kept.
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planPush, push } from "../../apps/cli/src/artifact.ts";
import type { ArtifactDto } from "@orchard/client";
import { writeSimModel } from "../../scripts/sim-model.ts";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

const MiB = 1024 * 1024;

describe("rollouts in Chromium", () => {
  let server: TestServer;
  let agents: TestAgent[];
  let browser: TestBrowser;
  let page: Page;
  let tmp: string;
  let v1: ArtifactDto;
  let v2: ArtifactDto;

  async function pushModel(version: string): Promise<ArtifactDto> {
    const file = path.join(tmp, `e2e-${version}.sim`);
    await writeSimModel({ file, sizeBytes: 16 * MiB, header: { name: `e2e-${version}` } });
    const plan = await planPush({
      files: [file],
      name: "e2e-sim",
      version,
      runtime: "sim",
      runtimeVersion: undefined,
      profile: undefined,
      maxContext: undefined,
      referencePrompt: "The capital of France is",
      expectedIds: undefined,
    });
    return push(plan, { client: server.client, url: server.url, apiKey: server.apiKey, err: () => undefined, tty: false });
  }

  async function onModel(agent: TestAgent, artifactId: string) {
    await waitFor(`${agent.name} to run ${artifactId.slice(0, 8)}`, async () => {
      const d = await server.client.devices.get.query({ id: agent.deviceId });
      return d.online && d.runner?.state === "ready" && d.activeModel?.artifactId === artifactId;
    });
  }

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-rollouts-e2e-"));
    server = await startServer();
    agents = [];
    for (const name of ["e2e-a", "e2e-b", "e2e-c"]) agents.push(await enrollAgent(server, name));
    for (const a of agents) a.start();
    for (const a of agents) {
      await waitFor(`${a.name} online`, async () => (await server.client.devices.get.query({ id: a.deviceId })).runner?.state === "ready");
    }
    v2 = await pushModel("2");
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    for (const a of agents ?? []) await a.proc?.stop();
    await server?.stop();
    for (const a of agents ?? []) await removeDir(a.dataDir);
    if (server) await removeDir(server.dataDir);
    if (tmp) await removeDir(tmp);
  });

  it("uploads a model on the Models page", async () => {
    const file = path.join(tmp, "e2e-1.sim");
    await writeSimModel({ file, sizeBytes: 16 * MiB, header: { name: "e2e-1" } });
    await page.getByTestId("nav-models").click();
    await page.waitForURL(`${server.url}/models`);
    await page.getByTestId("models-upload").click();
    await page.getByTestId("model-file").setInputFiles(file);
    await page.getByTestId("model-name").fill("e2e-sim");
    await page.getByTestId("model-version").fill("1");
    await page.getByTestId("model-runtime-select").selectOption("sim");
    await page.getByTestId("model-ref-prompt").fill("The capital of France is");
    await page.getByTestId("model-submit").click();
    const uploaded = await waitFor(
      "the upload to become a model",
      async () => (await server.client.artifacts.list.query()).find((m) => m.name === "e2e-sim" && m.version === "1"),
      60_000,
    );
    expect(uploaded).toMatchObject({ runtime: "sim", source: "upload" });
    await waitFor("its row", async () => (await page.locator('[data-testid="model-row"][data-name="e2e-sim"]').count()) === 2);
    v1 = uploaded;
  });

  it("tags a device on its page, and refuses a tag it cannot take", async () => {
    const a = agents[0]!;
    await page.goto(`${server.url}/devices/${a.deviceId}`);
    await page.getByTestId("device-tags-edit").click();
    await page.getByTestId("device-tags-input").fill("Kitchen Lab");
    await page.getByTestId("device-tags-save").click();
    await page.getByText("A tag uses lower-case letters").waitFor();
    await page.getByTestId("device-tags-input").fill("kitchen, lab");
    await page.getByTestId("device-tags-save").click();
    await waitFor("the tags to show", async () => (await page.getByTestId("device-tag").allTextContents()).join(",") === "kitchen,lab");
    expect((await server.client.devices.get.query({ id: a.deviceId })).tags).toEqual(["kitchen", "lab"]);
  });

  it("rolls a model out from the Rollouts page, by tag and by device, and every progress bar fills", async () => {
    await page.getByTestId("nav-rollouts").click();
    await page.waitForURL(`${server.url}/rollouts`);
    await page.getByText("No rollouts yet").waitFor();
    await page.getByTestId("rollout-new").click();
    await page.getByTestId("rollout-model").selectOption(v1.id);
    await page.locator('[data-testid="rollout-tag"][data-tag="lab"]').click();
    for (const a of agents.slice(1))
      await page.locator(`[data-testid="rollout-device-option"][data-device-id="${a.deviceId}"] input`).check();
    await page.getByTestId("rollout-canary").fill("1");
    await page.getByTestId("rollout-batch").fill("2");
    await expect(page.getByTestId("rollout-start").textContent()).resolves.toContain("Roll out to 3 devices");
    await page.getByTestId("rollout-start").click();
    await page.waitForURL(/\/rollouts\/[A-Za-z0-9_-]+$/);

    const rollout = page.getByTestId("rollout");
    await waitFor("the rollout to complete in the page", async () => (await rollout.getAttribute("data-state")) === "completed", 90_000);
    const rows = page.getByTestId("rollout-device");
    expect(await rows.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      const row = rows.nth(i);
      expect(await row.getAttribute("data-state")).toBe("active");
      expect(await row.getByRole("progressbar").getAttribute("aria-valuenow")).toBe("100");
    }
    expect(await page.getByTestId("rollout-counts").first().textContent()).toBe("3/3 active");
    expect(await page.getByText("canary", { exact: true }).count()).toBe(1);
    for (const a of agents) await onModel(a, v1.id);

    // The list shows it too.
    await page.getByTestId("nav-rollouts").click();
    await page.getByTestId("rollout-row").first().waitFor();
    expect(await page.getByTestId("rollout-row").first().getAttribute("data-state")).toBe("completed");
  });

  it("rolls a second model out from a device page, then rolls that device back to the model it kept", async () => {
    const a = agents[0]!;
    await page.goto(`${server.url}/devices/${a.deviceId}`);
    await waitFor(
      "the active model",
      async () => (await page.getByTestId("device-active-model").getAttribute("data-artifact-id")) === v1.id,
    );
    await page.getByTestId("device-new-rollout").click();
    await page.waitForURL(/\/rollouts\?device=/);
    await page.getByTestId("rollout-model").selectOption(v2.id);
    await expect(page.getByTestId("rollout-start").textContent()).resolves.toContain("Roll out to 1 device");
    await page.getByTestId("rollout-start").click();
    await page.waitForURL(/\/rollouts\/[A-Za-z0-9_-]+$/);
    await waitFor(
      "the rollout to complete",
      async () => (await page.getByTestId("rollout").getAttribute("data-state")) === "completed",
      90_000,
    );
    await onModel(a, v2.id);

    await page.goto(`${server.url}/devices/${a.deviceId}`);
    await waitFor("the new model and the kept one", async () => {
      const active = await page.getByTestId("device-active-model").getAttribute("data-artifact-id");
      const kept = await page.getByTestId("device-previous-model").getAttribute("data-artifact-id");
      return active === v2.id && kept === v1.id;
    });
    const rollback = page.getByTestId("device-rollback");
    await waitFor("Roll back to be offered", async () => await rollback.isEnabled());
    await rollback.click();
    await page.getByTestId("rollout-device-rollback-confirm").click();
    await onModel(a, v1.id);
    await waitFor("the page to show the model it went back to", async () => {
      return (await page.getByTestId("device-active-model").getAttribute("data-artifact-id")) === v1.id;
    });
  });
});
