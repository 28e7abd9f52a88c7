/**
 * Every page and dialog fits a 1280×720 laptop and a 390×844 phone, in a real browser
 * (Debian's Chromium via playwright-core) against a real server with two sim agents and
 * a finished benchmark run. Geometry, not pixels: the page never scrolls sideways
 * (document.documentElement.scrollWidth <= innerWidth); a dialog fits the screen with its
 * submit button in view and its last field reachable by scrolling inside it; the fleet
 * table's Chat button is in view and is what a click there hits; the benchmark table's
 * last column scrolls into view, and while it is hidden the table shows a cue at its
 * edge. Screenshots of each go to a folder in the OS tmp dir (printed).
 */
import { mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, signIn, type TestBrowser } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

const VIEWPORTS = [
  { name: "laptop-1280x720", width: 1280, height: 720 },
  { name: "phone-390x844", width: 390, height: 844 },
] as const;

const SHOTS = path.join(os.tmpdir(), "orchard-e2e-screenshots", "layout");

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
  /**
   * Nothing covers or clips it: the element hit at the box's centre is it, inside it, or (a disabled button takes
   * no pointer events) an ancestor of it; and no ancestor that clips its overflow cuts the box.
   */
  hit: boolean;
  vw: number;
  vh: number;
}

/** The element's box in the viewport, and whether a click at its centre reaches it. */
async function box(locator: Locator): Promise<Box> {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const at = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    let clipped = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX === "visible" && style.overflowY === "visible") continue;
      const c = p.getBoundingClientRect();
      if (r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5) clipped = true;
    }
    return {
      left: r.left,
      top: r.top,
      right: r.right,
      bottom: r.bottom,
      hit: !clipped && at !== null && (at === el || el.contains(at) || at.contains(el)),
      vw: window.innerWidth,
      vh: window.innerHeight,
    };
  });
}

function expectInViewport(b: Box, what: string): void {
  const where = `${what}: box ${JSON.stringify({ left: b.left, top: b.top, right: b.right, bottom: b.bottom })} in a ${b.vw}×${b.vh} viewport`;
  expect(b.left >= -0.5 && b.top >= -0.5 && b.right <= b.vw + 0.5 && b.bottom <= b.vh + 0.5, `${where} is not inside it`).toBe(true);
  expect(b.hit, `${where}: a click at its centre hits something else (covered or clipped)`).toBe(true);
}

async function expectNoSidewaysScroll(page: Page, what: string): Promise<void> {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  expect(scrollWidth, `${what}: the page is ${scrollWidth} px wide in a ${innerWidth} px window (it scrolls sideways)`).toBeLessThanOrEqual(
    innerWidth,
  );
}

describe("layout at 1280×720 and 390×844 in Chromium", () => {
  let server: TestServer;
  let agents: TestAgent[];
  let browser: TestBrowser;
  let page: Page;
  let runId: string;

  beforeAll(async () => {
    server = await startServer();
    agents = [await enrollAgent(server, "layout-pi-with-a-long-name-1"), await enrollAgent(server, "layout-pi-2")];
    for (const a of agents) a.start(["--runner-arg=--sim-decode-tok-s=200", "--runner-arg=--sim-prefill-tok-s=2000"]);
    await waitFor("both devices ready", async () => {
      const devices = await server.client.devices.list.query();
      return devices.length === 2 && devices.every((d) => d.online && d.runner?.state === "ready");
    });
    const run = await server.client.bench.create.mutate({ name: "Layout run", deviceIds: agents.map((a) => a.deviceId), maxNewTokens: 8 });
    runId = run.id;
    await waitFor("the benchmark to finish", async () => (await server.client.bench.get.query({ id: runId })).state === "finished", 60_000);
    await mkdir(SHOTS, { recursive: true });
    console.log(`layout screenshots: ${SHOTS}`);
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

  const shot = (viewport: string, name: string) => page.screenshot({ path: path.join(SHOTS, `${viewport}-${name}.png`) });

  /** Opens a page and waits until `ready` shows. */
  async function open(pathname: string, ready: string): Promise<void> {
    await page.goto(`${server.url}${pathname}`);
    await page.locator(ready).first().waitFor({ timeout: 30_000 });
  }

  for (const vp of VIEWPORTS) {
    describe(vp.name, () => {
      beforeAll(async () => {
        await page.setViewportSize({ width: vp.width, height: vp.height });
      });

      const pages: [name: string, pathname: () => string, ready: string][] = [
        ["fleet", () => "/", '[data-testid="device-row"]'],
        ["device", () => `/devices/${agents[0]!.deviceId}`, '[data-testid="telemetry-charts"]'],
        ["benchmarks", () => "/benchmarks", '[data-testid="bench-runs"]'],
        ["benchmark-run", () => `/benchmarks/${runId}`, '[data-testid="bench-results"]'],
        ["models", () => "/models", '[data-testid="models-upload"]'],
        ["rollouts", () => "/rollouts", '[data-testid="rollout-new"]'],
        ["chat", () => "/chat", "main h1, main h2"],
        ["alerts", () => "/alerts", "main h1"],
        ["audit", () => "/audit", "main h1"],
        ["users", () => "/users", "main h1"],
        ["api-keys", () => "/settings/api-keys", "main h1"],
        ["enroll", () => "/enroll", "main h1"],
        ["account", () => "/account", "main h1"],
      ];
      for (const [name, pathname, ready] of pages) {
        it(`${name}: the page does not scroll sideways`, async () => {
          await open(pathname(), ready);
          await shot(vp.name, name);
          await expectNoSidewaysScroll(page, `${name} at ${vp.name}`);
        });
      }

      it("fleet: every device's Chat button is in view and clickable", async () => {
        await open("/", '[data-testid="device-row"]');
        const table = page
          .locator('[data-scroll-x]:has([data-testid="fleet-table"]) > div, div:has(> [data-testid="fleet-table"])')
          .first();
        expect(await table.evaluate((el) => el.scrollLeft)).toBe(0);
        for (const a of agents) {
          const chat = page.locator(`[data-testid="device-row"][data-device-id="${a.deviceId}"] [data-testid="device-chat"]`);
          // Bring its row into view by scrolling the page up or down only: the button must be there without
          // scrolling the table sideways.
          await chat.evaluate((el) => window.scrollBy(0, el.getBoundingClientRect().top - window.innerHeight / 2));
          expectInViewport(await box(chat), `Chat button of ${a.name} at ${vp.name}, the table not scrolled sideways`);
        }
        await shot(vp.name, "fleet-chat");
      });

      it("benchmark run: the chart and the table's last column can be seen, with a cue while columns are hidden", async () => {
        await open(`/benchmarks/${runId}`, '[data-testid="bench-results"]');
        const scroller = page.locator('[data-scroll-x]:has([data-testid="bench-results"])');
        const inner = scroller.locator(":scope > div").first();
        const overflows = await inner.evaluate((el) => el.scrollWidth > el.clientWidth + 1);
        if (overflows) {
          await expect(scroller.getAttribute("data-more-right")).resolves.toBe("true");
          const cue = scroller.getByTestId("scroll-cue-right");
          await waitFor(
            "the right-edge cue to show",
            async () => Number(await cue.evaluate((el) => getComputedStyle(el).opacity)) > 0.9,
            5_000,
          );
          // It runs down the table's right edge, on screen.
          await scroller.scrollIntoViewIfNeeded();
          const c = await box(cue);
          const edge = await box(inner);
          expect(
            Math.abs(c.right - edge.right),
            `the cue (${c.left}–${c.right}) is not at the table's right edge (${edge.right})`,
          ).toBeLessThan(1);
          const onScreen = c.left >= 0 && c.right <= c.vw + 0.5 && c.top < c.vh && c.bottom > 0;
          expect(onScreen, `the cue at ${vp.name} is off screen: ${JSON.stringify(c)}`).toBe(true);
        }
        await shot(vp.name, "benchmark-table-start");
        const lastHeader = page.locator('[data-testid="bench-results"] th[data-key="throttleAfter"]');
        await lastHeader.scrollIntoViewIfNeeded();
        expectInViewport(await box(lastHeader), `last column header at ${vp.name}`);
        // The device column stays in view at the left while the rest scrolled.
        const device = page.locator('[data-testid="bench-results"] th[data-key="device"]');
        expectInViewport(await box(device), `device column header after scrolling at ${vp.name}`);
        if (overflows) await expect(scroller.getAttribute("data-more-right")).resolves.toBe("false");
        await shot(vp.name, "benchmark-table-end");
      });

      const dialogs: [name: string, pathname: () => string, opener: string, submit: string][] = [
        ["upload-model", () => "/models", "models-upload", "model-submit"],
        ["register-model-url", () => "/models", "models-register-url", "model-submit"],
        ["new-rollout", () => "/rollouts", "rollout-new", "rollout-start"],
        ["run-benchmark", () => "/benchmarks", "bench-new", "bench-start"],
        ["compare-runtimes", () => "/benchmarks", "compare-runtimes", "compare-start"],
        ["rename-device", () => `/devices/${agents[0]!.deviceId}`, "rename-device", "rename-submit"],
        ["edit-tags", () => `/devices/${agents[0]!.deviceId}`, "device-tags-edit", "device-tags-save"],
        ["delete-device", () => `/devices/${agents[0]!.deviceId}`, "delete-device", "delete-confirm"],
      ];
      for (const [name, pathname, opener, submit] of dialogs) {
        it(`${name} dialog: fits the screen, submit in view, every field reachable`, async () => {
          await open(pathname(), `[data-testid="${opener}"]`);
          await page.getByTestId(opener).click();
          const dialog = page.locator("dialog[open]");
          await dialog.waitFor();
          const button = dialog.getByTestId(submit);
          await button.waitFor();
          await shot(vp.name, `dialog-${name}`);
          const d = await box(dialog);
          expect(
            d.top >= -0.5 && d.bottom <= d.vh + 0.5,
            `${name} at ${vp.name}: the dialog (${d.top}–${d.bottom}) is taller than the ${d.vh} px screen`,
          ).toBe(true);
          expectInViewport(await box(button), `${name} submit button at ${vp.name}`);
          // The last field scrolls into view inside the dialog, and the submit button is still in view then.
          const fields = dialog.locator("input:not([type=hidden]), select, textarea");
          if ((await fields.count()) > 0) {
            const last = fields.last();
            await last.scrollIntoViewIfNeeded();
            const b = await box(last);
            expect(b.top >= -0.5 && b.bottom <= b.vh + 0.5, `${name} at ${vp.name}: its last field is outside the screen`).toBe(true);
            expectInViewport(await box(button), `${name} submit button after scrolling at ${vp.name}`);
          }
          await expectNoSidewaysScroll(page, `${name} dialog at ${vp.name}`);
          await page.keyboard.press("Escape");
          await dialog.waitFor({ state: "detached" });
        });
      }
    });
  }
});
