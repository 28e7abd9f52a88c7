/**
 * Roles in a real browser (Debian's Chromium via playwright-core): the admin creates a
 * viewer and an operator on the Users page; the viewer, signed in in a fresh browser,
 * sees the fleet but none of the buttons its role cannot use, is told plainly that /users
 * is not for it, and is refused by the server when it tries anyway; the operator starts
 * the benchmark the viewer could not.
 */
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, type TestBrowser, signIn as signInPage } from "../support/browser.ts";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

describe("roles in Chromium", () => {
  let server: TestServer;
  let agent: TestAgent;
  const browsers: TestBrowser[] = [];
  let admin: Page;
  /** Uncaught errors in any page (a broken page shows up here before it shows up anywhere else). */
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];

  async function signIn(username: string, password: string): Promise<Page> {
    const browser = await launchBrowser(); // a fresh profile: no cookie of anyone else
    browsers.push(browser);
    const page = browser.page;
    page.on("pageerror", (err) => pageErrors.push(`${username}: ${err.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(`${username}: ${m.text()} @ ${m.location().url}`);
    });
    await signInPage(page, server.url, username, password);
    // The role is known (the buttons it may use are shown from here on).
    await page
      .getByTestId("current-role")
      .filter({ hasText: username === "admin" ? "admin" : /viewer|operator/ })
      .waitFor();
    return page;
  }

  beforeAll(async () => {
    server = await startServer();
    agent = await enrollAgent(server, "roles-pi");
    agent.start(["--runner-arg=--sim-decode-tok-s=500", "--runner-arg=--sim-prefill-tok-s=5000"]);
    await waitFor("the device ready", async () => {
      const [d] = await server.client.devices.list.query();
      return d?.online && d.runner?.state === "ready";
    });
    admin = await signIn("admin", server.adminPassword);
  });

  afterAll(async () => {
    for (const b of browsers) await b.close();
    await agent?.proc?.stop();
    await server?.stop();
    if (agent) await removeDir(agent.dataDir);
    if (server) await removeDir(server.dataDir);
  });

  it("the admin creates a viewer and an operator on the Users page", async () => {
    await admin.getByTestId("nav-users").click();
    await admin.waitForURL(`${server.url}/users`);
    for (const [username, role] of [
      ["vera", "viewer"],
      ["otto", "operator"],
    ] as const) {
      await admin.getByTestId("user-name").fill(username);
      await admin.getByTestId("user-password").fill(`${username}-password-1`);
      await admin.getByTestId("user-role").selectOption(role);
      await admin.getByTestId("user-create").click();
      const row = admin.locator(`[data-testid="user-row"][data-username="${username}"]`);
      await row.waitFor();
      await expect(row.getByTestId("user-row-role").inputValue()).resolves.toBe(role);
    }
    // A bad username is refused with the server's reason, and the form keeps what was typed.
    await admin.getByTestId("user-name").fill("Not Valid!");
    await admin.getByTestId("user-password").fill("whatever-password");
    await admin.getByTestId("user-create").click();
    await admin.getByTestId("user-form").getByRole("alert").filter({ hasText: "A username may contain lower-case letters" }).waitFor();
    await expect(admin.getByTestId("user-name").inputValue()).resolves.toBe("Not Valid!");
    const users = await server.client.users.list.query();
    expect(users.map((u) => [u.username, u.role]).sort()).toEqual([
      ["admin", "admin"],
      ["otto", "operator"],
      ["vera", "viewer"],
    ]);
  });

  it("a viewer sees the fleet but not the actions, cannot open Users, and the server refuses it", async () => {
    const viewer = await signIn("vera", "vera-password-1");
    // The fleet, with the device.
    const row = viewer.locator(`[data-testid="device-row"][data-device-id="${agent.deviceId}"]`);
    await row.getByTestId("device-name").filter({ hasText: "roles-pi" }).waitFor();
    await expect(row.getByTestId("device-chat").getAttribute("data-can-chat")).resolves.toBe("false");
    for (const id of ["nav-users", "nav-audit", "nav-enroll"]) await expect(viewer.getByTestId(id).count()).resolves.toBe(0);
    await expect(viewer.getByRole("link", { name: "Enroll a device" }).count()).resolves.toBe(0);

    await viewer.getByTestId("nav-rollouts").click();
    await viewer.getByText("No rollouts yet").waitFor(); // loaded, not just rendered
    await expect(viewer.getByTestId("rollout-new").count()).resolves.toBe(0);

    await viewer.getByTestId("nav-benchmarks").click();
    await viewer.getByText("No benchmark runs yet").waitFor();
    for (const id of ["bench-new", "compare-runtimes"]) await expect(viewer.getByTestId(id).count()).resolves.toBe(0);

    await viewer.getByTestId("nav-models").click();
    await viewer.getByText("No models yet").waitFor();
    await expect(viewer.getByTestId("models-upload").count()).resolves.toBe(0);

    await viewer.goto(`${server.url}/devices/${encodeURIComponent(agent.deviceId)}`);
    await viewer.getByTestId("device-tags").waitFor();
    for (const id of ["device-tags-edit", "device-new-rollout", "device-rollback", "rename-device"]) {
      await expect(viewer.getByTestId(id).count()).resolves.toBe(0);
    }

    // A conversation an operator had: readable, but nothing to send, rename or delete.
    const { conversationId } = await server.client.chat.send.mutate({ deviceId: agent.deviceId, content: "hello from the admin" });
    await viewer.goto(`${server.url}/chat/${encodeURIComponent(conversationId)}`);
    await viewer.getByText("hello from the admin").first().waitFor();
    const input = viewer.getByTestId("chat-input");
    await expect(input.getAttribute("placeholder")).resolves.toBe("Chatting needs the operator role; you are signed in as viewer.");
    await expect(input.isDisabled()).resolves.toBe(true);
    await expect(viewer.getByTestId("chat-send").isDisabled()).resolves.toBe(true);
    for (const id of ["chat-new", "conversation-rename", "conversation-delete"])
      await expect(viewer.getByTestId(id).count()).resolves.toBe(0);

    await viewer.goto(`${server.url}/users`);
    await viewer.getByText("Managing users needs the admin role; you are signed in as viewer.").waitFor();
    await expect(viewer.getByTestId("user-form").count()).resolves.toBe(0);

    // The dashboard only hides the buttons: the server is the authority.
    const res = await viewer.request.post(`${server.url}/api/trpc/bench.create`, {
      data: { deviceIds: [agent.deviceId], maxNewTokens: 4 },
    });
    expect(res.status()).toBe(403);
    expect((await server.client.bench.list.query()).length).toBe(0);
  });

  it("an operator starts the benchmark a viewer could not", async () => {
    const operator = await signIn("otto", "otto-password-1");
    await expect(operator.getByTestId("nav-users").count()).resolves.toBe(0);
    await operator.getByTestId("nav-benchmarks").click();
    await operator.getByTestId("bench-new").click();
    await operator.locator('[data-testid="bench-device-option"][data-available="true"]').first().waitFor();
    await operator.getByTestId("bench-select-all").click();
    await operator.getByTestId("bench-max-tokens").fill("4");
    await operator.getByTestId("bench-start").click();
    await operator.waitForURL(/\/benchmarks\/[A-Za-z0-9_-]+$/);
    await operator.locator('[data-testid="bench-run"][data-state="finished"]').waitFor({ timeout: 60_000 });
    const [run] = await server.client.bench.list.query();
    expect(run).toMatchObject({ devices: 1, done: 1, failed: 0, maxNewTokens: 4 });
    expect(pageErrors).toEqual([]);
    // Nothing failed in the browser but the refused username above.
    expect(consoleErrors.filter((e) => !e.startsWith("admin: Failed to load resource: the server responded with a status of 400"))).toEqual(
      [],
    );
  });
});
