/**
 * Benchmarks in a real browser (Debian's Chromium via playwright-core): open
 * Benchmarks, run the prompt set on two agents from the dialog, watch the run finish
 * and the results table fill without a reload, download the CSV and parse it, and
 * compare with another run.
 */
import { readFile } from "node:fs/promises";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BENCH_STANDARD_PROMPTS } from "@orchard/contracts";
import { BENCH_COLUMNS } from "@orchard/client";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { parseCsv } from "../support/csv.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

describe("benchmarks in Chromium", () => {
  let server: TestServer;
  let agents: TestAgent[];
  let browser: TestBrowser;
  let page: Page;
  let runId: string;

  beforeAll(async () => {
    server = await startServer();
    agents = [await enrollAgent(server, "bench-browser-a"), await enrollAgent(server, "bench-browser-b")];
    for (const a of agents) a.start(["--runner-arg=--sim-decode-tok-s=200", "--runner-arg=--sim-prefill-tok-s=2000"]);
    await waitFor("both devices ready", async () => {
      const devices = await server.client.devices.list.query();
      return devices.length === 2 && devices.every((d) => d.online && d.runner?.state === "ready");
    });
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  });

  afterAll(async () => {
    await browser?.close();
    for (const a of agents ?? []) await a.proc?.stop();
    await server?.stop();
    for (const a of agents ?? []) await removeDir(a.dataDir);
    if (server) await removeDir(server.dataDir);
  });

  it("runs a benchmark on the online devices and fills the results table", async () => {
    await page.getByTestId("nav-benchmarks").click();
    await page.waitForURL(`${server.url}/benchmarks`);
    await page.getByTestId("bench-new").click();
    await expect(page.getByTestId("bench-prompt-set").locator("li").count()).resolves.toBe(BENCH_STANDARD_PROMPTS.length);
    await expect(page.locator('[data-testid="bench-device-option"][data-available="true"]').count()).resolves.toBe(2);
    await page.getByTestId("bench-select-all").click();
    await page.getByTestId("bench-max-tokens").fill("12");
    await page.getByTestId("bench-start").click();
    await page.waitForURL(/\/benchmarks\/[A-Za-z0-9_-]+$/);
    runId = decodeURIComponent(new URL(page.url()).pathname.split("/").at(-1)!);

    // No reload: progress and results arrive over socket.io.
    await page.locator('[data-testid="bench-run"][data-state="finished"]').waitFor({ timeout: 60_000 });
    const states = await page.getByTestId("bench-device").evaluateAll((els) => els.map((e) => e.getAttribute("data-state")));
    expect(states).toEqual(["done", "done"]);
    const rows = page.getByTestId("bench-result-row");
    await expect(rows.count()).resolves.toBe(2 * BENCH_STANDARD_PROMPTS.length);
    const decode = await page.locator('[data-testid="bench-result-row"] td[data-key="decodeTokS"]').allTextContents();
    expect(decode).toHaveLength(2 * BENCH_STANDARD_PROMPTS.length);
    for (const text of decode) expect(Number(text)).toBeGreaterThan(0);
    const headers = await page
      .locator('[data-testid="bench-results"] th[data-key]')
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-key")));
    expect(new Set(headers)).toEqual(new Set(BENCH_COLUMNS.map((c) => c.key).filter((k) => k !== "run")));
  });

  it("charts decode and prompt-feed tok/s per device with the table's numbers", async () => {
    const charts = page.getByTestId("bench-charts");
    await charts.waitFor();
    // Per device: the mean of the table's per-prompt cells (shown with 2 decimals, so each is off by ≤ 0.005).
    const tableMeans = async (key: string) => {
      const means = new Map<string, number>();
      for (const agent of agents) {
        const cells = await page
          .locator(`[data-testid="bench-result-row"][data-device-id="${agent.deviceId}"] td[data-key="${key}"]`)
          .allTextContents();
        expect(cells).toHaveLength(BENCH_STANDARD_PROMPTS.length);
        means.set(agent.deviceId, cells.map(Number).reduce((a, b) => a + b, 0) / cells.length);
      }
      return means;
    };
    for (const [metric, title] of [
      ["decodeTokS", "Decode"],
      ["prefillTokS", "Prompt feed"],
    ] as const) {
      const chart = charts.locator(`[data-testid="bench-chart"][data-metric="${metric}"]`);
      expect((await chart.locator("figcaption").textContent())?.trim()).toBe(`${title} (tok/s)`);
      expect(await chart.locator("svg title").first().textContent()).toBe(`${title} (tok/s) per device`);
      const bars = chart.getByTestId("bench-chart-bar");
      await expect(bars.count()).resolves.toBe(agents.length);
      const means = await tableMeans(metric);
      for (const agent of agents) {
        const bar = chart.locator(`[data-testid="bench-chart-bar"][data-device-id="${agent.deviceId}"]`);
        const shown = Number(await bar.getByTestId("bench-chart-value").textContent());
        expect(shown, `${metric} bar of ${agent.name}`).toBeGreaterThan(0);
        expect(
          Math.abs(shown - means.get(agent.deviceId)!),
          `${metric} bar of ${agent.name}: ${shown} vs the table's mean`,
        ).toBeLessThanOrEqual(0.0101);
        // The bar's width is its value on the chart's scale: a faster device has a longer bar.
        expect(Number.parseFloat((await bar.locator("rect").getAttribute("width")) ?? "")).toBeGreaterThan(0);
      }
    }
    // The sim devices read no board power: energy per token is said to be unmeasured, not charted as 0.
    await expect(charts.locator('[data-testid="bench-chart"][data-metric="energyJPerToken"]').count()).resolves.toBe(0);
    expect(await page.getByTestId("bench-chart-no-energy").textContent()).toMatch(/not measured/);
  });

  it("downloads the results as CSV", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("bench-export-csv").click()]);
    expect(download.suggestedFilename()).toMatch(new RegExp(`-${runId}\\.csv$`));
    const [header, ...rows] = parseCsv(await readFile(await download.path(), "utf8"));
    expect(header).toEqual(BENCH_COLUMNS.map((c) => c.key));
    expect(rows).toHaveLength(2 * BENCH_STANDARD_PROMPTS.length);
    const decodeAt = header!.indexOf("decodeTokS");
    for (const row of rows) expect(Number(row[decodeAt])).toBeGreaterThan(0);
  });

  it("compares the run with another one side by side", async () => {
    const other = await server.client.bench.create.mutate({ name: "Baseline", deviceIds: [agents[0]!.deviceId], maxNewTokens: 12 });
    await waitFor("the baseline to finish", async () => (await server.client.bench.get.query({ id: other.id })).state === "finished");
    await page.reload();
    await page.getByTestId("bench-compare-select").selectOption(other.id);
    const rows = page.getByTestId("bench-compare-row");
    await rows.first().waitFor();
    await expect(rows.count()).resolves.toBe(2 * BENCH_STANDARD_PROMPTS.length);
    await expect(rows.first().textContent()).resolves.toMatch(/%/);
  });
});
