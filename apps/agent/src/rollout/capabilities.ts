/**
 * What the runners can load, from `orchard-runner --capabilities` and
 * `orchard-llama-runner --capabilities` (one JSON line each: the runner's version, and
 * per runtime the runtime versions and model profiles it supports). The device's
 * capabilities are the union of both. Each is asked once and cached: the programs do
 * not change under a running agent. Preflight refuses an artifact whose runtime,
 * runtime version or profile is not listed.
 */
import { execFile } from "node:child_process";
import type { ArtifactManifest } from "@orchard/contracts";
import { z } from "zod";
import { type BackoffOptions, backoffDelay } from "../lib/backoff.js";
import { sleep } from "../lib/clock.js";

const RuntimeSupport = z.object({
  versions: z.array(z.string().min(1).max(64)).max(64),
  profiles: z.array(z.string().min(1).max(64)).max(64),
});

export const RunnerCapabilities = z.object({
  version: z.string().min(1).max(64),
  /** Runtimes this build has; one built without ExecuTorch has no `executorch` entry. */
  runtimes: z.record(z.string(), RuntimeSupport),
});
export type RunnerCapabilities = z.infer<typeof RunnerCapabilities>;

/**
 * Why a probe gave no capabilities. Only `predates` means the runner cannot say what it
 * loads (it refused the flag); `timeout` and `killed` mean it gave no answer (a machine
 * under load), so the capabilities are unknown and asked again later.
 */
export type CapabilitiesFailure = "predates" | "failed" | "invalid" | "timeout" | "killed" | "not_runnable";

export class CapabilitiesError extends Error {
  override readonly name = "CapabilitiesError";
  constructor(
    message: string,
    readonly reason: CapabilitiesFailure = "failed",
  ) {
    super(message);
  }
}

/** A runner starting on a busy 2-core machine or a Pi (Node loading node-llama-cpp) can take many seconds. */
export const CAPABILITIES_TIMEOUT_MS = 30_000;

export interface ProbeRetryOptions {
  /** Tries in all when the runner gives no answer in time (default 3); an answer, even a failure, is not asked again. */
  attempts?: number;
  /** Wait before the second try, doubled for each further one (default 2 s). */
  retryDelayMs?: number;
}

/** Asked with --capabilities, these words on stderr (or usage exit code 2) mean the runner does not know the flag. */
const UNKNOWN_FLAG = /unknown (argument|option|flag)|unrecognized (argument|option)/i;

function probeOnce(command: string, args: readonly string[], timeoutMs: number): Promise<RunnerCapabilities> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      [...args, "--capabilities"],
      // SIGKILL: a runner stuck starting up must not outlive its probe.
      { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const why = stderr.trim().split("\n")[0]?.slice(0, 300) ?? "";
          const e = error as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null; code?: unknown };
          if (typeof e.code === "string") {
            reject(new CapabilitiesError(`cannot run ${command} --capabilities: ${e.code} (${e.message.split("\n")[0]})`, "not_runnable"));
          } else if (e.killed) {
            reject(new CapabilitiesError(`${command} --capabilities gave no answer within ${timeoutMs / 1000} s`, "timeout"));
          } else if (e.signal) {
            reject(new CapabilitiesError(`${command} --capabilities was killed by ${e.signal} before it answered`, "killed"));
          } else if (e.code === 2 || UNKNOWN_FLAG.test(stderr)) {
            reject(
              new CapabilitiesError(
                `${command} --capabilities failed (exit code ${String(e.code)})${why ? `: ${why}` : ""}; an orchard-runner that predates rollouts cannot say what it loads — update it`,
                "predates",
              ),
            );
          } else {
            reject(
              new CapabilitiesError(`${command} --capabilities failed (exit code ${String(e.code)})${why ? `: ${why}` : ""}`, "failed"),
            );
          }
          return;
        }
        const line = stdout.split("\n").find((l) => l.trim() !== "");
        try {
          resolve(RunnerCapabilities.parse(JSON.parse(line ?? "")));
        } catch (parseError) {
          reject(
            new CapabilitiesError(
              `${command} --capabilities printed no valid capabilities line: ${(parseError as Error).message.slice(0, 300)}`,
              "invalid",
            ),
          );
        }
      },
    );
  });
}

/**
 * Runs `<runner> [args…] --capabilities` and parses its line. A run that gives no answer
 * within `timeoutMs` (or is killed) is tried again after a pause, up to `attempts` tries;
 * when none answers the error says "capabilities unknown (probe timed out …)" — never
 * that the runner predates rollouts, which only a runner refusing the flag says.
 */
export async function probeCapabilities(
  command: string,
  args: readonly string[] = [],
  timeoutMs = CAPABILITIES_TIMEOUT_MS,
  retry: ProbeRetryOptions = {},
): Promise<RunnerCapabilities> {
  const attempts = Math.max(1, retry.attempts ?? 3);
  const delayMs = retry.retryDelayMs ?? 2_000;
  let last: CapabilitiesError | null = null;
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (attempt > 0) await sleep(delayMs * 2 ** (attempt - 1));
    try {
      return await probeOnce(command, args, timeoutMs);
    } catch (error) {
      if (!(error instanceof CapabilitiesError) || (error.reason !== "timeout" && error.reason !== "killed")) throw error;
      last = error;
    }
  }
  throw new CapabilitiesError(
    `${command}: capabilities unknown (probe timed out: ${attempts} ${attempts === 1 ? "try" : "tries"} of ${timeoutMs / 1000} s)${last!.reason === "killed" ? `; last: ${last!.message}` : ""}; asked again later`,
    "timeout",
  );
}

/** Asks the runner once; a failure is not cached, so a fixed binary is picked up by the next rollout. */
export class CapabilityCache {
  #value: RunnerCapabilities | null = null;
  #pending: Promise<RunnerCapabilities> | null = null;

  constructor(private readonly probe: () => Promise<RunnerCapabilities>) {}

  get(): Promise<RunnerCapabilities> {
    if (this.#value) return Promise.resolve(this.#value);
    this.#pending ??= this.probe().then(
      (caps) => {
        this.#value = caps;
        this.#pending = null;
        return caps;
      },
      (error: unknown) => {
        this.#pending = null;
        throw error;
      },
    );
    return this.#pending;
  }

  cached(): RunnerCapabilities | null {
    return this.#value;
  }
}

/** One runner program whose capabilities count, e.g. orchard-runner or orchard-llama-runner. */
export interface CapabilitySource {
  name: string;
  probe: () => Promise<RunnerCapabilities>;
}

/**
 * The union of what several runner programs load: their runtimes merged (versions and
 * profiles of a runtime both list united), and a version naming each program, e.g.
 * "orchard-runner 0.3.0, orchard-llama-runner 0.3.0". One part alone keeps its version.
 */
export function mergeCapabilities(parts: readonly { name: string; caps: RunnerCapabilities }[]): RunnerCapabilities {
  if (parts.length === 0) throw new CapabilitiesError("no runner said what it can load");
  if (parts.length === 1) return parts[0]!.caps;
  const runtimes: RunnerCapabilities["runtimes"] = {};
  for (const { caps } of parts) {
    for (const [runtime, support] of Object.entries(caps.runtimes)) {
      const have = runtimes[runtime];
      runtimes[runtime] = have
        ? {
            versions: [...new Set([...have.versions, ...support.versions])].slice(0, 64),
            profiles: [...new Set([...have.profiles, ...support.profiles])].slice(0, 64),
          }
        : { versions: [...support.versions], profiles: [...support.profiles] };
    }
  }
  const version = parts.map((p) => `${p.name} ${p.caps.version}`).join(", ");
  return { version: version.length > 64 ? `${version.slice(0, 63)}…` : version, runtimes };
}

/**
 * The device's capabilities: every source asked (each cached once it answers), and
 * the union of those that answered. A source that fails is logged through `onFailure`
 * and asked again next time, and does not keep the others' runtimes from rollouts
 * (an agent whose llama runner cannot load node-llama-cpp still rolls out ExecuTorch
 * models); it fails only when no source answers.
 */
export class CombinedCapabilities {
  readonly #parts: { name: string; cache: CapabilityCache }[];
  readonly #onFailure: (name: string, error: Error) => void;
  #value: RunnerCapabilities | null = null;

  constructor(sources: readonly CapabilitySource[], onFailure: (name: string, error: Error) => void = () => undefined) {
    this.#parts = sources.map((s) => ({ name: s.name, cache: new CapabilityCache(s.probe) }));
    this.#onFailure = onFailure;
  }

  async get(): Promise<RunnerCapabilities> {
    const settled = await Promise.allSettled(this.#parts.map((p) => p.cache.get()));
    const answered: { name: string; caps: RunnerCapabilities }[] = [];
    const failures: string[] = [];
    settled.forEach((result, i) => {
      const { name } = this.#parts[i]!;
      if (result.status === "fulfilled") answered.push({ name, caps: result.value });
      else {
        const error = result.reason instanceof Error ? result.reason : new Error(String(result.reason));
        failures.push(error.message);
        this.#onFailure(name, error);
      }
    });
    if (answered.length === 0) throw new CapabilitiesError(failures.join("; ") || "no runner said what it can load");
    this.#value = mergeCapabilities(answered);
    return this.#value;
  }

  /** The last union computed, if any. */
  cached(): RunnerCapabilities | null {
    return this.#value;
  }

  /** The sources that have not answered yet (their runtimes are missing from the union). */
  missing(): string[] {
    return this.#parts.filter((p) => p.cache.cached() === null).map((p) => p.name);
  }
}

/** Asking again for runners whose capabilities are unknown: 30 s, 1 min, 2 min … at most every 10 min. */
export const CAPABILITIES_RETRY_BACKOFF: BackoffOptions = { initialMs: 30_000, maxMs: 600_000, factor: 2, jitter: 0.2 };

/**
 * Asks `caps` now and, while a source has not answered (a probe that timed out on a
 * busy machine), again after each backoff delay until every source has; each union
 * computed goes to `onUnion` (so the agent republishes its runtimes). Returns a stop function.
 */
export function askUntilComplete(
  caps: CombinedCapabilities,
  opts: {
    backoff?: BackoffOptions;
    onUnion: (caps: RunnerCapabilities) => void;
    onError?: (error: Error) => void;
    onRetry?: (missing: string[], delayMs: number) => void;
  },
): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let attempt = 0;
  const ask = async () => {
    timer = null;
    try {
      const union = await caps.get();
      if (!stopped) opts.onUnion(union);
    } catch (error) {
      if (!stopped) opts.onError?.(error instanceof Error ? error : new Error(String(error)));
    }
    const missing = caps.missing();
    if (stopped || missing.length === 0) return;
    const delayMs = backoffDelay(attempt++, opts.backoff ?? CAPABILITIES_RETRY_BACKOFF);
    opts.onRetry?.(missing, delayMs);
    timer = setTimeout(() => void ask(), delayMs);
    timer.unref?.();
  };
  void ask();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** How the reasons below name the runners: orchard-runner's plain version, or a merged list of programs. */
function runnersLabel(caps: RunnerCapabilities): { who: string; has: string; loads: string } {
  return /^\d/.test(caps.version)
    ? { who: `orchard-runner ${caps.version}`, has: "has", loads: "loads" }
    : { who: `runners (${caps.version})`, has: "have", loads: "load" };
}

/** Why this device's runners cannot load the manifest's model, or null when they can. */
export function unsupportedReason(
  manifest: Pick<ArtifactManifest, "runtime" | "runtimeVersion" | "profile">,
  caps: RunnerCapabilities,
): string | null {
  const support = caps.runtimes[manifest.runtime];
  const have = Object.keys(caps.runtimes);
  const { who, has, loads } = runnersLabel(caps);
  if (!support) {
    return `this device's ${who} ${has} no ${manifest.runtime} runtime (it has: ${have.join(", ") || "none"})`;
  }
  if (!support.versions.includes(manifest.runtimeVersion)) {
    return `this device's ${who} ${loads} ${manifest.runtime} ${support.versions.join(", ") || "(no version)"}, not ${manifest.runtimeVersion}`;
  }
  if (manifest.profile !== null && !support.profiles.includes(manifest.profile)) {
    const profiles = support.profiles.length > 0 ? support.profiles.join(", ") : "none";
    return `this device's ${who} ${has} no ${manifest.runtime} profile ${manifest.profile} (it has: ${profiles})`;
  }
  return null;
}
