/**
 * What the runner binary can load, from `orchard-runner --capabilities` (one JSON
 * line: its version, and per runtime the runtime versions and model profiles it
 * supports). Asked once and cached: the binary does not change under a running agent.
 * Preflight refuses an artifact whose runtime, runtime version or profile is not listed.
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

/** Runs `<runner> --capabilities` and parses its line. */
export function probeCapabilities(command: string, timeoutMs = 10_000): Promise<RunnerCapabilities> {
  return new Promise((resolve, reject) => {
    execFile(command, ["--capabilities"], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (error, stdout, stderr) => {
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

/** Why this runner cannot load the manifest's model, or null when it can. */
export function unsupportedReason(
  manifest: Pick<ArtifactManifest, "runtime" | "runtimeVersion" | "profile">,
  caps: RunnerCapabilities,
): string | null {
  const support = caps.runtimes[manifest.runtime];
  const have = Object.keys(caps.runtimes);
  if (!support) {
    return `this device's orchard-runner ${caps.version} has no ${manifest.runtime} runtime (it has: ${have.join(", ") || "none"})`;
  }
  if (!support.versions.includes(manifest.runtimeVersion)) {
    return `this device's orchard-runner ${caps.version} loads ${manifest.runtime} ${support.versions.join(", ") || "(no version)"}, not ${manifest.runtimeVersion}`;
  }
  if (manifest.profile !== null && !support.profiles.includes(manifest.profile)) {
    const profiles = support.profiles.length > 0 ? support.profiles.join(", ") : "none";
    return `this device's orchard-runner ${caps.version} has no ${manifest.runtime} profile ${manifest.profile} (it has: ${profiles})`;
  }
  return null;
}
