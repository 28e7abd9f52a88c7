/**
 * Chat in a real browser (Debian's Chromium via playwright-core): open a chat on a
 * device from the fleet table, send two turns and watch tokens stream, stop an
 * answer, reload and find the conversation intact.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

describe("chat in Chromium", () => {
  let server: TestServer;
  let agent: TestAgent;
  let browser: TestBrowser;
  let page: Page;

  beforeAll(async () => {
    server = await startServer();
    agent = await enrollAgent(server, "chat-browser-pi");
    // 40 tok/s: fast enough for a short test, slow enough to watch tokens arrive and to stop mid-answer.
    agent.start(["--runner-arg=--sim-decode-tok-s=40", "--runner-arg=--sim-prefill-tok-s=2000"]);
    await waitFor("the device ready", async () => (await server.client.devices.list.query())[0]?.runner?.state === "ready");
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
  });

  const assistant = () => page.locator('[data-testid="chat-message"][data-role="assistant"]');

  /** Samples an answer's text while it streams; returns the distinct lengths seen. */
  async function watchStreaming(index: number): Promise<number[]> {
    const lengths = new Set<number>();
    const message = assistant().nth(index);
    await message.waitFor();
    for (let i = 0; i < 200; i++) {
      const status = await message.getAttribute("data-status");
      const text = (await message.getByTestId("chat-message-text").textContent()) ?? "";
      lengths.add(text.length);
      if (status !== "streaming") break;
      await page.waitForTimeout(50);
    }
    return [...lengths];
  }

  it("opens a chat from the fleet table and streams two turns", async () => {
    const row = page.locator(`[data-testid="device-row"][data-device-id="${agent.deviceId}"]`);
    await row.getByTestId("device-chat").first().click();
    await page.getByTestId("chat-input").fill("Hello, orchard!");
    await page.getByTestId("chat-send").click();
    await page.waitForURL(/\/chat\/[^/]+$/);
    const lengths1 = await watchStreaming(0);
    expect(lengths1.length).toBeGreaterThan(2); // the text grew while streaming, not all at once
    await assistant().nth(0).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 30_000 });
    await expect(assistant().nth(0).getByTestId("chat-stats").textContent()).resolves.toMatch(/tok\/s/);

    await page.getByTestId("chat-input").fill("Tell me more.");
    await page.getByTestId("chat-send").click();
    await watchStreaming(1);
    await assistant().nth(1).and(page.locator('[data-status="complete"]')).waitFor({ timeout: 30_000 });
    expect(await page.locator('[data-testid="chat-message"][data-role="user"]').count()).toBe(2);
  });

  it("stops an answer and keeps the conversation across a reload", async () => {
    await page.getByTestId("chat-input").fill("Now a long answer, please.");
    await page.getByTestId("chat-send").click();
    const streaming = assistant().nth(2);
    await streaming.and(page.locator('[data-status="streaming"]')).waitFor();
    await waitFor("some streamed text", async () => ((await streaming.getByTestId("chat-message-text").textContent()) ?? "").length > 5);
    await page.getByTestId("chat-live-stats").waitFor();
    await page.getByTestId("chat-stop").click();
    await streaming.and(page.locator('[data-status="cancelled"]')).waitFor({ timeout: 15_000 });
    const texts = await assistant().getByTestId("chat-message-text").allTextContents();

    await page.reload();
    await assistant().nth(2).waitFor();
    expect(await page.locator('[data-testid="chat-message"][data-role="user"]').allTextContents()).toEqual([
      expect.stringContaining("Hello, orchard!"),
      expect.stringContaining("Tell me more."),
      expect.stringContaining("Now a long answer, please."),
    ]);
    expect(await assistant().getByTestId("chat-message-text").allTextContents()).toEqual(texts);
    expect(await assistant().nth(2).getAttribute("data-status")).toBe("cancelled");
  });
});
