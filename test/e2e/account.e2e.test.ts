/**
 * The Account page, the bootstrap key on API keys and the audit log's sentences, in
 * Chromium against a real server: alice opens Account from the header, sees her two
 * sessions (this one marked), ends the other (its cookie is refused from then on) and
 * changes her password there (it is no longer on API keys); the admin sees the bootstrap
 * key as such on API keys, and alice's sign-in as a sentence on Audit.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { removeDir, startServer, waitFor, type TestServer } from "../support/harness.ts";

describe("account page in Chromium", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  /** alice's other session, opened without the browser. */
  let otherCookie: string;

  const me = (cookie: string) => fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie } }).then((r) => r.status);

  beforeAll(async () => {
    server = await startServer();
    await server.client.users.create.mutate({ username: "alice", password: "alice-password", role: "viewer" });
    const res = await fetch(`${server.url}/api/trpc/auth.login`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        origin: server.url,
        "user-agent": "Mozilla/5.0 (iPhone) Version/17.0 Mobile Safari/604.1",
      },
      body: JSON.stringify({ username: "alice", password: "alice-password" }),
    });
    expect(res.status).toBe(200);
    otherCookie = res.headers.get("set-cookie")!.split(";")[0]!;
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "alice", "alice-password");
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (server) await removeDir(server.dataDir);
  });

  it("lists your sessions from the header's link, this one marked, and ends another", async () => {
    await page.getByTestId("nav-account").click();
    await page.waitForURL(`${server.url}/account`);
    const rows = page.getByTestId("account-session");
    await waitFor("both sessions", async () => (await rows.count()) === 2);
    const current = page.locator('[data-testid="account-session"][data-current="true"]');
    expect(await current.count()).toBe(1);
    expect(await current.textContent()).toContain("this session");
    expect(await current.textContent()).toContain("Chrome");
    const other = page.locator('[data-testid="account-session"][data-current="false"]');
    expect(await other.textContent()).toContain("Safari 17 on iOS");
    expect(await other.textContent()).toContain("127.0.0.1");

    expect(await me(otherCookie)).toBe(200);
    await other.getByTestId("account-session-revoke").click();
    await waitFor("the ended session to go", async () => (await rows.count()) === 1);
    expect(await me(otherCookie)).toBe(401);
    expect(await page.locator('[data-testid="account-session"][data-current="true"]').count()).toBe(1);
  });

  it("changes your password on Account (no longer on API keys), and this session stays", async () => {
    await page.locator("#current-password").fill("alice-password");
    await page.locator("#new-password").fill("alice-password-2");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Password changed.").waitFor();
    await page.reload();
    await page.getByTestId("account-session").first().waitFor();
    expect(await page.getByTestId("account-who").textContent()).toContain("alice");

    await page.getByTestId("nav-api-keys").click();
    await page.waitForURL(`${server.url}/settings/api-keys`);
    await page.getByText("No API keys yet").waitFor();
    expect(await page.getByTestId("change-password-form").count()).toBe(0);
    // Not an admin: the bootstrap key is not shown.
    expect(await page.getByTestId("api-key-bootstrap").count()).toBe(0);
  });

  it("shows admins the bootstrap key as such, and the audit log in sentences", async () => {
    await page.getByTestId("sign-out").click();
    await page.waitForURL(`${server.url}/login`);
    await signIn(page, server.url, "admin", server.adminPassword);
    await page.goto(`${server.url}/settings/api-keys`);
    const bootstrap = page.getByTestId("api-key-bootstrap");
    await bootstrap.waitFor();
    const text = (await bootstrap.textContent()) ?? "";
    expect(text).toContain("Bootstrap key");
    expect(text).toContain("ORCHARD_API_KEY");
    expect(text).toContain(`…${server.apiKey.slice(-4)}`);
    expect(text).toContain("cannot be revoked here");
    expect(text).not.toContain(server.apiKey);
    await page.getByText("No other API keys yet").waitFor();

    await page.getByTestId("nav-audit").click();
    await page.waitForURL(`${server.url}/audit`);
    await page.getByTestId("audit-row").first().waitFor();
    const sentences = await page.getByTestId("audit-sentence").allTextContents();
    expect(sentences).toEqual(
      expect.arrayContaining([
        "alice signed in from 127.0.0.1",
        "alice ended one of their sessions",
        "alice changed their password (their other sessions ended)",
        "bootstrap-key created user alice (viewer)",
      ]),
    );
    expect(sentences.join("\n")).not.toMatch(/[{}"]/);
  });
});
