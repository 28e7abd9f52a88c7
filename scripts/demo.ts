/**
 * `npm run demo`: the Orchard server plus ORCHARD_DEMO_AGENTS (default 3) local
 * agents, each in its own data dir under $ORCHARD_DATA/demo-agents and each
 * supervising a native runner with the `sim` backend (simulated inference, no
 * model). Agents enroll through the real enrollment API on first start and are
 * reused afterwards. So that the throughput charts have something to show, each agent
 * is asked a short question every ORCHARD_DEMO_TRAFFIC_SECONDS (default 20, 0 = never)
 * through the OpenAI-compatible API — demo traffic, which creates no conversations.
 * Two small SIMULATED model files are written under $ORCHARD_DATA/demo-models, so a
 * rollout can be tried from the browser: upload one on the Models page, roll it out.
 * A tiny GGUF with RANDOM weights is written there too (real llama.cpp compute,
 * gibberish text): rolled out as runtime llama.cpp it switches a device to the
 * llama.cpp runner. ORCHARD_DEMO_RUNNER=llamacpp starts the agents on it directly
 * (`--runner llamacpp`, ORCHARD_DEMO_LLAMA_THREADS threads each, default 1).
 * ORCHARD_DEMO_RUNNER=executorch starts them on orchard-runner's ExecuTorch backend with
 * the tiny RANDOM-weight Gemma 4 .pte tools/export makes (scripts/tiny-pte.ts; needs
 * `npm run executorch:setup` and a build after it; the first start exports it, about
 * 2–3 minutes on 2 cores, into $ORCHARD_DATA/demo-models). Its folder is also a model
 * to push: `orchard artifact push DIR`.
 * Ctrl-C stops everything: the agents first (each says goodbye to the server), then the
 * server, with one line before and one after, exit code 0. The children run in their own
 * process groups so that the terminal's SIGINT reaches only the demo, which signals each
 * child once; further Ctrl-Cs while it stops are ignored.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createOrchardClient } from "../apps/cli/src/client.ts";
import { REFERENCE_PROMPT, simReferenceIds, writeSimModel } from "./sim-model.ts";
import { TINY_GGUF_NAME, writeTinyGguf } from "./tiny-gguf.ts";
import { executorchUnavailable, tinyModel } from "./tiny-pte.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const agentBin = path.join(root, "apps/agent/bin/orchard-agent.mjs");
const llamaRunnerBin = path.join(root, "apps/agent/bin/orchard-llama-runner.mjs");

const count = Number(process.env.ORCHARD_DEMO_AGENTS ?? "3");
if (!Number.isInteger(count) || count < 0 || count > 50) {
  process.stderr.write("demo: ORCHARD_DEMO_AGENTS must be a whole number from 0 to 50\n");
  process.exit(2);
}
const runner = process.env.ORCHARD_DEMO_RUNNER || "sim";
if (runner !== "sim" && runner !== "llamacpp" && runner !== "executorch") {
  process.stderr.write("demo: ORCHARD_DEMO_RUNNER must be sim (default), llamacpp or executorch\n");
  process.exit(2);
}
if (runner === "sim" && count > 0 && !existsSync(path.join(root, "native/build/orchard-runner"))) {
  // npm install goes on without the runner when it cannot be built (scripts/build.mjs says why).
  process.stderr.write(
    "demo: the sim agents need orchard-runner (native/build/orchard-runner), which is not built: install " +
      "`sudo apt-get install cmake g++ nlohmann-json3-dev` and run `npm run build`, or run the agents on the llama.cpp runner, " +
      "which needs no build: ORCHARD_DEMO_RUNNER=llamacpp npm run demo\n",
  );
  process.exit(2);
}
if (runner === "executorch") {
  const missing = executorchUnavailable();
  if (missing) {
    process.stderr.write(`demo: ORCHARD_DEMO_RUNNER=executorch needs the ExecuTorch build: ${missing}\n`);
    process.exit(2);
  }
}
const llamaThreads = Number(process.env.ORCHARD_DEMO_LLAMA_THREADS ?? "1");
if (!Number.isInteger(llamaThreads) || llamaThreads < 1 || llamaThreads > 256) {
  process.stderr.write("demo: ORCHARD_DEMO_LLAMA_THREADS must be a whole number of threads from 1 to 256\n");
  process.exit(2);
}
const dataDir = path.resolve(process.env.ORCHARD_DATA ?? "./data");
/** The tiny random-weights GGUF (written once). */
const demoGguf = path.join(dataDir, "demo-models", "orchard-tiny-random.gguf");
const port = Number(process.env.PORT ?? "3000");
const url = `http://127.0.0.1:${port}`;
// The demo talks to its own server through the API; a key is made up when none is configured.
const apiKey = process.env.ORCHARD_API_KEY || `demo-${randomBytes(24).toString("base64url")}`;

const trafficSeconds = Number(process.env.ORCHARD_DEMO_TRAFFIC_SECONDS ?? "20");
if (!Number.isFinite(trafficSeconds) || trafficSeconds < 0) {
  process.stderr.write("demo: ORCHARD_DEMO_TRAFFIC_SECONDS must be a number of seconds (0 turns demo traffic off)\n");
  process.exit(2);
}
const DEMO_QUESTIONS = [
  "The capital of France is",
  "Name three fruits that grow in an orchard.",
  "Why does a Raspberry Pi slow down when it gets hot?",
  "Write a haiku about apples.",
];

const children: { label: string; child: ChildProcess }[] = [];
let stopping = false;

/** While stopping, the children's own goodbye lines (INFO) are not shown; warnings and errors still are. */
const QUIET_WHEN_STOPPING = /^\S+ (INFO|DEBUG) |^received SIG[A-Z]+, shutting down$|^\{"level":"(info|debug)"/;

function prefixed(child: ChildProcess, label: string): void {
  for (const stream of [child.stdout, child.stderr]) {
    let buf = "";
    stream?.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (stopping && QUIET_WHEN_STOPPING.test(line)) continue;
        process.stdout.write(`[${label}] ${line}\n`);
      }
    });
  }
}

function start(label: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  // detached: a process group of its own, so the terminal's Ctrl-C (SIGINT to the foreground group) reaches only
  // the demo, which stops each child once and in order; otherwise every agent got SIGINT and then SIGTERM.
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  prefixed(child, label);
  children.push({ label, child });
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

async function waitForHealth(server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error("the server exited during start-up (see its log above)");
    try {
      const res = await fetch(`${url}/api/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error("the server did not become healthy within 2 minutes");
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** SIGTERM to each child still running, then waits for them; one that takes longer than `graceMs` is killed. */
async function stopChildren(list: ChildProcess[], graceMs: number): Promise<void> {
  const left = list.filter(running);
  for (const child of left) child.kill("SIGTERM");
  await Promise.all(
    left.map(async (child) => {
      const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited(child);
      clearTimeout(kill);
    }),
  );
}

let stopped: Promise<never> | null = null;

/** Stops the agents (and enrollments), then the server, once; later calls (another Ctrl-C) wait for the same stop. */
function stopAll(code: number): Promise<never> {
  stopped ??= (async () => {
    stopping = true;
    process.stdout.write("demo: stopping the agents and the server…\n");
    // The agents first: each publishes its offline status to the server's broker on the way out.
    await stopChildren(
      children.filter((c) => c.label !== "server").map((c) => c.child),
      30_000,
    );
    await stopChildren(
      children.filter((c) => c.label === "server").map((c) => c.child),
      15_000,
    );
    process.stdout.write("demo: stopped\n");
    process.exit(code);
  })();
  return stopped;
}

process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));
// Children in their own process groups outlive the demo unless it stops them: if it exits another way, kill them.
process.on("exit", () => {
  for (const { child } of children) if (running(child)) child.kill("SIGKILL");
});

/** Asks one device a short question now and then, so its tokens/s charts move. Failures (busy, restarting) are skipped quietly. */
function demoTraffic(deviceId: string, index: number): void {
  let n = index;
  const ask = async () => {
    if (stopping) return;
    try {
      await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: `device:${deviceId}`,
          messages: [{ role: "user", content: DEMO_QUESTIONS[n++ % DEMO_QUESTIONS.length] }],
          // The tiny .pte holds 63 positions: short answers, so that a question and its answer fit.
          max_tokens: runner === "executorch" ? 12 : 48,
        }),
      }).then((res) => res.arrayBuffer());
    } catch {
      // the server is stopping or busy; the next round tries again
    }
    if (!stopping) setTimeout(() => void ask(), trafficSeconds * 1000 * (0.75 + Math.random() * 0.5)).unref();
  };
  setTimeout(() => void ask(), 5_000 + index * 2_000).unref();
}

/** The tiny GGUF (random weights), written once; llama.cpp computes with it, its text is gibberish. */
async function ensureDemoGguf(): Promise<void> {
  // A 4096-token context, so that a conversation in the dashboard has room to go on.
  if (!existsSync(demoGguf)) await writeTinyGguf({ file: demoGguf, seed: 1, context: 4096 });
}

/** The llama.cpp release the llama runner loads: a GGUF artifact's runtime version. */
function llamaCppRelease(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [llamaRunnerBin, "--capabilities"], { cwd: root, timeout: 60_000 }, (error, stdout) => {
      if (error) return reject(error);
      try {
        const caps = JSON.parse(stdout.trim().split("\n")[0] ?? "") as { runtimes?: Record<string, { versions?: string[] }> };
        const version = caps.runtimes?.["llama.cpp"]?.versions?.[0];
        if (!version) throw new Error("no llama.cpp version");
        resolve(version);
      } catch (parseError) {
        reject(parseError as Error);
      }
    });
  });
}

const shownPath = (file: string): string => (path.relative(root, file).startsWith("..") ? file : path.relative(root, file));

/** Models to try a rollout with (written once): two simulated ones and the tiny GGUF; returns a line per file for the banner. */
async function demoModels(): Promise<string[]> {
  const dir = path.join(dataDir, "demo-models");
  const lines: string[] = [];
  for (const [version, decode] of [
    ["1", 20],
    ["2", 35],
  ] as const) {
    const file = path.join(dir, `orchard-demo-v${version}.sim`);
    if (!existsSync(file)) {
      await mkdir(dir, { recursive: true });
      await writeSimModel({ file, sizeBytes: 32 * 2 ** 20, header: { name: `orchard-demo v${version}`, decode_tok_s: decode } });
    }
    const ids = await simReferenceIds({ modelFile: file, maxNewTokens: 8 });
    lines.push(`  ${shownPath(file)}  (runtime sim, expected ids for "${REFERENCE_PROMPT}": ${ids.join(",")})`);
  }
  await ensureDemoGguf();
  const release = await llamaCppRelease().catch(
    (err: Error) => `? (orchard-llama-runner --capabilities failed: ${err.message.split("\n")[0]})`,
  );
  lines.push(`  ${shownPath(demoGguf)}  (runtime llama.cpp ${release}; "${TINY_GGUF_NAME}": RANDOM weights, gibberish text)`);
  return lines;
}

async function main(): Promise<void> {
  // Before the server starts: the export blocks this process for a minute or more.
  let pte: ReturnType<typeof tinyModel> | null = null;
  if (runner === "executorch") {
    process.stdout.write("demo: exporting the tiny Gemma 4 .pte with tools/export if it is not there yet (2–3 min the first time)…\n");
    pte = tinyModel("gemma4-e2b-extcache", path.join(dataDir, "demo-models"));
  }
  // node --import tsx rather than the tsx CLI: one process (the CLI runs the script in a child and relays signals).
  const server = start("server", ["--import", "tsx", path.join(root, "apps/web/server.ts")], { ...process.env, ORCHARD_API_KEY: apiKey });
  server.once("exit", (code) => {
    if (!stopping) {
      process.stderr.write(`demo: the server exited (code ${code}); stopping the agents\n`);
      void stopAll(1);
    }
  });
  await waitForHealth(server);

  if (runner === "llamacpp") await ensureDemoGguf();
  const runnerArgs = pte
    ? ["--runner", "executorch", "--model", pte.model, "--tokenizer", pte.dir, "--profile", pte.manifest.profile]
    : runner === "llamacpp"
      ? ["--runner", "llamacpp", "--model", demoGguf, "--llama-threads", String(llamaThreads)]
      : ["--runner", "sim"];
  const client = createOrchardClient({ url, apiKey });
  const known = new Set((await client.devices.list.query()).map((d) => d.id));
  for (let i = 1; i <= count; i++) {
    const name = `demo-pi-${i}`;
    const agentDir = path.join(dataDir, "demo-agents", name);
    const agentFile = path.join(agentDir, "agent.json");
    const enrolledId = existsSync(agentFile) ? (JSON.parse(readFileSync(agentFile, "utf8")) as { deviceId?: string }).deviceId : undefined;
    if (!enrolledId || !known.has(enrolledId)) {
      const { token } = await client.enrollment.create.mutate({ deviceName: name, ttlMinutes: 5 });
      const enroll = start(name, [agentBin, "enroll", "--server", url, "--token", token, "--data-dir", agentDir]);
      const code = await exited(enroll);
      if (code !== 0) throw new Error(`enrolling ${name} failed (exit ${code})`);
    }
    const agent = start(name, [agentBin, "run", "--data-dir", agentDir, ...runnerArgs]);
    agent.once("exit", (code) => {
      if (!stopping) process.stderr.write(`demo: agent ${name} exited (code ${code})\n`);
    });
    const deviceId = (JSON.parse(readFileSync(agentFile, "utf8")) as { deviceId: string }).deviceId;
    if (trafficSeconds > 0) demoTraffic(deviceId, i);
  }
  const models = await demoModels().catch((err: Error) => [`  (could not write the demo models: ${err.message})`]);
  process.stdout.write(
    (pte
      ? `\nOrchard demo: ${count} local agents with orchard-runner's ExecuTorch backend on ${shownPath(pte.model)} ` +
        `(${pte.manifest.profile}, ExecuTorch ${pte.manifest.runtimeVersion}; real ExecuTorch inference on a tiny Gemma-4-shaped ` +
        `model with RANDOM weights: the text is gibberish). Push its folder as a model: orchard artifact push ${shownPath(pte.dir)}\n`
      : runner === "llamacpp"
        ? `\nOrchard demo: ${count} local agents with the llama.cpp runner on ${shownPath(demoGguf)} (${llamaThreads} thread(s) each; ` +
          `real llama.cpp inference on a tiny model with RANDOM weights: the text is gibberish).\n`
        : `\nOrchard demo: ${count} local agents with the simulated runner (sim backend, no real model).\n`) +
      `Dashboard: http://localhost:${port}  ·  CLI: ORCHARD_URL=http://localhost:${port} ORCHARD_API_KEY=${apiKey} npx orchard devices\n` +
      (trafficSeconds > 0
        ? `Demo traffic: each agent is asked a short question every ~${trafficSeconds} s (ORCHARD_DEMO_TRAFFIC_SECONDS=0 turns it off).\n`
        : "") +
      `Models to try a rollout with (upload on the Models page, then roll out; the .gguf switches a sim device to llama.cpp):\n${models.join("\n")}\n` +
      `Ctrl-C stops the server and the agents.\n\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`demo: ${err.message}\n`);
  void stopAll(1);
});
