/**
 * The fleet's token rates in a real browser (Debian's Chromium via playwright-core), with
 * a real server and two real agents on the sim runner: one answers questions back to back,
 * the other answered one and is idle now (its decode speed still describes that answer).
 * The card "Generating now (whole fleet)" must be the sum of the rows' "Generating now"
 * as the page displays them, and every rate carries its name and unit (docs/metrics.md,
 * Token rates).
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DECODE_SPEED, GENERATING_NOW } from "@orchard/contracts";
import { launchBrowser, signIn, type TestBrowser } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

interface Snapshot {
  cardText: string;
  cardValue: number | null;
  rows: { id: string; text: string; value: number | null; decode: string | null }[];
}

describe("token rates in Chromium", () => {
  let server: TestServer;
  let busy: TestAgent;
  let idle: TestAgent;
  let browser: TestBrowser;
  let page: Page;
  let stopLoad = false;
  let load: Promise<void> = Promise.resolve();

  const ask = async (deviceId: string, maxTokens: number) => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${server.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: `device:${deviceId}`,
        messages: [{ role: "user", content: "Count to a hundred." }],
        max_tokens: maxTokens,
      }),
    });
    if (!res.ok) throw new Error(`chat on ${deviceId}: ${res.status} ${await res.text()}`);
    await res.json();
  };

  beforeAll(async () => {
    server = await startServer();
    busy = await enrollAgent(server, "rate-busy");
    idle = await enrollAgent(server, "rate-idle");
    // Telemetry every 3 s (the harness default is 1 s): the card (pushed every 2 s) and the rows (each sample) meet in between.
    for (const a of [busy, idle])
      a.start(["--telemetry-interval", "3", "--runner-arg=--sim-decode-tok-s=20", "--runner-arg=--sim-prefill-tok-s=2000"]);
    await waitFor("both devices ready", async () => {
      const devices = await server.client.devices.list.query();
      return devices.length === 2 && devices.every((d) => d.online && d.runner?.state === "ready");
    });
    load = (async () => {
      while (!stopLoad) await ask(busy.deviceId, 60);
    })();
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  });

  afterAll(async () => {
    stopLoad = true;
    await load.catch(() => undefined);
    await browser?.close();
    for (const a of [busy, idle]) await a?.proc?.stop();
    await server?.stop();
    for (const a of [busy, idle]) if (a) await removeDir(a.dataDir);
    if (server) await removeDir(server.dataDir);
  });

  /** The card and every row, read in one task (they update live). */
  const snapshot = (): Promise<Snapshot> =>
    page.evaluate(() => {
      const card = document.querySelector('[data-testid="overview-tokens"]');
      const num = (v: string | null | undefined) => (v === null || v === undefined || v === "" ? null : Number(v));
      return {
        cardText: card?.querySelector("div")?.textContent?.trim() ?? "",
        cardValue: num(card?.getAttribute("data-value")),
        rows: Array.from(document.querySelectorAll('[data-testid="device-row"]')).map((r) => {
          const tokens = r.querySelector('[data-testid="device-tokens"]');
          return {
            id: r.getAttribute("data-device-id") ?? "",
            text: tokens?.textContent?.trim() ?? "",
            value: num(tokens?.getAttribute("data-value")),
            decode: r.querySelector('[data-testid="device-decode"]')?.textContent?.trim() ?? null,
          };
        }),
      };
    });

  /** "12.3 tok/s" (or an older page's bare "12.3") → 12.3; NaN for anything else. */
  const displayed = (text: string) => Number(text.replace(/\s*tok\/s$/, ""));

  it("shows the card as the sum of the rows' generating-now rates, as displayed", async () => {
    await page.locator(`[data-testid="device-row"][data-device-id="${busy.deviceId}"]`).waitFor({ timeout: 30_000 });
    // One answer on the other device: its decode speed stays reported for a minute while it generates nothing.
    await ask(idle.deviceId, 30);
    await waitFor("the idle device's newest sample to report no tokens, and its answer's decode speed", async () => {
      const t = (await server.client.devices.list.query()).find((d) => d.id === idle.deviceId)?.telemetry;
      return t && t.generatedTokens === 0 && t.activeGenerations === 0 && t.tokensPerSecond !== null;
    });
    // Each row's number is rounded to 0.1 on screen, and so is the card.
    const tolerance = (rows: number) => 0.05 * (rows + 1) + 1e-9;
    let last: Snapshot | null = null;
    const agreed = await waitFor(
      "a moment where the card equals the rows' sum while the busy device generates",
      async () => {
        const s = await snapshot();
        last = s;
        if (s.rows.length !== 2 || s.cardValue === null) return null;
        const sum = s.rows.reduce((a, r) => a + displayed(r.text), 0);
        const busyRow = s.rows.find((r) => r.id === busy.deviceId)!;
        if (!(displayed(busyRow.text) > 0)) return null;
        // The page has the idle device's newest sample (the server had it first), so the card can include it.
        const idleRow = s.rows.find((r) => r.id === idle.deviceId)!;
        if (displayed(idleRow.text) !== 0 && idleRow.value !== 0) return null;
        return Math.abs(displayed(s.cardText) - sum) <= tolerance(s.rows.length) ? s : null;
      },
      45_000,
    ).catch((err: Error) => {
      const s = last as Snapshot | null;
      const rows = s ? s.rows.map((r) => `${r.id}="${r.text}"`).join(" + ") : "no snapshot";
      throw new Error(`the fleet card ("${s?.cardText}") is not the sum of the rows' rates (${rows}): ${err.message}`);
    });
    // The raw numbers behind the display agree too: the card is exactly the rows' sum.
    const rawSum = agreed.rows.reduce((a, r) => a + (r.value ?? 0), 0);
    expect(agreed.cardValue, JSON.stringify(agreed)).toBeCloseTo(rawSum, 6);
    // The idle device answered a few seconds ago: it generates nothing now, and shows that answer's decode speed.
    const idleRow = agreed.rows.find((r) => r.id === idle.deviceId)!;
    expect(idleRow.value, JSON.stringify(agreed)).toBe(0);
    expect(idleRow.decode, JSON.stringify(agreed)).toMatch(/^decode \d+\.\d$/);
  });

  it("names each rate with its unit: card, column, rows, decode speed, tooltips", async () => {
    const card = page.getByTestId("overview-tokens");
    expect(await card.locator("h2").textContent()).toBe(GENERATING_NOW.fleetLabel);
    expect(await card.getAttribute("title")).toContain(GENERATING_NOW.help);
    expect((await card.locator("div").textContent())?.trim()).toMatch(/^\d+\.\d tok\/s$/);
    const header = page.locator("th", { has: page.getByTestId("sort-tokens") });
    expect((await header.textContent())?.trim()).toBe(`${GENERATING_NOW.label} (tok/s)`);
    expect(await header.getAttribute("title")).toBe(GENERATING_NOW.help);
    const s = await snapshot();
    for (const r of s.rows) expect(r.text).toMatch(/^\d+\.\d tok\/s$/);
    // The idle device's decode speed is shown as such, beside its 0 tok/s generating now.
    const idleRow = page.locator(`[data-testid="device-row"][data-device-id="${idle.deviceId}"]`);
    const decode = idleRow.getByTestId("device-decode");
    expect((await decode.textContent())?.trim()).toMatch(/^decode \d+\.\d$/);
    expect(await decode.getAttribute("title")).toBe(`${DECODE_SPEED.label}: ${DECODE_SPEED.help}`);
    expect(Number(await decode.getAttribute("data-value"))).toBeGreaterThan(0);
    // And the device page uses the same names.
    await idleRow.getByTestId("device-name").click();
    await page.waitForURL(`${server.url}/devices/${idle.deviceId}`);
    await page.getByTestId("chart-tokens").waitFor({ timeout: 20_000 });
    expect(await page.getByTestId("chart-tokens").locator("h3").textContent()).toContain(`${DECODE_SPEED.label} (tok/s)`);
    expect((await page.getByTestId("device-generating").textContent())?.trim()).toMatch(/^\d+\.\d tok\/s$/);
  });
});
