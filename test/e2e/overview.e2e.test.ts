/**
 * The fleet overview in a real browser (Debian's Chromium driven by playwright-core)
 * with 300 SIMULATED devices (test/sim/fleet-sim.ts): the cards count the fleet and
 * match what the simulator sent, the fleet chart and the sparklines draw data, sorting
 * by tokens/s puts the slowest generating device first, the table keeps only the rows in
 * view in the DOM and scrolling reveals the last device; then a simulated device's page
 * renders its charts with data.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TelemetrySample } from "@orchard/contracts";
import { FleetSim } from "../sim/fleet-sim.ts";
import { launchBrowser, type TestBrowser } from "../support/browser.ts";
import { removeDir, startServer, waitFor, type TestServer } from "../support/harness.ts";

const DEVICES = 300;

describe(`fleet overview in Chromium with ${DEVICES} simulated devices`, () => {
  let server: TestServer;
  let sim: FleetSim;
  let browser: TestBrowser;
  let page: Page;
  const sent = new Map<string, TelemetrySample[]>();

  beforeAll(async () => {
    server = await startServer({ env: { ORCHARD_LOG_LEVEL: "warn" } });
    sim = new FleetSim({
      url: server.url,
      apiKey: server.apiKey,
      mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`,
      devices: DEVICES,
      onTelemetrySent: (deviceId, sample) => {
        const list = sent.get(deviceId) ?? [];
        list.push(sample);
        if (list.length > 2) list.shift(); // the last two are all the totals need
        sent.set(deviceId, list);
      },
    });
    await sim.start();
    browser = await launchBrowser();
    page = browser.page;
    await page.goto(`${server.url}/login`);
    await page.getByLabel(/username/i).fill("admin");
    await page.getByLabel(/password/i).fill(server.adminPassword);
    await page.getByRole("button", { name: /sign in/i }).click();
    await page.waitForURL(`${server.url}/`);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await sim?.stop().catch(() => undefined);
    await server?.stop();
    if (server) await removeDir(server.dataDir);
  });

  const text = async (testId: string) => (await page.getByTestId(testId).textContent())?.trim();
  const value = async (testId: string) => Number(await page.getByTestId(testId).getAttribute("data-value"));
  const rowsInDom = () => page.locator('[data-testid="device-row"]').count();
  /** Sorted by name, A to Z (the default), whatever an earlier test left. */
  const sortByName = async () => {
    const byName = page.locator('th[aria-sort="ascending"]').filter({ hasText: "Device" });
    if ((await byName.count()) === 0) await page.getByTestId("sort-name").click();
    await byName.waitFor();
  };

  it("shows the overview cards with the fleet's counts", async () => {
    await page
      .getByTestId("overview-online")
      .filter({ hasText: new RegExp(`^${DEVICES}$`) })
      .waitFor({ timeout: 60_000 });
    expect(await text("overview-total")).toBe(String(DEVICES));
    await waitFor("tokens/s and generations on the cards", async () => (await value("overview-tokens")) > 0, 30_000);
    expect(await value("overview-generations")).toBeGreaterThan(0);
    expect(await text("overview-tokens")).toMatch(/^Generating now \(whole fleet\)\d+(\.\d+)? tok\/s$/);
    expect(await page.getByTestId("overview-alerts-link").getAttribute("href")).toBe("/alerts");
    expect(await text("overview-alerts")).toMatch(/^Active alerts\d+$/);
  });

  it("draws fleet tokens/s over time, with live points appended", async () => {
    const chart = page.getByTestId("fleet-chart");
    await chart.waitFor({ timeout: 30_000 });
    await page.locator('[data-testid="chart-fleet-tokens"] canvas').first().waitFor();
    await page.locator('[data-testid="chart-fleet-devices"] canvas').first().waitFor();
    const points = Number(await chart.getAttribute("data-points"));
    expect(points).toBeGreaterThan(0);
    // fleet:totals arrive every 2 s and extend the line.
    await waitFor("a live point", async () => Number(await chart.getAttribute("data-points")) > points, 20_000);
    expect(await page.getByTestId("chart-fleet-tokens").textContent()).toMatch(/\d+(\.\d+)? tok\/s/);
    // Another range reads its own buckets.
    await page.locator('[data-testid="telemetry-range"] [data-range="24h"]').click();
    await page.locator('[data-testid="fleet-chart"][data-range="24h"]').waitFor({ timeout: 20_000 });
    expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThan(0);
  });

  it("sorts by generating now with the slowest generating device first, each with a sparkline", async () => {
    await page.getByTestId("sort-tokens").click();
    const header = page.locator('th[aria-sort="ascending"]');
    expect(await header.textContent()).toContain("Generating now (tok/s)");
    // The rows in view, read in one task (they update live; a locator's evaluateAll may straddle a re-render).
    const readRows = () =>
      page.evaluate(() =>
        Array.from(document.querySelectorAll('[data-testid="device-row"]')).map((r) => ({
          tokens: r.querySelector('[data-testid="device-tokens"]')?.getAttribute("data-value") ?? null,
          sparkPoints: Number(r.querySelector('[data-testid="sparkline"]')?.getAttribute("data-points") ?? -1),
        })),
      );
    // Sparklines come from the rollups (refreshed every minute); every generating row gets one with data.
    const rows = await waitFor(
      "sparklines with data on the generating rows",
      async () => {
        const r = await readRows();
        return r.slice(0, 5).every((x) => x.tokens !== null && x.sparkPoints > 0) ? r : null;
      },
      90_000,
    );
    // Devices generating nothing (0 tok/s) go last, whichever way it sorts.
    const generating = (r: { tokens: string | null }) => r.tokens !== null && Number(r.tokens) > 0;
    const values = rows.filter(generating).map((r) => Number(r.tokens));
    expect(values.length).toBeGreaterThanOrEqual(5);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    // The sparkline draws a path.
    expect(await page.locator('[data-testid="sparkline"] path').first().getAttribute("d")).toMatch(/^M[\d.]+ [\d.]+/);
    // Again: fastest first.
    await page.getByTestId("sort-tokens").click();
    await page.locator('th[aria-sort="descending"]').waitFor();
    const desc = (await readRows()).filter(generating).map((r) => Number(r.tokens));
    expect(desc).toEqual([...desc].sort((a, b) => b - a));
    await sortByName();
  });

  it("keeps only the rows in view in the DOM, and scrolling reveals the last device", async () => {
    await sortByName();
    const table = page.getByTestId("fleet-table");
    expect(await table.getAttribute("aria-rowcount")).toBe(String(DEVICES + 1));
    const before = await rowsInDom();
    expect(before).toBeGreaterThan(0);
    expect(before).toBeLessThan(DEVICES / 5);
    const last = `sim-${String(DEVICES).padStart(5, "0")} (simulated)`;
    expect(await page.getByTestId("device-name").filter({ hasText: last }).count()).toBe(0);

    const scroller = page.getByRole("region", { name: "Devices (scrolls)" });
    await scroller.evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    const lastRow = page.locator('[data-testid="device-row"]').filter({ hasText: last });
    await lastRow.waitFor({ timeout: 10_000 });
    expect(await lastRow.getAttribute("aria-rowindex")).toBe(String(DEVICES + 1));
    expect(await lastRow.isVisible()).toBe(true);
    expect(await rowsInDom()).toBeLessThan(DEVICES / 5);
    // The first device left the DOM; scrolling back brings it again.
    expect(await page.getByTestId("device-name").filter({ hasText: "sim-00001 (simulated)" }).count()).toBe(0);
    await scroller.evaluate((el) => el.scrollTo({ top: 0 }));
    await page.getByTestId("device-name").filter({ hasText: "sim-00001 (simulated)" }).waitFor({ timeout: 10_000 });
  });

  it("shows exactly the totals the simulator sent once it stops", async () => {
    sim.pause();
    await waitFor(
      "the server to have every device's newest sample",
      async () => {
        const list = await server.client.devices.list.query();
        return list.every((d) => d.telemetry?.ts === sent.get(d.id)?.at(-1)?.ts);
      },
      30_000,
    );
    let tokens = 0;
    let generations = 0;
    for (const [prev, last] of sent.values()) {
      tokens += last!.generatedTokens! / ((last!.ts - prev!.ts) / 1000);
      generations += last!.activeGenerations!;
    }
    expect(tokens).toBeGreaterThan(0);
    await waitFor(
      `the cards to show ${generations} generations and ${tokens.toFixed(2)} tok/s`,
      async () => (await value("overview-generations")) === generations && Math.abs((await value("overview-tokens")) - tokens) < 1e-6,
      20_000,
    );
    expect(await text("overview-online")).toBe(String(DEVICES));
  });

  it("opens a simulated device's page with its charts drawn", async () => {
    // The slowest generating device, one click away.
    await sortByName();
    await page.getByTestId("sort-tokens").click();
    await page.locator('th[aria-sort="ascending"]').filter({ hasText: "Generating now" }).waitFor();
    const first = page.locator('[data-testid="device-row"]').first();
    const id = await first.getAttribute("data-device-id");
    expect(await first.getByTestId("device-tokens").getAttribute("data-value")).not.toBeNull();
    await first.getByTestId("device-name").click();
    await page.waitForURL(`${server.url}/devices/${id}`);
    const charts = page.getByTestId("telemetry-charts");
    await charts.waitFor({ timeout: 30_000 });
    for (const chart of ["chart-cpu", "chart-temp", "chart-memory", "chart-tokens"]) {
      await page.locator(`[data-testid="${chart}"] canvas`).first().waitFor({ timeout: 10_000 });
    }
    expect(await page.getByTestId("chart-memory").textContent()).toMatch(/\d+(\.\d+)? [KMG]i?B/);
    expect(await page.getByTestId("chart-tokens").textContent()).toMatch(/\d+(\.\d+)? tok\/s/);
  });
});
