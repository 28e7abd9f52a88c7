import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseCommandLine } from "./cli.js";

let tmp: string;
let runnerBin: string;
let model: string;
let tokenizer: string;
let gguf: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-cli-"));
  runnerBin = path.join(tmp, "orchard-runner");
  await writeFile(runnerBin, "#!/bin/sh\n");
  await chmod(runnerBin, 0o755);
  model = path.join(tmp, "model.pte");
  await writeFile(model, "");
  tokenizer = path.join(tmp, "tokenizer");
  await mkdir(tokenizer);
  gguf = path.join(tmp, "tiny.gguf");
  await writeFile(gguf, "");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const env = { HOME: "/home/pi" };
const opts = { cwd: "/work", repoRunnerPath: "/nonexistent/native/build/orchard-runner" };
const parse = (argv: string[], e: Record<string, string | undefined> = env) => parseCommandLine(argv, e, opts);
const error = (argv: string[], e: Record<string, string | undefined> = env) => {
  try {
    parse(argv, e);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`expected ${argv.join(" ")} to be refused`);
};

describe("orchard-agent command line", () => {
  it("enroll: server URL (trailing slash removed), token, data dir", () => {
    expect(parse(["enroll", "--server", "http://10.0.0.2:3000/", "--token", "abcdefgh12", "--data-dir", "data"])).toEqual({
      name: "enroll",
      log: { level: "info", format: "text" },
      dataDir: "/work/data",
      serverUrl: "http://10.0.0.2:3000",
      token: "abcdefgh12",
      force: false,
      caFile: null,
    });
  });

  it("enroll: clear errors for a missing or bad server and token", () => {
    expect(error(["enroll", "--token", "abcdefgh12"])).toMatch(/--server is required/);
    expect(error(["enroll", "--server", "10.0.0.2:3000", "--token", "abcdefgh12"])).toMatch(/--server must/);
    expect(error(["enroll", "--server", "ftp://x", "--token", "abcdefgh12"])).toMatch(/http:\/\/ or https:\/\//);
    expect(error(["enroll", "--server", "http://u:p@x", "--token", "abcdefgh12"])).toMatch(/credentials/);
    expect(error(["enroll", "--server", "http://x"])).toMatch(/--token is required/);
    expect(error(["enroll", "--server", "http://x", "--token", "short"])).toMatch(/^--token: /);
    expect(error(["enroll", "--server"])).toBe("--server needs a value");
  });

  it("run: defaults (sim runner, 5 s telemetry, data dir under HOME, runner on PATH)", () => {
    expect(parse(["run"])).toEqual({
      name: "run",
      log: { level: "info", format: "text" },
      dataDir: "/home/pi/.local/state/orchard-agent",
      runner: {
        backend: "sim",
        bin: { path: "orchard-runner", source: "PATH" },
        model: null,
        tokenizer: null,
        profile: null,
        extraArgs: [],
        llamaThreads: os.availableParallelism(),
      },
      telemetryIntervalMs: 5_000,
      chatQueueLimit: 4,
      modelsQuotaBytes: null,
    });
  });

  it("run: --models-quota takes binary and decimal sizes or bytes, and refuses anything else", () => {
    expect(parse(["run", "--models-quota", "64MiB"])).toMatchObject({ modelsQuotaBytes: 64 * 1024 * 1024 });
    expect(parse(["run", "--models-quota", "2GiB"])).toMatchObject({ modelsQuotaBytes: 2 * 1024 ** 3 });
    expect(parse(["run", "--models-quota", "1.5G"])).toMatchObject({ modelsQuotaBytes: 1.5 * 1024 ** 3 });
    expect(parse(["run", "--models-quota", "500MB"])).toMatchObject({ modelsQuotaBytes: 500_000_000 });
    expect(parse(["run", "--models-quota", "1048576"])).toMatchObject({ modelsQuotaBytes: 1_048_576 });
    const message = "--models-quota must be a size such as 64MiB, 12GiB or a number of bytes";
    expect(error(["run", "--models-quota", "lots"])).toBe(message);
    expect(error(["run", "--models-quota", "12 parsecs"])).toBe(message);
    expect(error(["run", "--models-quota", "0"])).toBe(message);
    expect(error(["run", "--models-quota=-5MiB"])).toBe(message);
  });

  it("run: the repository's runner build is the default when it exists", () => {
    const cmd = parseCommandLine(["run"], env, { cwd: "/work", repoRunnerPath: runnerBin });
    expect(cmd).toMatchObject({ runner: { bin: { path: runnerBin, source: "repo-build" } } });
  });

  it("run: --runner-bin beats ORCHARD_RUNNER_BIN, and both must exist", () => {
    expect(parse(["run", "--runner-bin", runnerBin], { ...env, ORCHARD_RUNNER_BIN: "/x" })).toMatchObject({
      runner: { bin: { path: runnerBin, source: "flag" } },
    });
    expect(parse(["run"], { ...env, ORCHARD_RUNNER_BIN: runnerBin })).toMatchObject({ runner: { bin: { source: "env" } } });
    expect(error(["run", "--runner-bin", "/nonexistent/orchard-runner"])).toBe("--runner-bin /nonexistent/orchard-runner: no such file");
    expect(error(["run"], { ...env, ORCHARD_RUNNER_BIN: "/nonexistent/r" })).toBe("ORCHARD_RUNNER_BIN /nonexistent/r: no such file");
  });

  it("run: executorch needs --model and --tokenizer; sim refuses them", () => {
    expect(parse(["run", "--runner", "executorch", "--model", model, "--tokenizer", tokenizer])).toMatchObject({
      runner: { backend: "executorch", model, tokenizer },
    });
    // Without a model the runner waits for a rollout to activate one.
    expect(parse(["run", "--runner", "executorch"])).toMatchObject({ runner: { backend: "executorch", model: null, tokenizer: null } });
    expect(error(["run", "--runner", "executorch", "--model", model])).toBe("--runner executorch --model needs --tokenizer DIR too");
    expect(error(["run", "--runner", "executorch", "--tokenizer", tokenizer])).toBe("--tokenizer needs --model PATH (the .pte file) too");
    expect(error(["run", "--model", model])).toBe("--model only applies to --runner executorch or llamacpp");
    expect(error(["run", "--runner", "executorch", "--model", "/nope.pte", "--tokenizer", tokenizer])).toBe(
      "--model /nope.pte: no such file",
    );
    expect(error(["run", "--runner", "executorch", "--model", model, "--tokenizer", model])).toMatch(/is not a directory/);
    expect(error(["run", "--runner", "llama"])).toBe("--runner must be one of sim, executorch, llamacpp");
    expect(
      parse(["run", "--runner", "executorch", "--model", model, "--tokenizer", tokenizer, "--profile", "gemma4-extcache"]),
    ).toMatchObject({
      runner: { profile: "gemma4-extcache" },
    });
    expect(parse(["run", "--runner", "executorch"])).toMatchObject({ runner: { profile: null } });
    expect(error(["run", "--runner", "executorch", "--profile", "gemma4-extcache"])).toBe(
      "--profile needs --model PATH (the .pte file) too",
    );
    expect(error(["run", "--profile", "gemma4-extcache"])).toBe("--profile only applies to --runner executorch");
    expect(error(["run", "--runner", "llamacpp", "--profile", "x"])).toBe("--profile only applies to --runner executorch");
    expect(error(["run", "--runner", "executorch", "--model", model, "--tokenizer", tokenizer, "--profile", "Bad Name"])).toMatch(
      /--profile takes a profile name/,
    );
  });

  it("run: llamacpp takes an optional .gguf (no tokenizer) and an explicit thread count", () => {
    expect(parse(["run", "--runner", "llamacpp", "--model", gguf, "--llama-threads", "1"])).toMatchObject({
      runner: { backend: "llamacpp", model: gguf, tokenizer: null, llamaThreads: 1 },
    });
    // Without a model the llama runner waits for a rollout to activate a .gguf.
    expect(parse(["run", "--runner", "llamacpp"])).toMatchObject({
      runner: { backend: "llamacpp", model: null, llamaThreads: os.availableParallelism() },
    });
    expect(error(["run", "--runner", "llamacpp", "--model", model])).toBe("--runner llamacpp --model takes a .gguf file");
    expect(error(["run", "--runner", "llamacpp", "--model", gguf, "--tokenizer", tokenizer])).toMatch(
      /--tokenizer does not apply to --runner llamacpp/,
    );
    expect(error(["run", "--runner", "llamacpp", "--model", "/nope.gguf"])).toBe("--model /nope.gguf: no such file");
    expect(error(["run", "--llama-threads", "0"])).toBe("--llama-threads must be between 1 and 256");
    expect(error(["run", "--llama-threads", "four"])).toMatch(/whole number of threads/);
  });

  it("run: telemetry interval in seconds, bounded", () => {
    expect(parse(["run", "--telemetry-interval", "0.5"])).toMatchObject({ telemetryIntervalMs: 500 });
    expect(parse(["run", "--telemetry-interval=30"])).toMatchObject({ telemetryIntervalMs: 30_000 });
    expect(error(["run", "--telemetry-interval", "fast"])).toMatch(/number of seconds/);
    expect(error(["run", "--telemetry-interval", "0"])).toMatch(/between 0.2 and 3600/);
    expect(error(["run", "--telemetry-interval", "99999"])).toMatch(/between 0.2 and 3600/);
  });

  it("run: --chat-queue, a whole number from 1 to 64", () => {
    expect(parse(["run", "--chat-queue", "1"])).toMatchObject({ chatQueueLimit: 1 });
    expect(parse(["run", "--chat-queue=64"])).toMatchObject({ chatQueueLimit: 64 });
    expect(error(["run", "--chat-queue", "0"])).toBe("--chat-queue must be between 1 and 64");
    expect(error(["run", "--chat-queue", "65"])).toBe("--chat-queue must be between 1 and 64");
    expect(error(["run", "--chat-queue", "2.5"])).toBe("--chat-queue must be a whole number of chats, e.g. 4");
    expect(error(["run", "--chat-queue", "many"])).toBe("--chat-queue must be a whole number of chats, e.g. 4");
    expect(error(["run", "--chat-queue"])).toBe("--chat-queue needs a value");
  });

  it("run: extra runner flags pass through verbatim", () => {
    expect(parse(["run", "--runner-arg=--sim-decode-tok-s=50", "--runner-arg=--sim-load-ms=10"])).toMatchObject({
      runner: { extraArgs: ["--sim-decode-tok-s=50", "--sim-load-ms=10"] },
    });
    expect(error(["run", "--runner-arg=fast"])).toMatch(/one flag for orchard-runner/);
  });

  it("status: --json", () => {
    expect(parse(["status", "--json", "--data-dir", "/var/lib/orchard-agent"])).toMatchObject({
      name: "status",
      json: true,
      dataDir: "/var/lib/orchard-agent",
    });
  });

  it("data dir: flag, then ORCHARD_AGENT_DATA_DIR, then XDG_STATE_HOME, then HOME; empty values are unset", () => {
    expect(parse(["status"], { ...env, ORCHARD_AGENT_DATA_DIR: "/srv/agent" })).toMatchObject({ dataDir: "/srv/agent" });
    expect(parse(["status"], { ...env, XDG_STATE_HOME: "/state" })).toMatchObject({ dataDir: "/state/orchard-agent" });
    expect(parse(["status"], { ...env, ORCHARD_AGENT_DATA_DIR: "" })).toMatchObject({ dataDir: "/home/pi/.local/state/orchard-agent" });
    expect(error(["status"], {})).toMatch(/no --data-dir given/);
    expect(error(["status", "--data-dir="])).toBe("--data-dir must not be empty");
  });

  it("logging: flags beat the environment; bad values are named", () => {
    expect(parse(["status", "--log-level", "debug"], { ...env, ORCHARD_LOG_LEVEL: "error", ORCHARD_LOG_FORMAT: "json" })).toMatchObject({
      log: { level: "debug", format: "json" },
    });
    expect(error(["status", "--log-level", "loud"])).toBe("--log-level must be one of debug, info, warn, error");
    expect(error(["status"], { ...env, ORCHARD_LOG_FORMAT: "xml" })).toBe("ORCHARD_LOG_FORMAT must be one of text, json");
  });

  it("unknown commands, flags and arguments are refused by name", () => {
    expect(error(["start"])).toMatch(/unknown command "start"/);
    expect(error(["run", "--verbose"])).toMatch(/unknown flag --verbose for "orchard-agent run"/);
    expect(error(["status", "--server", "http://x"])).toMatch(/unknown flag --server for "orchard-agent status"/);
    expect(error(["run", "now"])).toMatch(/unexpected argument "now"/);
  });

  it("help and version", () => {
    expect(parse([]).name).toBe("help");
    expect(parse(["run", "--help"]).name).toBe("help");
    expect(parse(["--version"]).name).toBe("version");
  });
});
