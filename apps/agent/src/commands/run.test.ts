/**
 * `orchard-agent run` as a real process (bin/orchard-agent.mjs, the real sim runner, a
 * real broker): one data directory serves one agent. A second start on it is refused
 * with a sentence naming the directory and the running agent's pid; a lock left by an
 * agent that died (SIGKILL) does not block the next start.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type DeviceStatus, topics } from "@orchard/contracts";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestBroker } from "../../test/helpers/broker.js";
import { until } from "../../test/helpers/until.js";
import { saveAgentFile } from "../config/agent-file.js";
import { REPO_RUNNER_PATH } from "../config/cli.js";

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const AGENT_BIN = fileURLToPath(new URL("../../bin/orchard-agent.mjs", import.meta.url));
const DEVICE = "pi-lock-01";
const PASSWORD = "lock-test-password";

interface AgentProc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

beforeAll(() => {
  if (!existsSync(RUNNER)) throw new Error(`the runner binary ${RUNNER} is missing: build native/ first`);
});

async function setup() {
  const broker = await new TestBroker({ devices: { [DEVICE]: PASSWORD } }).start();
  cleanup.push(() => broker.stop());
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-lock-"));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  await saveAgentFile(dataDir, {
    version: 1,
    serverUrl: "http://127.0.0.1:9",
    deviceId: DEVICE,
    name: "lock-test",
    mqtt: { url: broker.url, username: DEVICE, password: PASSWORD },
    enrolledAt: new Date().toISOString(),
    artifactPublicKey: "not-used-here",
  });
  let connects = 0;
  broker.broker!.on("client", (client) => {
    if (client.id === DEVICE) connects += 1;
  });
  const start = (): AgentProc => {
    const child = spawn(
      process.execPath,
      [AGENT_BIN, "run", "--data-dir", dataDir, "--runner", "sim", "--runner-bin", RUNNER, "--runner-arg=--sim-load-ms=20"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout!.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (output += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    cleanup.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    return { child, output: () => output, exited };
  };
  const online = () => (broker.on(topics.status(DEVICE)) as DeviceStatus[]).filter((s) => s.state === "online").length;
  return { broker, dataDir, start, connects: () => connects, online };
}

describe("orchard-agent run: one agent per data directory", () => {
  it("refuses a second agent on the same data directory, naming the directory and the running agent's pid", async () => {
    const { dataDir, start, connects } = await setup();
    const first = start();
    await until("the first agent connected", () => connects() === 1, 30_000);

    const second = start();
    // On its own, a second agent would log in with the same client id and knock the first off the broker.
    const outcome = await Promise.race([
      second.exited.then((exit) => ({ exit })),
      until("a second connection", () => connects() > 1, 30_000).then(() => ({ exit: null })),
    ]);
    expect(outcome.exit, `the second agent kept running:\n${second.output()}`).not.toBeNull();
    expect(outcome.exit!.code).toBe(1);
    expect(second.output()).toContain(dataDir);
    expect(second.output()).toMatch(new RegExp(`pid ${first.child.pid}\\b`));
    expect(second.output()).toMatch(/already|in use/);
    // The first one was left alone: still running, never disconnected.
    expect(first.child.exitCode).toBeNull();
    expect(connects()).toBe(1);

    // After a clean stop the lock is gone and the directory can be used again.
    first.child.kill("SIGTERM");
    expect((await first.exited).code).toBe(0);
    expect(existsSync(path.join(dataDir, "agent.lock"))).toBe(false);
  });

  it("a lock left by an agent that died does not block the next start", async () => {
    const { dataDir, start, connects, online } = await setup();
    const first = start();
    await until("the first agent online", () => online() >= 1, 30_000);
    first.child.kill("SIGKILL"); // no chance to remove its lock
    await first.exited;
    const left = JSON.parse(await readFile(path.join(dataDir, "agent.lock"), "utf8")) as { pid: number };
    expect(left.pid).toBe(first.child.pid);

    const second = start();
    await until("the next agent online", () => connects() === 2 && online() >= 2, 30_000);
    expect(second.child.exitCode).toBeNull();
    const taken = JSON.parse(await readFile(path.join(dataDir, "agent.lock"), "utf8")) as { pid: number };
    expect(taken.pid).toBe(second.child.pid);
  });

  it("a lock whose pid now belongs to another process (pid reuse) does not block a start", async () => {
    const { dataDir, start, online } = await setup();
    // This test's own pid is alive, but it is not the process that wrote this lock (another start time).
    await writeFile(
      path.join(dataDir, "agent.lock"),
      JSON.stringify({ version: 1, pid: process.pid, procStart: "1", startedAt: new Date(0).toISOString(), token: "old" }),
    );
    const agent = start();
    await until("the agent online", () => online() >= 1, 30_000);
    expect(agent.child.exitCode).toBeNull();
  });
});
