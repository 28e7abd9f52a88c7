/**
 * The agent's configuration: command-line flags and environment, validated once
 * with zod at start. Nothing else in the agent reads argv or process.env; a bad
 * flag ends here with a message that says which flag and what it accepts.
 */
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { CHAT_DEFAULT_QUEUE_LIMIT, EnrollRequest, RunnerBackend } from "@orchard/contracts";
import { z } from "zod";
import { parseByteSize } from "../lib/byte-size.js";
import { AGENT_PACKAGE_DIR } from "../lib/package-dir.js";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "../lib/logger.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export interface LogConfig {
  level: LogLevel;
  format: LogFormat;
}

export interface RunnerBinary {
  path: string;
  /** Where the path came from, for the log line that says which runner is used. */
  source: "flag" | "env" | "repo-build" | "PATH";
}

export interface RunnerConfig {
  backend: RunnerBackend;
  bin: RunnerBinary;
  model: string | null;
  tokenizer: string | null;
  /** `--profile` for an executorch --model (null: the runner's default, gemma4-e2b-extcache). */
  profile: string | null;
  /** Passed to orchard-runner verbatim after the agent's own flags (e.g. --sim-decode-tok-s=50). */
  extraArgs: string[];
  /** `--threads` for the llama.cpp runner (`--llama-threads`, default: os.availableParallelism()). */
  llamaThreads: number;
}

export type Command =
  | { name: "help"; text: string }
  | { name: "version" }
  | { name: "enroll"; log: LogConfig; dataDir: string; serverUrl: string; token: string; force: boolean; caFile: string | null }
  | {
      name: "run";
      log: LogConfig;
      dataDir: string;
      runner: RunnerConfig;
      telemetryIntervalMs: number;
      chatQueueLimit: number;
      /** Most bytes models may occupy under the data dir (`--models-quota`); null = only the disk limits them. */
      modelsQuotaBytes: number | null;
    }
  | { name: "status"; log: LogConfig; dataDir: string; json: boolean };

export type RunCommand = Extract<Command, { name: "run" }>;
export type EnrollCommand = Extract<Command, { name: "enroll" }>;
export type StatusCommand = Extract<Command, { name: "status" }>;

export const USAGE = `Usage: orchard-agent <command> [flags]

Commands:
  enroll --server URL --token T [--force] [--ca FILE]
                                            register this device with an Orchard server
  run [--runner sim|executorch|llamacpp] …  connect, report telemetry, supervise the runner
  status [--json]                           show what the agent on this data dir is doing

Flags for every command:
  --data-dir DIR          where agent.json and state.json live
                          (default: $ORCHARD_AGENT_DATA_DIR, else $XDG_STATE_HOME/orchard-agent,
                          else ~/.local/state/orchard-agent)
  --log-level LEVEL       debug | info | warn | error (default: $ORCHARD_LOG_LEVEL or info)
  --log-format FORMAT     text | json (default: $ORCHARD_LOG_FORMAT or text)
  -h, --help              this text
  --version               print the agent version

enroll:
  --ca FILE               a CA certificate (PEM) to trust besides the system's, for an https:// server
                          and an mqtts:// broker signed by your own CA (e.g. ca.crt from
                          infra/tls/make-lab-ca.sh); copied into the data dir and used by run

run:
  --runner BACKEND        sim (default) | executorch | llamacpp (llama.cpp on a .gguf, through
                          node apps/agent/bin/orchard-llama-runner.mjs)
  --runner-bin PATH       the orchard-runner binary (default: $ORCHARD_RUNNER_BIN, else
                          native/build/orchard-runner of this checkout, else orchard-runner on PATH)
  --model PATH            the .pte (executorch) or .gguf (llamacpp) to load (a model activated by a rollout
                          takes precedence: see models/current.json in the data dir)
  --tokenizer DIR         the tokenizer directory (executorch only, with --model); without
                          --model, executorch runs nothing until a rollout activates a model
                          (llamacpp: --model FILE.gguf alone, the tokenizer is inside the .gguf)
  --profile NAME          the I/O layout of an executorch --model (orchard-runner --capabilities lists them;
                          default gemma4-e2b-extcache); a rolled-out model brings its own
  --llama-threads N       threads the llama.cpp runner computes with (1-256, default: the CPUs
                          available, ${os.availableParallelism()} here); more than the cores slows it right down
  --runner-arg=FLAG       one more flag for the --runner backend's program, repeatable
                          (e.g. --runner-arg=--sim-decode-tok-s=50)
  --telemetry-interval S  seconds between telemetry samples (default 5)
  --chat-queue N          chats held at once, the running one included (1-64, default ${CHAT_DEFAULT_QUEUE_LIMIT});
                          more are refused as busy
  --models-quota SIZE     most disk the rolled-out models may use under the data dir, e.g. 64MiB,
                          12GiB or a number of bytes (default: no limit but the disk's free space);
                          a rollout that does not fit is refused before downloading (disk_full)

status:
  --json                  machine-readable output
`;

const COMMON_OPTIONS = {
  "data-dir": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const COMMAND_OPTIONS = {
  enroll: { ...COMMON_OPTIONS, server: { type: "string" }, token: { type: "string" }, force: { type: "boolean" }, ca: { type: "string" } },
  run: {
    ...COMMON_OPTIONS,
    runner: { type: "string" },
    "runner-bin": { type: "string" },
    model: { type: "string" },
    tokenizer: { type: "string" },
    profile: { type: "string" },
    "runner-arg": { type: "string", multiple: true },
    "llama-threads": { type: "string" },
    "telemetry-interval": { type: "string" },
    "chat-queue": { type: "string" },
    "models-quota": { type: "string" },
  },
  status: { ...COMMON_OPTIONS, json: { type: "boolean" } },
} as const;

type CommandName = keyof typeof COMMAND_OPTIONS;

/** Environment the agent reads; empty values count as unset. */
const Env = z.object({
  ORCHARD_AGENT_DATA_DIR: z.string().optional(),
  ORCHARD_RUNNER_BIN: z.string().optional(),
  ORCHARD_LOG_LEVEL: z.enum(LOG_LEVELS, { error: `ORCHARD_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}` }).optional(),
  ORCHARD_LOG_FORMAT: z.enum(LOG_FORMATS, { error: `ORCHARD_LOG_FORMAT must be one of ${LOG_FORMATS.join(", ")}` }).optional(),
  XDG_STATE_HOME: z.string().optional(),
  HOME: z.string().optional(),
});
type Env = z.infer<typeof Env>;

const LogFlags = z.object({
  "log-level": z.enum(LOG_LEVELS, { error: `--log-level must be one of ${LOG_LEVELS.join(", ")}` }).optional(),
  "log-format": z.enum(LOG_FORMATS, { error: `--log-format must be one of ${LOG_FORMATS.join(", ")}` }).optional(),
});

const ServerUrl = z
  .string({ error: "--server is required (the URL of the Orchard server, e.g. http://10.0.0.2:3000)" })
  .refine((v) => URL.canParse(v), { error: "--server must be a URL such as http://10.0.0.2:3000" })
  .transform((v) => new URL(v))
  .refine((u) => u.protocol === "http:" || u.protocol === "https:", { error: "--server must start with http:// or https://" })
  .refine((u) => u.username === "" && u.password === "", { error: "--server must not contain credentials" })
  .refine((u) => u.search === "" && u.hash === "", { error: "--server must not contain a query or fragment" })
  .transform((u) => u.toString().replace(/\/+$/, ""));

const EnrollFlags = LogFlags.extend({
  server: ServerUrl,
  // The bounds are the server's: reuse the contract rather than restating them.
  token: z.string({ error: "--token is required (the enrollment token shown in the dashboard)" }).pipe(EnrollRequest.shape.token),
  force: z.boolean().optional(),
  ca: z.string().min(1, { error: "--ca must name a file" }).optional(),
});

const TelemetryInterval = z
  .string()
  .regex(/^\d+(\.\d+)?$/, { error: "--telemetry-interval must be a number of seconds, e.g. 5" })
  .transform(Number)
  .refine((s) => s >= 0.2 && s <= 3600, { error: "--telemetry-interval must be between 0.2 and 3600 seconds" });

export const CHAT_QUEUE_MAX = 64;

const ChatQueueLimit = z
  .string()
  .regex(/^\d+$/, { error: `--chat-queue must be a whole number of chats, e.g. ${CHAT_DEFAULT_QUEUE_LIMIT}` })
  .transform(Number)
  .refine((n) => n >= 1 && n <= CHAT_QUEUE_MAX, { error: `--chat-queue must be between 1 and ${CHAT_QUEUE_MAX}` });

const ModelsQuota = z.string().transform((v, ctx) => {
  const bytes = parseByteSize(v);
  if (bytes === null || bytes <= 0) {
    ctx.addIssue({ code: "custom", message: "--models-quota must be a size such as 64MiB, 12GiB or a number of bytes" });
    return z.NEVER;
  }
  return bytes;
});

const LlamaThreads = z
  .string()
  .regex(/^\d+$/, { error: "--llama-threads must be a whole number of threads, e.g. 4" })
  .transform(Number)
  .refine((n) => n >= 1 && n <= 256, { error: "--llama-threads must be between 1 and 256" });

const RunFlags = LogFlags.extend({
  runner: z.enum(RunnerBackend.options, { error: `--runner must be one of ${RunnerBackend.options.join(", ")}` }).default("sim"),
  "runner-bin": z.string().min(1).optional(),
  model: z.string().min(1).optional(),
  tokenizer: z.string().min(1).optional(),
  profile: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, { error: "--profile takes a profile name such as gemma4-extcache" })
    .optional(),
  "runner-arg": z
    .array(z.string().regex(/^-/, { error: "--runner-arg takes one flag for orchard-runner, e.g. --runner-arg=--sim-decode-tok-s=50" }))
    .optional(),
  "llama-threads": LlamaThreads.optional(),
  "telemetry-interval": TelemetryInterval.optional(),
  "chat-queue": ChatQueueLimit.optional(),
  "models-quota": ModelsQuota.optional(),
}).superRefine((flags, ctx) => {
  if (flags.runner !== "executorch" && flags.profile !== undefined) {
    ctx.addIssue({ code: "custom", message: "--profile only applies to --runner executorch" });
  }
  if (flags.runner === "llamacpp") {
    // Without --model, the runner waits for a rollout to activate a .gguf.
    if (flags.model !== undefined && !flags.model.toLowerCase().endsWith(".gguf")) {
      ctx.addIssue({ code: "custom", message: "--runner llamacpp --model takes a .gguf file" });
    }
    if (flags.tokenizer !== undefined) {
      ctx.addIssue({ code: "custom", message: "--tokenizer does not apply to --runner llamacpp (a .gguf holds its tokenizer)" });
    }
    return;
  }
  if (flags.runner === "executorch") {
    // Without both, the runner waits for a rollout to activate a model.
    if (flags.model !== undefined && flags.tokenizer === undefined) {
      ctx.addIssue({ code: "custom", message: "--runner executorch --model needs --tokenizer DIR too" });
    }
    if (flags.tokenizer !== undefined && flags.model === undefined) {
      ctx.addIssue({ code: "custom", message: "--tokenizer needs --model PATH (the .pte file) too" });
    }
    if (flags.profile !== undefined && flags.model === undefined) {
      ctx.addIssue({ code: "custom", message: "--profile needs --model PATH (the .pte file) too" });
    }
  } else {
    if (flags.model !== undefined) ctx.addIssue({ code: "custom", message: "--model only applies to --runner executorch or llamacpp" });
    if (flags.tokenizer !== undefined) ctx.addIssue({ code: "custom", message: "--tokenizer only applies to --runner executorch" });
  }
});

const StatusFlags = LogFlags.extend({ json: z.boolean().optional() });

export interface ParseOptions {
  /** Where the repository's runner build is looked for (tests point it elsewhere). */
  repoRunnerPath?: string;
  cwd?: string;
}

/** The runner this checkout builds: <repo>/native/build/orchard-runner, relative to apps/agent. */
export const REPO_RUNNER_PATH = path.join(AGENT_PACKAGE_DIR, "../../native/build/orchard-runner");

/** Zod's messages, each prefixed with the flag it is about unless it already names one. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const key = issue.path[0];
      if (typeof key !== "string" || issue.message.includes("--") || /^[A-Z_]+$/.test(key)) return issue.message;
      return `--${key}: ${issue.message}`;
    })
    .join("; ");
}

function parseWith<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ConfigError(describeIssues(result.error));
  return result.data;
}

function emptyToUndefined(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) out[k] = v === "" ? undefined : v;
  return out;
}

function defaultDataDir(env: Env): string {
  if (env.ORCHARD_AGENT_DATA_DIR !== undefined) return env.ORCHARD_AGENT_DATA_DIR;
  if (env.XDG_STATE_HOME !== undefined) return path.join(env.XDG_STATE_HOME, "orchard-agent");
  if (env.HOME !== undefined) return path.join(env.HOME, ".local", "state", "orchard-agent");
  throw new ConfigError("no --data-dir given and neither ORCHARD_AGENT_DATA_DIR nor HOME is set");
}

function requireFile(p: string, what: string, kind: "file" | "dir"): string {
  if (!existsSync(p)) throw new ConfigError(`${what} ${p}: no such ${kind === "file" ? "file" : "directory"}`);
  const isDir = statSync(p).isDirectory();
  if (kind === "file" && isDir) throw new ConfigError(`${what} ${p}: is a directory, expected a file`);
  if (kind === "dir" && !isDir) throw new ConfigError(`${what} ${p}: is not a directory`);
  return p;
}

function resolveRunnerBinary(flag: string | undefined, env: Env, cwd: string, repoRunnerPath: string): RunnerBinary {
  if (flag !== undefined) return { path: requireFile(path.resolve(cwd, flag), "--runner-bin", "file"), source: "flag" };
  if (env.ORCHARD_RUNNER_BIN !== undefined) {
    return { path: requireFile(path.resolve(cwd, env.ORCHARD_RUNNER_BIN), "ORCHARD_RUNNER_BIN", "file"), source: "env" };
  }
  if (existsSync(repoRunnerPath)) return { path: repoRunnerPath, source: "repo-build" };
  return { path: "orchard-runner", source: "PATH" };
}

function describeParseArgsError(error: unknown, command: string): ConfigError {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /Unknown option '([^']+)'/.exec(message);
  if (unknown) return new ConfigError(`unknown flag ${unknown[1]} for "orchard-agent ${command}" (see orchard-agent --help)`);
  const missing = /Option '(-\w, )?(--[\w-]+)[^']*' argument missing/.exec(message);
  if (missing) return new ConfigError(`${missing[2]} needs a value`);
  const unexpected = /Unexpected argument '([^']+)'/.exec(message);
  if (unexpected) return new ConfigError(`unexpected argument "${unexpected[1]}" for "orchard-agent ${command}"`);
  return new ConfigError(message);
}

/** Turns argv (without node and the script) and the environment into one validated command. */
export function parseCommandLine(argv: readonly string[], rawEnv: Record<string, string | undefined>, options: ParseOptions = {}): Command {
  const cwd = options.cwd ?? process.cwd();
  const [first, ...rest] = argv;
  if (first === undefined || first === "help" || first === "--help" || first === "-h") return { name: "help", text: USAGE };
  if (first === "--version" || first === "version") return { name: "version" };
  if (!(first in COMMAND_OPTIONS)) {
    throw new ConfigError(`unknown command "${first}": expected enroll, run or status (see orchard-agent --help)`);
  }
  const name = first as CommandName;

  // zod validates every value below; parseArgs only splits argv into flags.
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: [...rest], options: COMMAND_OPTIONS[name], strict: true, allowPositionals: false }).values as Record<
      string,
      unknown
    >;
  } catch (error) {
    throw describeParseArgsError(error, name);
  }
  if (values.help === true) return { name: "help", text: USAGE };

  const env = parseWith(Env, emptyToUndefined(rawEnv));
  const logFlags = parseWith(LogFlags, values);
  const log: LogConfig = {
    level: logFlags["log-level"] ?? env.ORCHARD_LOG_LEVEL ?? "info",
    format: logFlags["log-format"] ?? env.ORCHARD_LOG_FORMAT ?? "text",
  };
  const dataDirFlag = values["data-dir"];
  if (dataDirFlag === "") throw new ConfigError("--data-dir must not be empty");
  const dataDir = path.resolve(cwd, typeof dataDirFlag === "string" ? dataDirFlag : defaultDataDir(env));

  switch (name) {
    case "enroll": {
      const flags = parseWith(EnrollFlags, values);
      return {
        name,
        log,
        dataDir,
        serverUrl: flags.server,
        token: flags.token,
        force: flags.force ?? false,
        caFile: flags.ca === undefined ? null : requireFile(path.resolve(cwd, flags.ca), "--ca", "file"),
      };
    }
    case "run": {
      const flags = parseWith(RunFlags, values);
      const runner: RunnerConfig = {
        backend: flags.runner,
        bin: resolveRunnerBinary(flags["runner-bin"], env, cwd, options.repoRunnerPath ?? REPO_RUNNER_PATH),
        model: flags.model === undefined ? null : requireFile(path.resolve(cwd, flags.model), "--model", "file"),
        tokenizer: flags.tokenizer === undefined ? null : requireFile(path.resolve(cwd, flags.tokenizer), "--tokenizer", "dir"),
        profile: flags.profile ?? null,
        extraArgs: flags["runner-arg"] ?? [],
        llamaThreads: flags["llama-threads"] ?? os.availableParallelism(),
      };
      const seconds = flags["telemetry-interval"] ?? 5;
      return {
        name,
        log,
        dataDir,
        runner,
        telemetryIntervalMs: Math.round(seconds * 1000),
        chatQueueLimit: flags["chat-queue"] ?? CHAT_DEFAULT_QUEUE_LIMIT,
        modelsQuotaBytes: flags["models-quota"] ?? null,
      };
    }
    case "status": {
      const flags = parseWith(StatusFlags, values);
      return { name, log, dataDir, json: flags.json ?? false };
    }
  }
}
