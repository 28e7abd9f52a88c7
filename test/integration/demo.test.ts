/**
 * `npm run demo` and Ctrl-C: the demo (through the tsx CLI, as npm runs it) with one sim
 * agent, stopped the way a terminal stops it — SIGINT to the demo and to its whole
 * process group. It used to print "second signal during shutdown" (each agent got the
 * terminal's SIGINT and then the demo's SIGTERM) and EPIPE, and to leave agents behind.
 * Now it stops the agents, then the server, once, with one line before and one after,
 * exits 0 and leaves no process of its tree running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, removeDir, ROOT, RUNNER_BIN, waitFor } from "../support/harness.ts";

/** pid → parent pid and start time of every live process (from /proc; zombies count as gone). */
function processTable(): Map<number, { ppid: number; start: string }> {
  const table = new Map<number, { ppid: number; start: string }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") table.set(Number(name), { ppid: Number(fields[1]), start: fields[19]! });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/** The process `root` and all its descendants, each with its start time (so a reused pid is not mistaken for it). */
function tree(root: number): Map<number, string> {
  const table = processTable();
  const found = new Map<number, string>();
  const walk = (pid: number) => {
    const p = table.get(pid);
    if (!p || found.has(pid)) return;
    found.set(pid, p.start);
    for (const [child, info] of table) if (info.ppid === pid) walk(child);
  };
  walk(root);
  return found;
}

function alive(pids: Map<number, string>): number[] {
  const table = processTable();
  return [...pids].filter(([pid, start]) => table.get(pid)?.start === start).map(([pid]) => pid);
}

let demo: ChildProcess | null = null;
let dataDir = "";

afterAll(async () => {
  if (demo?.pid && demo.exitCode === null) process.kill(-demo.pid, "SIGKILL");
  if (dataDir) await removeDir(dataDir);
});

describe.runIf(existsSync(RUNNER_BIN))("npm run demo", () => {
  it("Ctrl-C stops the agents and the server once, quietly, exit code 0, nothing left running", async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "orchard-demo-"));
    const port = await freePort();
    const mqttPort = await freePort();
    let output = "";
    demo = spawn(path.join(ROOT, "node_modules/.bin/tsx"), ["scripts/demo.ts"], {
      cwd: ROOT,
      // Its own process group, as a terminal's foreground job: the group gets the SIGINT.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        ORCHARD_DATA: dataDir,
        PORT: String(port),
        HOST: "127.0.0.1",
        MQTT_PORT: String(mqttPort),
        MQTT_URL: "",
        DATABASE_URL: "",
        ORCHARD_API_KEY: "",
        ORCHARD_DEMO_AGENTS: "1",
        ORCHARD_DEMO_RUNNER: "sim",
        ORCHARD_DEMO_TRAFFIC_SECONDS: "0",
      },
    });
    demo.stdout!.on("data", (c: Buffer) => (output += c.toString("utf8")));
    demo.stderr!.on("data", (c: Buffer) => (output += c.toString("utf8")));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      demo!.once("exit", (code, signal) => resolve({ code, signal })),
    );

    // Up: the banner is printed and the agent's runner answered (its capabilities are logged).
    await waitFor(
      "the demo's banner and its agent running",
      async () => {
        if (demo!.exitCode !== null) throw new Error(`the demo exited:\n${output.slice(-3000)}`);
        return output.includes("Ctrl-C stops the server and the agents.") && output.includes("runner capabilities");
      },
      180_000,
    );
    const pids = tree(demo.pid!);
    // tsx, the demo, the server, the agent and its runner at least.
    expect(pids.size, `processes of the demo: ${[...pids.keys()].join(", ")}`).toBeGreaterThanOrEqual(5);
    const before = output.length;

    // A terminal's Ctrl-C: SIGINT to the whole foreground process group (tsx and the demo).
    process.kill(-demo.pid!, "SIGINT");
    const result = await exited;
    const shutdown = output.slice(before);

    expect(result, `the demo's exit; its shutdown output:\n${shutdown}`).toEqual({ code: 0, signal: null });
    expect(shutdown).not.toMatch(/second signal/i);
    expect(shutdown).not.toMatch(/EPIPE/);
    const lines = shutdown.split("\n").filter((l) => l.trim() !== "");
    expect(lines, "one line before stopping, one after").toEqual(["demo: stopping the agents and the server…", "demo: stopped"]);
    // Every process of the demo is gone (the runner and the server too), not only the demo.
    expect(alive(pids), "processes of the demo still running after it exited").toEqual([]);
  });
});
