/**
 * downloadFile against the real HTTP blob server of the rollout tests (127.0.0.1), with
 * an injected clock and sleep: the retry budget is a span of time, so a test drives that
 * time by hand instead of waiting for it (no assertion is about how long anything took).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BlobServer, bytes, sha256 } from "../../test/helpers/rollout.js";
import { ManualClock } from "../lib/clock.js";
import { silentLogger } from "../lib/logger.js";
import { DOWNLOAD_BACKOFF, DOWNLOAD_RETRY_BUDGET_MS, DownloadError, type DownloadOptions, downloadFile } from "./download.js";

const AUTH = "Basic dGVzdDp0ZXN0";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(size: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-download-"));
  const server = await new BlobServer(AUTH).start();
  cleanups.push(async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const data = bytes(size, 5);
  const sha = sha256(data);
  server.blobs.set(sha, data);
  const clock = new ManualClock();
  /** Every wait the download asked for, in order. */
  const waits: number[] = [];
  const options = (over: Partial<DownloadOptions> = {}): DownloadOptions => ({
    url: `${server.url}/api/artifacts/blobs/${sha}`,
    authorization: AUTH,
    partialPath: path.join(dir, "partial", sha),
    expectedSize: size,
    signal: new AbortController().signal,
    onBytes: () => undefined,
    logger: silentLogger,
    clock,
    sleep: async (ms) => {
      waits.push(ms);
      clock.advance(ms);
    },
    ...over,
  });
  return { dir, server, data, sha, clock, waits, options };
}

describe("downloadFile across a server outage", () => {
  it("keeps resuming with backoff through an outage far longer than 30 s, then completes from where it stopped", async () => {
    const s = await setup(300_000);
    s.server.cutAfter = 100_000;
    const outageMs = 5 * 60_000; // a server restart took 42 s in the field; the old budget was about 30 s in all
    let outageStart: number | null = null;
    const result = await downloadFile(
      s.options({
        sleep: async (ms) => {
          s.waits.push(ms);
          if (outageStart === null) {
            // The connection was cut: the server is down from now on…
            outageStart = s.clock.now();
            await s.server.down();
          }
          s.clock.advance(ms);
          // …and back once the outage is over.
          if (s.clock.now() - outageStart >= outageMs && !s.server.listening) await s.server.up();
        },
      }),
    );
    expect(result).toMatchObject({ sha256: s.sha, size: 300_000 });
    expect(await readFile(s.options().partialPath)).toEqual(s.data);
    // It waited through the whole outage, each wait within the backoff's cap.
    expect(s.waits.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(outageMs);
    expect(s.waits.length).toBeGreaterThan(6);
    expect(Math.max(...s.waits)).toBeLessThanOrEqual(DOWNLOAD_BACKOFF.maxMs);
    // Two requests reached the server: the first (cut), and the resume from the bytes on disk.
    expect(s.server.requests.map((q) => q.status)).toEqual([200, 206]);
    expect(s.server.requests[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it(`gives up with download_failed once the server has been unreachable for ${DOWNLOAD_RETRY_BUDGET_MS / 60_000} minutes`, async () => {
    const s = await setup(10_000);
    await s.server.down();
    const error = await downloadFile(s.options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DownloadError);
    expect(error).toMatchObject({ code: "download_failed" });
    expect((error as Error).message).toMatch(/ECONNREFUSED/);
    const waited = s.waits.reduce((a, b) => a + b, 0);
    expect(waited).toBeGreaterThanOrEqual(DOWNLOAD_RETRY_BUDGET_MS - DOWNLOAD_BACKOFF.maxMs);
    expect(waited).toBeLessThanOrEqual(DOWNLOAD_RETRY_BUDGET_MS);
    expect(DOWNLOAD_RETRY_BUDGET_MS).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it("an abort during the waits ends it at once with the abort's reason", async () => {
    const s = await setup(10_000);
    await s.server.down();
    const ctl = new AbortController();
    const error = await downloadFile(
      s.options({
        signal: ctl.signal,
        sleep: async (ms) => {
          s.waits.push(ms);
          s.clock.advance(ms);
          if (s.waits.length === 3) ctl.abort(new Error("stopped by the test"));
        },
      }),
    ).catch((e: unknown) => e);
    expect((error as Error).message).toBe("stopped by the test");
    expect(s.waits).toHaveLength(3);
  });
});
