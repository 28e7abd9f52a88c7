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

export class CapabilitiesError extends Error {
  override readonly name = "CapabilitiesError";
}

/** Runs `<runner> [args…] --capabilities` and parses its line. */
export function probeCapabilities(command: string, args: readonly string[] = [], timeoutMs = 10_000): Promise<RunnerCapabilities> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args, "--capabilities"], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const why = stderr.trim().split("\n")[0] ?? "";
        reject(
          new CapabilitiesError(
            `${command} --capabilities failed (${error.message.split("\n")[0]})${why ? `: ${why.slice(0, 300)}` : ""}; an orchard-runner that predates rollouts cannot say what it loads — update it`,
          ),
        );
        return;
      }
      const line = stdout.split("\n").find((l) => l.trim() !== "");
      try {
        resolve(RunnerCapabilities.parse(JSON.parse(line ?? "")));
      } catch (parseError) {
        reject(
          new CapabilitiesError(
            `${command} --capabilities printed no valid capabilities line: ${(parseError as Error).message.slice(0, 300)}`,
          ),
        );
      }
    });
  });
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
