/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core):
 * sign in, see two agents' devices online, stop one agent and watch its row turn
 * offline without reloading the page.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, type TestAgent, type TestServer } from "../support/harness.ts";

describe("dashboard in Chromium", () => {
  let server: TestServer;
  let agents: TestAgent[] = [];
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    server = await startServer();
    agents = [await enrollAgent(server, "browser-pi-1"), await enrollAgent(server, "browser-pi-2")];
    for (const agent of agents) agent.start();
    browser = await launchBrowser();
    page = browser.page;
  });

  afterAll(async () => {
    await browser?.close();
    for (const agent of agents) await agent.proc?.stop();
    await server?.stop();
    for (const agent of agents) await removeDir(agent.dataDir);
    if (server) await removeDir(server.dataDir);
  });

  const row = (deviceId: string) => page.locator(`[data-testid="device-row"][data-device-id="${deviceId}"]`);

  it("signs in and lands on the fleet page", async () => {
    await page.goto(`${server.url}/`);
    await page.waitForURL(/\/login/);
    await page.getByLabel(/username/i).fill("admin");
    await page.getByLabel(/password/i).fill("definitely-wrong");
    await page.getByRole("button", { name: /sign in/i }).click();
    await page.getByText(/wrong username or password/i).waitFor({ timeout: 10_000 });
    await page.getByLabel(/password/i).fill(server.adminPassword);
    await page.getByRole("button", { name: /sign in/i }).click();
    await page.waitForURL(`${server.url}/`);
  });

  it("shows both devices online, live", async () => {
    for (const agent of agents) {
      await row(agent.deviceId)
        .locator('[data-testid="device-status"]')
        .filter({ hasText: /^online$/ })
        .waitFor({ timeout: 30_000 });
      expect(await row(agent.deviceId).locator('[data-testid="device-name"]').textContent()).toBe(agent.name);
    }
  });

  it("shows a device's telemetry charts with data, and switches to rollups for long ranges", async () => {
    const id = agents[1]!.deviceId;
    await row(id).locator('[data-testid="device-name"]').click();
    await page.waitForURL(`${server.url}/devices/${id}`);
    const charts = page.locator('[data-testid="telemetry-charts"]');
    await charts.waitFor({ timeout: 20_000 });
    expect(await charts.getAttribute("data-source")).toBe("raw");
    // uPlot draws into a canvas; the headline shows the newest memory reading.
    await page.locator('[data-testid="chart-memory"] canvas').first().waitFor();
    expect(await page.locator('[data-testid="chart-memory"]').textContent()).toMatch(/\d+(\.\d+)? [KMG]i?B/);
    // Rename it from its page; the new name shows at once.
    await page.getByTestId("rename-device").click();
    await page.locator("#device-new-name").fill("browser-pi-renamed");
    await page.getByTestId("rename-submit").click();
    await page.getByTestId("device-title").filter({ hasText: "browser-pi-renamed" }).waitFor();
    await page.locator('[data-testid="telemetry-range"] [data-range="24h"]').click();
    await page.locator('[data-testid="telemetry-charts"][data-range="24h"][data-source="rollup"]').waitFor({ timeout: 20_000 });
    await page.goto(`${server.url}/`);
    await row(id).waitFor();
  });

  it("turns a stopped agent's row offline without a reload", async () => {
    const navigations: string[] = [];
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) navigations.push(frame.url());
    });
    await agents[0]!.proc!.stop("SIGTERM");
    await row(agents[0]!.deviceId)
      .locator('[data-testid="device-status"]')
      .filter({ hasText: /^offline$/ })
      .waitFor({ timeout: 20_000 });
    expect(await row(agents[1]!.deviceId).locator('[data-testid="device-status"]').textContent()).toBe("online");
    expect(navigations).toEqual([]);
  });
});
