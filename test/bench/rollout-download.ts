/**
 * Model downloads during a rollout, over loopback, on one big simulated model
 * (scripts/sim-model.ts; BENCH_ARTIFACT_MB, default 2048 = 2 GiB) pushed through the real
 * upload API to a real server (embedded broker, PGlite).
 *
 * (i) The agent's download + verify throughput: a REAL agent (orchard-agent with the sim
 *     runner) is rolled the model out to; the time is taken from the agent's own log of its
 *     rollout.state transitions, `downloading` → `staged` (download to the partial file with
 *     the sha256 computed in the same pass, then the signature, size and hash check), against
 *     `curl -s URL | tee FILE | openssl dgst -sha256` with the device's Basic auth, run just
 *     before and just after the agent in the same run (FILE on the same disk as the agent's
 *     data dir; neither fsyncs inside the measured window). Ratio = agent / mean of the curls.
 * (ii) The agent's peak RSS during that rollout: VmHWM of the agent process, reset (Linux
 *     /proc/PID/clear_refs "5") just before the rollout is created and read once the model
 *     is staged; the idle RSS before is printed beside it.
 * (iii) The server serving BENCH_DOWNLOADERS (10) downloads at once: SIMULATED devices in
 *     the benchmark process, each a device enrolled through the real API running the
 *     agent's download module (apps/agent/src/rollout/download.ts: streaming, sha256 in the
 *     same pass) with its own credentials, writing to /dev/null so that 10 copies of the
 *     file do not hit the disk. The server runs with ORCHARD_MAX_CONCURRENT_DOWNLOADS = that
 *     many, so all are sent at once. Server CPU is user+system over the window (100 % = one
 *     core) from /proc, RSS sampled every 250 ms (peak and at the end); every download's
 *     sha256 is checked.
 *
 * Everything shares the machine's cores: the agent (or the downloaders) compete with the
 * server for CPU, so read the figures as ratios.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { EnrollResponse } from "@orchard/contracts";
import { planPush, push } from "../../apps/cli/src/artifact.ts";
import { deviceAuthorization } from "../../apps/agent/src/rollout/artifact-key.ts";
import { downloadFile } from "../../apps/agent/src/rollout/download.ts";
import { silentLogger } from "../../apps/agent/src/lib/logger.ts";
import { REFERENCE_PROMPT, simReferenceIds, writeSimModel } from "../../scripts/sim-model.ts";
import { RUNNER_BIN, enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";
import { processUsage } from "./stats.ts";

const MiB = 2 ** 20;

const mibs = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

async function procStatusKb(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN);
}

/** Resets the process's peak RSS (VmHWM) to its current RSS; false where the kernel does not allow it. */
async function resetPeakRss(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** `curl -s URL | tee FILE | openssl dgst -sha256`, timed; resolves with the digest it printed. */
async function curlPipeline(url: string, authorization: string, file: string): Promise<{ ms: number; sha256: string }> {
  const script = 'set -o pipefail; curl -sSf -H "Authorization: $AUTH" "$URL" | tee "$FILE" | openssl dgst -sha256';
  const started = performance.now();
  const child = spawn("bash", ["-c", script], {
    env: { ...process.env, AUTH: authorization, URL: url, FILE: file },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", resolve);
  });
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`curl | tee | openssl exited ${code}: ${err.trim()}`);
  const sha256 = /([0-9a-f]{64})\s*$/.exec(out.trim())?.[1];
  if (!sha256) throw new Error(`openssl printed no digest: ${out}`);
  return { ms, sha256 };
}

interface AgentLogLine {
  ts: string;
  msg: string;
  to?: string;
  rolloutId?: string;
}

/** When the agent logged its rollout's move to `state` (its own clock, ms). */
function transitionAt(agent: TestAgent, rolloutId: string, state: string): number | null {
  for (const line of agent.proc!.output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as AgentLogLine;
    if (entry.msg === "rollout state" && entry.rolloutId === rolloutId && entry.to === state) return Date.parse(entry.ts);
  }
  return null;
}

async function enrollRaw(server: TestServer, name: string): Promise<EnrollResponse> {
  const { token } = await server.client.enrollment.create.mutate({ deviceName: name, ttlMinutes: 5 });
  const res = await fetch(`${server.url}/api/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, hostname: name, arch: "arm64", agentVersion: "bench" }),
  });
  if (res.status !== 201) throw new Error(`enrolling ${name}: HTTP ${res.status} ${await res.text()}`);
  return EnrollResponse.parse(await res.json());
}

async function scrapeCounter(server: TestServer, series: string): Promise<number> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

export async function benchRolloutDownload(opts: { sizeMiB: number; downloaders: number }): Promise<string[]> {
  const size = Math.round(opts.sizeMiB * MiB);
  const { downloaders } = opts;
  const log = (line: string) => process.stdout.write(`  ${line}\n`);
  const tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-bench-rollout-"));
  const server = await startServer({ env: { ORCHARD_LOG_LEVEL: "warn", ORCHARD_MAX_CONCURRENT_DOWNLOADS: String(downloaders) } });
  let agent: TestAgent | null = null;
  try {
    agent = await enrollAgent(server, "bench-download");
    agent.start(["--log-format", "json", "--telemetry-interval", "5"]);
    const deviceId = agent.deviceId;
    await waitFor("the agent ready", async () => (await server.client.devices.get.query({ id: deviceId }))?.runner?.state === "ready");

    // The model: written, its reference ids from the real runner, pushed through the upload API.
    const modelFile = path.join(tmp, "bench-model.sim");
    let t = performance.now();
    const written = await writeSimModel({ file: modelFile, sizeBytes: size, header: { name: "bench-download", load_ms: 50 } });
    const ids = await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile });
    log(`wrote a ${mibs(size)} sim model in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const plan = await planPush({
      files: [modelFile],
      name: "bench-download",
      version: "1",
      runtime: "sim",
      runtimeVersion: undefined,
      profile: undefined,
      maxContext: undefined,
      referencePrompt: REFERENCE_PROMPT,
      expectedIds: ids.join(","),
    });
    const artifact = await push(plan, { client: server.client, url: server.url, apiKey: server.apiKey, err: () => undefined, tty: false });
    const uploadMs = performance.now() - t;
    log(`uploaded it through the upload API in ${(uploadMs / 1000).toFixed(1)} s (${rate(size, uploadMs)})`);
    await rm(modelFile, { force: true }); // the server has it; keep the disk for the downloads

    const agentJson = JSON.parse(await readFile(path.join(agent.dataDir, "agent.json"), "utf8")) as {
      deviceId: string;
      mqtt: { password: string };
    };
    const authorization = deviceAuthorization(agentJson.deviceId, agentJson.mqtt.password);
    const url = `${server.url}/api/artifacts/blobs/${written.sha256}`;
    const curlFile = path.join(tmp, "curl-download");

    // (i) curl before, the agent, curl after.
    const curlRuns: number[] = [];
    const curlOnce = async () => {
      const run = await curlPipeline(url, authorization, curlFile);
      if (run.sha256 !== written.sha256) throw new Error(`curl | openssl gave sha256 ${run.sha256}, the file has ${written.sha256}`);
      if ((await stat(curlFile)).size !== size) throw new Error("curl's file has another size than the model");
      await rm(curlFile, { force: true });
      curlRuns.push(run.ms);
      log(`curl | tee | openssl: ${(run.ms / 1000).toFixed(2)} s (${rate(size, run.ms)})`);
    };
    await curlOnce();

    const pid = agent.proc!.pid;
    const idleRssKb = await procStatusKb(pid, "VmRSS");
    const idlePeakKb = await procStatusKb(pid, "VmHWM");
    const reset = await resetPeakRss(pid);
    const created = await server.client.rollouts.create.mutate({
      artifactId: artifact.id,
      deviceIds: [deviceId],
      name: "bench download",
      strategy: { canary: 0, retries: 0 },
    });
    const proc = agent.proc!;
    // The peak is read once the model is staged, before activation starts a new runner.
    const stagedAt = await waitFor(
      "the agent to stage the model",
      () => {
        if (!proc.running) throw new Error(`the agent exited:\n${proc.output.slice(-3000)}`);
        return transitionAt(agent!, created.id, "staged");
      },
      3_600_000,
    );
    const peakKb = await procStatusKb(pid, "VmHWM");
    const downloadingAt = transitionAt(agent, created.id, "downloading")!;
    const agentMs = stagedAt - downloadingAt;
    const done = await waitFor(
      "the rollout to end",
      async () => {
        const r = await server.client.rollouts.get.query({ id: created.id });
        return r.state !== "running" ? r : null;
      },
      600_000,
    );
    if (done.state !== "completed") throw new Error(`the rollout ${done.state}: ${JSON.stringify(done.devices.map((d) => d.error))}`);
    log(`agent (real rollout, downloading → staged): ${(agentMs / 1000).toFixed(2)} s (${rate(size, agentMs)})`);
    await curlOnce();
    const curlMs = curlRuns.reduce((s, v) => s + v, 0) / curlRuns.length;

    // (iii) N simulated devices downloading at once.
    const devices: EnrollResponse[] = [];
    for (let i = 0; i < downloaders; i++) devices.push(await enrollRaw(server, `bench-downloader-${i}`));
    const servedBefore = await scrapeCounter(server, "orchard_artifact_bytes_served_total");
    const busyBefore = await scrapeCounter(server, "orchard_artifact_downloads_busy_total");
    const serverBefore = await processUsage(server.proc.pid);
    const benchBefore = process.cpuUsage();
    let peakServerRss = serverBefore.rssBytes;
    const sampler = setInterval(() => {
      processUsage(server.proc.pid).then(
        (u) => (peakServerRss = Math.max(peakServerRss, u.rssBytes)),
        () => undefined,
      );
    }, 250);
    const controller = new AbortController();
    const started = performance.now();
    let results;
    try {
      results = await Promise.all(
        devices.map((d) =>
          downloadFile({
            url,
            authorization: deviceAuthorization(d.deviceId, d.mqttPassword),
            partialPath: "/dev/null",
            expectedSize: size,
            signal: controller.signal,
            onBytes: () => undefined,
            logger: silentLogger,
          }),
        ),
      );
    } finally {
      clearInterval(sampler);
    }
    const manyMs = performance.now() - started;
    const serverAfter = await processUsage(server.proc.pid);
    const benchCpu = process.cpuUsage(benchBefore);
    for (const r of results) {
      if (r.sha256 !== written.sha256 || r.size !== size) throw new Error(`a download ended with ${r.size} bytes, sha256 ${r.sha256}`);
    }
    const served = (await scrapeCounter(server, "orchard_artifact_bytes_served_total")) - servedBefore;
    const busy = (await scrapeCounter(server, "orchard_artifact_downloads_busy_total")) - busyBefore;
    const serverCpuS = serverAfter.cpuSeconds - serverBefore.cpuSeconds;

    const ratio = curlMs / agentMs;
    return [
      `${mibs(size)} sim model over loopback; server: embedded broker, PGlite, ORCHARD_MAX_CONCURRENT_DOWNLOADS=${downloaders}`,
      "",
      "| what | time | throughput |",
      "|---|---|---|",
      ...curlRuns.map(
        (ms, i) =>
          `| curl -s URL \\| tee FILE \\| openssl dgst -sha256 (${i === 0 ? "before" : "after"} the agent) | ${(ms / 1000).toFixed(2)} s | ${rate(size, ms)} |`,
      ),
      `| agent, real rollout: downloading → staged (download, sha256 in the same pass, verify) | ${(agentMs / 1000).toFixed(2)} s | ${rate(size, agentMs)} |`,
      "",
      `agent / curl throughput ratio: ${ratio.toFixed(2)} (curl mean ${(curlMs / 1000).toFixed(2)} s)`,
      `agent RSS: ${(idleRssKb / 1024).toFixed(0)} MiB idle before the rollout; peak during download + verify (VmHWM${reset ? ", reset before the rollout" : ", NOT reset: clear_refs refused, so this is the process's lifetime peak"}) ${(peakKb / 1024).toFixed(0)} MiB (lifetime peak before the rollout ${(idlePeakKb / 1024).toFixed(0)} MiB)`,
      "",
      `| simulated downloaders (agent's download module → /dev/null) | wall time | aggregate throughput | served | 503 busy | server CPU | server CPU s per GiB | server RSS before / peak / end | benchmark process CPU |`,
      "|---|---|---|---|---|---|---|---|---|",
      `| ${downloaders} at once | ${(manyMs / 1000).toFixed(1)} s | ${rate(served, manyMs)} | ${mibs(served)} | ${busy} | ${((serverCpuS / (manyMs / 1000)) * 100).toFixed(0)} % | ${(serverCpuS / (served / 2 ** 30)).toFixed(2)} | ${mibs(serverBefore.rssBytes)} / ${mibs(peakServerRss)} / ${mibs(serverAfter.rssBytes)} | ${(((benchCpu.user + benchCpu.system) / 1e6 / (manyMs / 1000)) * 100).toFixed(0)} % |`,
    ];
  } finally {
    await agent?.proc?.stop();
    await server.stop();
    if (agent) await removeDir(agent.dataDir);
    await removeDir(server.dataDir);
    await removeDir(tmp);
  }
}
