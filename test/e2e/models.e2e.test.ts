/**
 * The Models page in a real browser (Debian's Chromium via playwright-core): upload a
 * simulated model and its tokenizer in chunks, reload in the middle and continue the same
 * upload by choosing the file again, register one by URL, see both listed (labelled
 * simulated), and delete one.
 */
import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSimModel } from "../../scripts/sim-model.ts";
import { launchBrowser, type TestBrowser, signIn } from "../support/browser.ts";
import { removeDir, startServer, waitFor, type TestServer } from "../support/harness.ts";

const MiB = 1024 * 1024;

describe("models in Chromium", () => {
  let server: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let tmp: string;
  let files: http.Server;
  let filesUrl: string;
  const remote = Buffer.from(`${JSON.stringify({ orchard_sim_model: 1, name: "remote" })}\n${"x".repeat(4096)}`);

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-models-e2e-"));
    files = http.createServer((req, res) => {
      if (req.url === "/remote-sim.bin") res.writeHead(200, { "content-length": String(remote.length) }).end(remote);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => files.listen(0, "127.0.0.1", r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
    server = await startServer();
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, server.url, "admin", server.adminPassword);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await new Promise((r) => files?.close(r));
    if (server) await removeDir(server.dataDir);
    if (tmp) await removeDir(tmp);
  });

  it("uploads a model and its tokenizer, continuing the same upload after a reload", async () => {
    const modelFile = path.join(tmp, "sim-browser.bin");
    const model = await writeSimModel({ file: modelFile, sizeBytes: 20 * MiB, header: { name: "browser" } });
    const tokenizerFile = path.join(tmp, "tokenizer.json");
    await writeFile(tokenizerFile, '{"version":"1.0"}');

    await page.getByTestId("nav-models").click();
    await page.waitForURL(`${server.url}/models`);

    // The second chunk never gets an answer: the page is reloaded while it hangs.
    const offsets: number[] = [];
    let patches = 0;
    await page.route("**/api/uploads/*", async (route) => {
      const req = route.request();
      if (req.method() !== "PATCH") return route.continue();
      if (++patches === 2) return; // held until the reload abandons it
      offsets.push(Number(req.headers()["upload-offset"]));
      return route.continue();
    });
    await page.getByTestId("models-upload").click();
    await page.getByTestId("model-file").setInputFiles(modelFile);
    await page.getByTestId("model-name").fill("browser-sim");
    await page.getByTestId("model-version").fill("1");
    await page.getByTestId("model-runtime-select").selectOption("sim");
    await page.getByTestId("model-submit").click();
    await waitFor("the first chunk to go up", () => offsets.length === 1 && patches === 2);
    await page.unrouteAll({ behavior: "ignoreErrors" });
    page.once("dialog", (d) => void d.accept()); // "leave the page?" while uploading
    await page.reload();
    // Hydrated (the list is fetched by the page's script) before clicking.
    await page.getByText("No models yet").waitFor();

    await page.getByTestId("models-upload").click();
    await page.getByTestId("model-file").setInputFiles(modelFile);
    await page.getByText("an upload of this file was started before").waitFor();
    await page.getByTestId("model-extra-files").setInputFiles(tokenizerFile);
    await page.getByTestId("model-name").fill("browser-sim");
    await page.getByTestId("model-version").fill("1");
    await page.getByTestId("model-runtime-select").selectOption("sim");
    await page.getByTestId("model-ref-prompt").fill("The capital of France is");
    await page.getByTestId("model-expected-ids").fill("84, 104, 101");
    const resumed: number[] = [];
    page.on("request", (req) => {
      if (req.method() === "PATCH") resumed.push(Number(req.headers()["upload-offset"]));
    });
    await page.getByTestId("model-submit").click();

    const row = page.locator('[data-testid="model-row"][data-name="browser-sim"]');
    await row.waitFor({ timeout: 60_000 });
    // It continued where the server was (after the first 8 MiB chunk, and whatever of the second arrived), not from 0.
    expect(offsets).toEqual([0]);
    expect(resumed[0]).toBeGreaterThanOrEqual(8 * MiB);
    expect(resumed[0]).toBeLessThan(20 * MiB);
    await expect(row.getByTestId("model-runtime").textContent()).resolves.toContain("simulated");
    const [created] = (await server.client.artifacts.list.query()).filter((m) => m.name === "browser-sim");
    expect(created).toMatchObject({
      version: "1",
      runtime: "sim",
      source: "upload",
      reference: { prompt: "The capital of France is", expectedTokenIds: [84, 104, 101] },
      files: [
        { name: "sim-browser.bin", role: "model", size: 20 * MiB, sha256: model.sha256 },
        { name: "tokenizer.json", role: "tokenizer" },
      ],
    });
  });

  it("registers a model by URL and deletes one", async () => {
    const sha256 = createHash("sha256").update(remote).digest("hex");
    await page.getByTestId("models-register-url").click();
    await page.getByTestId("model-url").fill(`${filesUrl}/remote-sim.bin`);
    await page.getByTestId("model-url-sha256").fill(sha256);
    await page.getByTestId("model-name").fill("remote-sim");
    await page.getByTestId("model-version").fill("1");
    await page.getByTestId("model-runtime-select").selectOption("sim");
    await page.getByTestId("model-submit").click();
    const row = page.locator('[data-testid="model-row"][data-name="remote-sim"]');
    await row.waitFor({ timeout: 30_000 });
    const [created] = (await server.client.artifacts.list.query()).filter((m) => m.name === "remote-sim");
    expect(created).toMatchObject({ source: "url", files: [{ name: "remote-sim.bin", role: "model", sha256, size: remote.length }] });

    await row.getByTestId("model-delete").click();
    await page.getByTestId("model-delete-confirm").click();
    await row.waitFor({ state: "detached" });
    expect((await server.client.artifacts.list.query()).map((m) => m.name)).toEqual(["browser-sim"]);
  });
});
