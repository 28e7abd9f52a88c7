/**
 * The supervisor against the real `orchard-runner --backend sim` built from
 * native/ (cheap to run, so no fake). Only the crash-loop test uses a crashing
 * test double, because it needs a runner that dies at once, every time.
 */
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DeviceEvent, DeviceStatus, type RunnerState, type RunnerStatus } from "@orchard/contracts";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { REPO_RUNNER_PATH } from "../config/cli.js";
import { silentLogger } from "../lib/logger.js";
import { RunnerRequestError } from "./generation.js";
import { type RunnerExit, RunnerSupervisor, type RunnerSupervisorOptions } from "./supervisor.js";
import { until } from "../../test/helpers/until.js";
import { TINY_GGUF_NAME, writeTinyGguf } from "../../../../scripts/tiny-gguf.js";
import { LLAMA_RUNNER_SCRIPT, defaultLlamaRunner } from "./programs.js";

const RUNNER = process.env.ORCHARD_RUNNER_BIN || REPO_RUNNER_PATH;
const CRASHING_TEST_DOUBLE = fileURLToPath(new URL("../../test/fixtures/crashing-runner.mjs", import.meta.url));
const FAST_SIM = ["--sim-load-ms=20", "--sim-decode-tok-s=500", "--sim-prefill-tok-s=5000"];

const supervisors: RunnerSupervisor[] = [];
function supervise(options: Partial<RunnerSupervisorOptions> = {}) {
  const s = new RunnerSupervisor({ command: RUNNER, backend: "sim", extraArgs: FAST_SIM, logger: silentLogger, ...options });
  const states: RunnerState[] = [];
  const exits: RunnerExit[] = [];
  s.on("state", (status: RunnerStatus) => states.push(status.state));
  s.on("exit", (exit) => exits.push(exit));
  supervisors.push(s);
  return { s, states, exits };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(() => {
  if (!existsSync(RUNNER)) {
    throw new Error(
      `the runner binary ${RUNNER} is missing: build native/ first (cmake -S native -B native/build && cmake --build native/build)`,
    );
  }
});

afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});

describe("RunnerSupervisor with the real sim runner", () => {
  it("starts the runner and reports it ready with what its ready line said", async () => {
    const { s, states } = supervise();
    s.start();
    expect(s.status().state).toBe("starting");
    await until("ready", () => s.status().state === "ready");
    const status = s.status();
    expect(status).toMatchObject({ state: "ready", backend: "sim", restarts: 0, lastError: null });
    expect(status.model).toMatch(/sim/);
    expect(status.maxContext).toBeGreaterThan(0);
    expect(status.loadMs).toBeGreaterThanOrEqual(0);
    expect(status.rssBytes).toBeGreaterThan(0);
    expect(alive(status.pid!)).toBe(true);
    expect(states).toEqual(["starting", "ready"]);
  });

  it("polls the runner's RSS through the stats request", async () => {
    const { s } = supervise();
    s.start();
    await until("ready", () => s.status().state === "ready");
    const stats = await s.stats();
    expect(stats.type).toBe("stats");
    expect(stats.busy).toBe(false);
    const rss = await s.pollRss();
    expect(rss).toBeGreaterThan(1024 * 1024);
    expect(s.status().rssBytes).toBe(rss);
  });

  it("streams a generation's tokens and its final stats", async () => {
    const { s } = supervise();
    s.start();
    await until("ready", () => s.status().state === "ready");
    const generation = s.generate({ id: "chat-1", messages: [{ role: "user", content: "Hello" }], max_new_tokens: 8 });
    const tokens = [];
    for await (const token of generation) tokens.push(token);
    const done = await generation.result;
    expect(tokens).toHaveLength(8);
    expect(tokens.every((t) => t.id === "chat-1")).toBe(true);
    expect(done).toMatchObject({ id: "chat-1", finish_reason: "length", generated_tokens: 8 });
    expect(done.token_ids).toEqual(tokens.map((t) => t.token_id));
  });

  it("renders conversations with the model folder's chat template and sends the text as `rendered`", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-template-"));
    try {
      const template =
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<model>{% endif %}";
      await writeFile(path.join(dir, "chat_template.jinja"), template);
      const { s } = supervise({ tokenizer: dir });
      s.start();
      await until("ready", () => s.status().state === "ready");
      const run = async (request: Parameters<typeof s.generate>[0]) => {
        const generation = s.generate(request);
        for await (const _ of generation);
        return generation.result;
      };
      const viaTemplate = await run({ id: "t", messages: [{ role: "user", content: "Hello there" }], max_new_tokens: 1 });
      const direct = await run({ id: "r", rendered: "<user>Hello there<model>", max_new_tokens: 1 });
      expect(viaTemplate.prompt_tokens).toBe(direct.prompt_tokens);
      // (the runner's built-in template would have made another prompt of it)
      const builtIn = supervise().s;
      builtIn.start();
      await until("ready", () => builtIn.status().state === "ready");
      const generation = builtIn.generate({ id: "g", messages: [{ role: "user", content: "Hello there" }], max_new_tokens: 1 });
      for await (const _ of generation);
      expect((await generation.result).prompt_tokens).not.toBe(direct.prompt_tokens);

      // A template that does not parse refuses chats (after the next start) with the file named.
      await writeFile(path.join(dir, "chat_template.jinja"), "{% for m in messages %}");
      await s.restart();
      await until("ready", () => s.status().state === "ready");
      expect(() => s.generate({ id: "b", messages: [{ role: "user", content: "hi" }] })).toThrow(
        /the chat template in chat_template.jinja does not parse/,
      );
      // A raw prompt does not need the template.
      expect((await run({ id: "p", prompt: "raw", max_new_tokens: 1 })).generated_tokens).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("cancels a generation when the consumer stops reading", async () => {
    const { s } = supervise({ extraArgs: ["--sim-load-ms=20", "--sim-decode-tok-s=50"] });
    s.start();
    await until("ready", () => s.status().state === "ready");
    const generation = s.generate({ id: "chat-2", prompt: "Once upon a time", max_new_tokens: 1000 });
    let seen = 0;
    for await (const _ of generation) {
      seen += 1;
      if (seen === 2) break;
    }
    const done = await generation.result;
    expect(done.finish_reason).toBe("cancelled");
    expect(done.generated_tokens).toBeLessThan(1000);
  });

  it("passes the runner's refusals on as errors with its code", async () => {
    const { s } = supervise({ extraArgs: ["--sim-load-ms=20", "--sim-decode-tok-s=20"] });
    s.start();
    await until("ready", () => s.status().state === "ready");
    const first = s.generate({ id: "g-a", prompt: "a", max_new_tokens: 100 });
    const second = s.generate({ id: "g-b", prompt: "b", max_new_tokens: 5 });
    await expect(second.result).rejects.toMatchObject({ name: "RunnerRequestError", code: "busy" });
    first.cancel();
    await first.result;
    expect(() => s.generate({ id: "g-c", prompt: "x", max_new_tokens: 1, temperature: 99 })).toThrow(RunnerRequestError);
  });

  it("refuses requests while the runner is not ready", () => {
    const { s } = supervise();
    expect(() => s.generate({ id: "early", prompt: "x" })).toThrow(expect.objectContaining({ code: "not_ready" }));
  });

  it("restarts a runner that was killed, reports the crash, the exit and the restart count", async () => {
    const { s, states, exits } = supervise({ extraArgs: ["--sim-load-ms=20", "--sim-decode-tok-s=20"], restartPolicy: { initialMs: 100 } });
    s.start();
    await until("ready", () => s.status().state === "ready");
    const first = s.status().pid!;
    const inFlight = s.generate({ id: "doomed", prompt: "x", max_new_tokens: 1_000 });
    process.kill(first, "SIGKILL");
    await expect(inFlight.result).rejects.toMatchObject({ code: "runner_exited" });
    await until("crashed", () => s.status().state === "crashed");
    expect(s.status().lastError).toBe("killed by SIGKILL");
    expect(exits).toEqual([expect.objectContaining({ expected: false, signal: "SIGKILL", code: null, restartInMs: 100, pid: first })]);
    await until("ready again", () => s.status().state === "ready" && s.status().pid !== first);
    expect(s.status()).toMatchObject({ state: "ready", restarts: 1, lastError: "killed by SIGKILL" });
    expect(states).toEqual(["starting", "ready", "crashed", "starting", "ready"]);
  });

  it("keeps the runner's last stderr lines for the exit report", async () => {
    const { s, exits } = supervise({ extraArgs: ["--sim-load-ms=20", "--no-such-flag"], restartPolicy: { initialMs: 5_000 } });
    s.start();
    await until("crashed", () => s.status().state === "crashed");
    expect(exits[0]!.code).not.toBe(0);
    expect(exits[0]!.stderrTail).toMatch(/^orchard-runner: unknown argument "--no-such-flag"\n…\n/);
    expect(exits[0]!.stderrTail).toMatch(/--threads N/); // and the last lines, as they came
    expect(s.status().lastError).toBe('exited with code 2: orchard-runner: unknown argument "--no-such-flag"');
  });

  it("shuts the runner down with the shutdown request", async () => {
    const { s, states, exits } = supervise();
    s.start();
    await until("ready", () => s.status().state === "ready");
    const pid = s.status().pid!;
    const started = Date.now();
    await s.stop();
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(alive(pid)).toBe(false);
    expect(s.status()).toMatchObject({ state: "stopped", pid: null, rssBytes: null });
    expect(exits).toEqual([expect.objectContaining({ expected: true, code: 0, restartInMs: null })]);
    expect(states).toEqual(["starting", "ready", "stopped"]);
  });

  it("kills a runner that ignores shutdown after the grace period", async () => {
    const { s } = supervise({ shutdownGraceMs: 300 });
    s.start();
    await until("ready", () => s.status().state === "ready");
    const pid = s.status().pid!;
    process.kill(pid, "SIGSTOP"); // frozen: it cannot read its stdin
    const started = Date.now();
    await s.stop();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(alive(pid)).toBe(false);
    expect(s.status().state).toBe("stopped");
  });

  it("restart() replaces a healthy runner on request", async () => {
    const { s, states } = supervise();
    s.start();
    await until("ready", () => s.status().state === "ready");
    const first = s.status().pid!;
    await s.restart();
    await until("ready", () => s.status().state === "ready");
    expect(s.status().pid).not.toBe(first);
    expect(s.status().restarts).toBe(1);
    expect(alive(first)).toBe(false);
    expect(states).toEqual(["starting", "ready", "stopped", "starting", "ready"]);
  });

  it("reports a missing binary as a failure to start, with a hint", async () => {
    const { s } = supervise({ command: "/nonexistent/orchard-runner", restartPolicy: { initialMs: 5_000 } });
    s.start();
    await until("crashed", () => s.status().state === "crashed");
    expect(s.status().lastError).toMatch(/^cannot start \/nonexistent\/orchard-runner: .*ENOENT.*--runner-bin/);
    expect(s.status().lastError, "what to install and run").toContain(
      "`npm run build`, which needs `sudo apt-get install cmake g++ nlohmann-json3-dev`",
    );
  });
});

describe("RunnerSupervisor and a runner that writes NUL to stderr", () => {
  it("passes the runner's words on with NUL replaced, so the server can store its exit and status", async () => {
    // A test double like crashing-runner.mjs, written here: a real runner's stderr can hold any byte.
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-nul-runner-"));
    const program = path.join(dir, "nul-runner.mjs");
    await writeFile(program, '#!/usr/bin/env node\nprocess.stderr.write("orchard-runner: fatal\\u0000garbage\\n");\nprocess.exit(3);\n');
    await chmod(program, 0o755);
    try {
      const { s, exits } = supervise({ command: program, extraArgs: [], restartPolicy: { initialMs: 60_000 } });
      s.start();
      await until("the runner's exit", () => exits.length > 0);
      const exit = exits[0]!;
      expect(exit.stderrTail).toBe("orchard-runner: fatal\uFFFDgarbage");
      expect(s.status().lastError).toBe("exited with code 3: orchard-runner: fatal\uFFFDgarbage");
      // What the agent publishes from it passes the contract (which refuses NUL).
      const event = {
        kind: "runner.exit",
        ts: Date.now(),
        code: exit.code,
        signal: exit.signal,
        stderrTail: exit.stderrTail,
        restartInMs: 60_000,
      };
      expect(DeviceEvent.safeParse(event).success).toBe(true);
      const status = {
        state: "online",
        ts: Date.now(),
        agentVersion: "1",
        hostname: "pi",
        arch: "arm64",
        runner: s.status(),
        activeModel: null,
      };
      expect(DeviceStatus.safeParse(status).success).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("RunnerSupervisor crash loop (crashing test double)", () => {
  it("reports crash_loop after 5 crashes within the window and slows restarts right down", async () => {
    await chmod(CRASHING_TEST_DOUBLE, 0o755);
    const { s, states, exits } = supervise({
      command: CRASHING_TEST_DOUBLE,
      extraArgs: [],
      restartPolicy: { initialMs: 10, maxMs: 80, crashLoopWindowMs: 60_000, crashLoopRetryMs: 60_000 },
    });
    s.start();
    await until("crash_loop", () => s.status().state === "crash_loop", 20_000);
    expect(exits.map((e) => e.restartInMs)).toEqual([10, 20, 40, 80, 60_000]);
    expect(exits.every((e) => !e.expected && e.code === 3)).toBe(true);
    expect(exits[4]!.stderrTail).toContain("simulated fatal error");
    expect(s.status()).toMatchObject({ state: "crash_loop", restarts: 4, pid: null });
    expect(s.status().lastError).toBe("exited with code 3: orchard-runner (crashing test double): simulated fatal error");
    expect(states.filter((st) => st === "crashed")).toHaveLength(4);
    expect(states.at(-1)).toBe("crash_loop");
    // No further attempt happens soon: the next one is a minute away.
    await new Promise((r) => setTimeout(r, 300));
    expect(exits).toHaveLength(5);
    // An operator's restart gives it a fresh chance (and it crashes at once, at the short delay again).
    await s.restart();
    await until("crashed again", () => exits.length === 6);
    expect(exits[5]!.restartInMs).toBe(10);
  });
});

describe("RunnerSupervisor across runtimes (real orchard-runner and real llama runner)", () => {
  it.runIf(existsSync(RUNNER) && existsSync(LLAMA_RUNNER_SCRIPT))(
    "switches from sim to the llama runner on a GGUF and back, starting the right program each time",
    async () => {
      const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-supervisor-llama-"));
      try {
        const gguf = await writeTinyGguf({ file: path.join(dir, "tiny.gguf") });
        const { s } = supervise({ llamaRunner: defaultLlamaRunner(1) });
        s.start();
        await until("sim ready", () => s.status().state === "ready", 20_000);
        expect(s.readyInfo()?.backend).toBe("sim");

        s.setLaunch({ backend: "llamacpp", model: gguf.file, tokenizer: null, profile: null, extraArgs: [] });
        await s.restart();
        await until("llama ready", () => s.status().state === "ready", 60_000);
        expect(s.status()).toMatchObject({ backend: "llamacpp", model: TINY_GGUF_NAME, maxContext: 512 });
        const done = await s.generate({ id: "g1", messages: [{ role: "user", content: "Hello" }], max_new_tokens: 4 }).result;
        expect(done.generated_tokens).toBeGreaterThan(0);
        expect(done.generated_tokens).toBeLessThanOrEqual(4);

        s.setLaunch({ backend: "sim", model: null, tokenizer: null, profile: null, extraArgs: FAST_SIM });
        await s.restart();
        await until("sim ready again", () => s.status().state === "ready", 20_000);
        expect(s.readyInfo()?.backend).toBe("sim");
        await s.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    90_000,
  );
});
