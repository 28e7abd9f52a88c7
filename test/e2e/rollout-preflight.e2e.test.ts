/**
 * New rollout says, per device and before submit, whether the device can load the
 * chosen model and why not, in Chromium against a real server and two real agents:
 * pf-ok runs the sim runner as usual; pf-no's orchard-runner says (--capabilities) it
 * loads only executorch, so it cannot load a sim model. The dialog shows the reason
 * next to pf-no and "1 of 2 devices can load this model", keeps Roll out disabled,
 * and "Leave out 1 device" starts the rollout on pf-ok alone.
 */
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planPush, push } from "../../apps/cli/src/artifact.ts";
import type { ArtifactDto } from "@orchard/client";
import { writeSimModel } from "../../scripts/sim-model.ts";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { RUNNER_BIN, enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

const MiB = 1024 * 1024;

describe("rollout preflight in Chromium", () => {
  let server: TestServer;
  let ok: TestAgent;
  let no: TestAgent;
  let browser: TestBrowser;
  let page: Page;
  let tmp: string;
  let model: ArtifactDto;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-preflight-e2e-"));
    // The real runner, except that it says it loads executorch models only.
    const executorchOnly = path.join(tmp, "executorch-only-runner");
    const caps = JSON.stringify({ version: "0.1.0", runtimes: { executorch: { versions: ["1.2.0"], profiles: ["llm-standard"] } } });
    await writeFile(
      executorchOnly,
      `#!/bin/sh\nfor a in "$@"; do [ "$a" = --capabilities ] && { echo '${caps}'; exit 0; }; done\nexec '${RUNNER_BIN}' "$@"\n`,
    );
    await chmod(executorchOnly, 0o755);

    server = await startServer();
    ok = await enrollAgent(server, "pf-ok");
    no = await enrollAgent(server, "pf-no");
    ok.start();
    no.start(["--runner-bin", executorchOnly]);
    for (const a of [ok, no]) {
      await waitFor(`${a.name} to say what it loads`, async () => {
        const d = await server.client.devices.get.query({ id: a.deviceId });
        return d.runner?.state === "ready" && d.runtimes !== null;
      });
    }
    expect((await server.client.devices.get.query({ id: no.deviceId })).runtimes).not.toContain("sim");

    const file = path.join(tmp, "pf.sim");
    await writeSimModel({ file, sizeBytes: 4 * MiB, header: { name: "pf" } });
    const plan = await planPush({
      files: [file],
      name: "pf-sim",
      version: "1",
      runtime: "sim",
      runtimeVersion: undefined,
      profile: undefined,
      maxContext: undefined,
      referencePrompt: "The capital of France is",
      expectedIds: undefined,
    });
    model = await push(plan, { client: server.client, url: server.url, apiKey: server.apiKey, err: () => undefined, tty: false });

    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    for (const a of [ok, no]) await a?.proc?.stop();
    await server?.stop();
    for (const a of [ok, no]) if (a) await removeDir(a.dataDir);
    if (server) await removeDir(server.dataDir);
    if (tmp) await removeDir(tmp);
  });

  it("shows which devices cannot load the model and why before submit, and starts without them", async () => {
    await page.goto(`${server.url}/rollouts`);
    await page.getByTestId("rollout-new").click();
    await page.getByTestId("rollout-model").selectOption(model.id);
    const option = (a: TestAgent) => page.locator(`[data-testid="rollout-device-option"][data-device-id="${a.deviceId}"]`);
    await waitFor("the devices' fit", async () => (await option(no).getAttribute("data-fit")) === "refused");
    expect(await option(ok).getAttribute("data-fit")).toBe("ok");
    // Shown before either device is chosen.
    const reason = page.getByTestId("rollout-device-reason");
    expect(await reason.allTextContents()).toEqual([
      `pf-no cannot load sim models: its runners load ${(await server.client.devices.get.query({ id: no.deviceId })).runtimes!.join(", ")}.`,
    ]);

    await option(ok).locator("input").check();
    await option(no).locator("input").check();
    const summary = page.getByTestId("rollout-fit-summary");
    await waitFor("the summary", async () => ((await summary.textContent()) ?? "").includes("1 of 2 devices can load this model."));
    expect(await summary.textContent()).toContain("The rollout cannot start while a chosen device cannot load it");
    expect(await page.getByTestId("rollout-start").isDisabled()).toBe(true);

    await page.getByTestId("rollout-leave-out").click();
    expect(await option(no).locator("input").isChecked()).toBe(false);
    await waitFor("Roll out to be enabled", async () => await page.getByTestId("rollout-start").isEnabled());
    expect(await page.getByTestId("rollout-start").textContent()).toContain("Roll out to 1 device");
    expect(await summary.textContent()).toContain("1 of 1 device can load this model.");
    await page.getByTestId("rollout-start").click();
    await page.waitForURL(/\/rollouts\/[A-Za-z0-9_-]+$/);
    await waitFor(
      "the rollout to complete",
      async () => (await page.getByTestId("rollout").getAttribute("data-state")) === "completed",
      90_000,
    );
    const rollouts = await server.client.rollouts.list.query();
    expect(rollouts).toHaveLength(1);
    const rollout = await server.client.rollouts.get.query({ id: rollouts[0]!.id });
    expect(rollout.devices.map((d) => d.deviceId)).toEqual([ok.deviceId]);
  });
});
