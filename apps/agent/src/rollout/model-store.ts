/**
 * Models on the device's disk, and the `current` pointer that says which one the
 * runner loads.
 *
 *   ${dataDir}/models/<artifactId>/<file name>          a staged model (content-addressed by artifact)
 *   ${dataDir}/models/<artifactId>/.partial/<sha256>    a download in progress
 *   ${dataDir}/models/current.json                      {active, previous}: artifact id + signed manifest each
 *
 * current.json is written atomically (lib/atomic-fs.ts), so after a power cut it is
 * either the old or the new pointer, never a torn one. `active: null` means "no
 * rolled-out model": the runner then runs what the command line says (--runner,
 * --model, --tokenizer). Only the active and the previous model are kept; older ones
 * are deleted when room is needed and after a rollout ends.
 */
import { constants } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, stat, statfs } from "node:fs/promises";
import path from "node:path";
import { type ActiveModel, ArtifactFileName, ArtifactId, type ArtifactManifest, SignedManifest } from "@orchard/contracts";
import { z } from "zod";
import type { RunnerConfig } from "../config/cli.js";
import { fsyncDir, writeFileAtomic } from "../lib/atomic-fs.js";
import type { Logger } from "../lib/logger.js";
import { backendForRuntime } from "../runner/programs.js";
import type { RunnerLaunch } from "../runner/supervisor.js";

export const ModelEntry = z.object({ artifactId: ArtifactId, signed: SignedManifest });
export type ModelEntry = z.infer<typeof ModelEntry>;

export const CurrentModels = z.object({
  version: z.literal(1),
  active: ModelEntry.nullable(),
  previous: ModelEntry.nullable(),
  updatedAt: z.number().int().nonnegative(),
});
export type CurrentModels = z.infer<typeof CurrentModels>;

export const NO_MODELS: CurrentModels = { version: 1, active: null, previous: null, updatedAt: 0 };

const PARTIAL_DIR = ".partial";
const CURRENT_FILE = "current.json";

export class UnsafeFileNameError extends Error {
  override readonly name = "UnsafeFileNameError";
}

/** The ActiveModel a device reports (status) for a model entry. */
export function describeModel(entry: ModelEntry): ActiveModel {
  const { manifest } = entry.signed;
  const model = manifest.files.find((f) => f.role === "model");
  return {
    name: manifest.name.slice(0, 256),
    sha256: model?.sha256 ?? null,
    artifactId: entry.artifactId,
    version: manifest.version.slice(0, 64),
    runtime: manifest.runtime,
  };
}

export interface ModelStoreOptions {
  dataDir: string;
  /** Most bytes the models folder may occupy (`--models-quota`); null = only the disk limits it. */
  quotaBytes: number | null;
  logger: Logger;
}

export class ModelStore {
  readonly dir: string;
  readonly currentFile: string;
  readonly quotaBytes: number | null;
  readonly #log: Logger;

  constructor(options: ModelStoreOptions) {
    this.dir = path.join(path.resolve(options.dataDir), "models");
    this.currentFile = path.join(this.dir, CURRENT_FILE);
    this.quotaBytes = options.quotaBytes;
    this.#log = options.logger.child({ component: "models" });
  }

  // ---------------------------------------------------------------- paths

  artifactDir(artifactId: string): string {
    // An artifact id is 64 hex digits (validated), so it is one safe path segment.
    return path.join(this.dir, ArtifactId.parse(artifactId));
  }

  /** Where a file of an artifact lives once staged; refuses a name that could leave the artifact's folder. */
  filePath(artifactId: string, name: string): string {
    if (!ArtifactFileName.safeParse(name).success) throw new UnsafeFileNameError(`unsafe file name ${JSON.stringify(name).slice(0, 140)}`);
    const dir = this.artifactDir(artifactId);
    const file = path.resolve(dir, name);
    if (path.dirname(file) !== dir) throw new UnsafeFileNameError(`file name ${JSON.stringify(name)} leaves the artifact's folder`);
    return file;
  }

  partialDir(artifactId: string): string {
    return path.join(this.artifactDir(artifactId), PARTIAL_DIR);
  }

  partialPath(artifactId: string, sha256: string): string {
    return path.join(
      this.partialDir(artifactId),
      z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .parse(sha256),
    );
  }

  // ---------------------------------------------------------------- the pointer

  /** current.json; a missing file is "no rolled-out model", an unreadable one is logged and treated the same. */
  async readCurrent(): Promise<CurrentModels> {
    let text: string;
    try {
      text = await readFile(this.currentFile, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return NO_MODELS;
      throw error;
    }
    try {
      return CurrentModels.parse(JSON.parse(text));
    } catch (error) {
      this.#log.error("models/current.json is not valid; running the command line's model", { file: this.currentFile, error });
      return NO_MODELS;
    }
  }

  async writeCurrent(current: CurrentModels): Promise<void> {
    await this.ensureDir();
    await writeFileAtomic(this.currentFile, `${JSON.stringify(CurrentModels.parse(current))}\n`, { mode: 0o644 });
  }

  async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
  }

  // ---------------------------------------------------------------- what is on disk

  /** True when every file of the entry is in its folder with its manifest size. */
  async isInstalled(entry: ModelEntry): Promise<boolean> {
    for (const file of entry.signed.manifest.files) {
      const size = await fileSize(this.filePath(entry.artifactId, file.name));
      if (size !== file.size) return false;
    }
    return true;
  }

  /** Bytes of the artifact already on disk: staged files of the right size, plus partial downloads (up to their size). */
  async presentBytes(artifactId: string, manifest: Pick<ArtifactManifest, "files">): Promise<number> {
    let bytes = 0;
    for (const file of manifest.files) {
      const staged = await fileSize(this.filePath(artifactId, file.name));
      if (staged === file.size) {
        bytes += file.size;
        continue;
      }
      const partial = await fileSize(this.partialPath(artifactId, file.sha256));
      bytes += Math.min(partial ?? 0, file.size);
    }
    return bytes;
  }

  /** Bytes every file under models/ occupies (apparent sizes). */
  async usedBytes(): Promise<number> {
    return treeBytes(this.dir);
  }

  /** Room for more model bytes: the filesystem's free space, and what the quota leaves. */
  async freeBytes(): Promise<{ free: number; diskFree: number; quotaLeft: number | null }> {
    await this.ensureDir();
    const s = await statfs(this.dir);
    const diskFree = s.bavail * s.bsize;
    const quotaLeft = this.quotaBytes === null ? null : Math.max(0, this.quotaBytes - (await this.usedBytes()));
    return { free: quotaLeft === null ? diskFree : Math.min(diskFree, quotaLeft), diskFree, quotaLeft };
  }

  /** Artifact folders on disk. */
  async artifactIds(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => ArtifactId.safeParse(n).success);
  }

  /** Deletes every artifact folder not in `keep`; returns the bytes freed. */
  async prune(keep: ReadonlySet<string>): Promise<number> {
    let freed = 0;
    for (const id of await this.artifactIds()) {
      if (keep.has(id)) continue;
      const dir = this.artifactDir(id);
      const bytes = await treeBytes(dir);
      await rm(dir, { recursive: true, force: true });
      freed += bytes;
      this.#log.info("deleted a model no longer kept", { artifactId: id, bytes });
    }
    if (freed > 0) await fsyncDir(this.dir).catch(() => undefined);
    return freed;
  }

  async removeArtifact(artifactId: string): Promise<void> {
    await rm(this.artifactDir(artifactId), { recursive: true, force: true });
  }

  async removePartials(artifactId: string): Promise<void> {
    await rm(this.partialDir(artifactId), { recursive: true, force: true });
  }

  /** Makes a finished download durable and moves it to its name in the artifact's folder (idempotent). */
  async stageFile(artifactId: string, file: { name: string; sha256: string; size: number }): Promise<void> {
    const target = this.filePath(artifactId, file.name);
    const partial = this.partialPath(artifactId, file.sha256);
    if ((await fileSize(partial)) === null) {
      if ((await fileSize(target)) === file.size) return; // staged before a crash
      throw new Error(`${file.name}: neither the download (${partial}) nor the staged file is there`);
    }
    const handle = await open(partial, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(partial, target);
    await fsyncDir(path.dirname(target));
  }

  // ---------------------------------------------------------------- the runner

  /**
   * The runner's launch for an entry (null: the command line's model). A rolled-out
   * model takes precedence over --model/--tokenizer and picks the backend of its
   * runtime (a `llama.cpp` artifact runs on `llamacpp` whatever --runner says), so a
   * rollout can switch a device between runtimes; --runner-arg flags are passed when
   * the model's backend is the --runner backend they were written for.
   */
  launchFor(entry: ModelEntry | null, cli: RunnerConfig): RunnerLaunch {
    if (!entry) return { backend: cli.backend, model: cli.model, tokenizer: cli.tokenizer, profile: cli.profile, extraArgs: cli.extraArgs };
    const { manifest } = entry.signed;
    const model = manifest.files.find((f) => f.role === "model");
    if (!model) throw new Error(`artifact ${entry.artifactId} has no model file`);
    const executorch = manifest.runtime === "executorch";
    const backend = backendForRuntime(manifest.runtime);
    return {
      backend,
      model: this.filePath(entry.artifactId, model.name),
      // The runner reads the tokenizer from a directory: the artifact's folder holds its tokenizer files.
      tokenizer: executorch ? this.artifactDir(entry.artifactId) : null,
      profile: executorch ? manifest.profile : null,
      extraArgs: backend === cli.backend ? cli.extraArgs : [],
    };
  }
}

export async function fileSize(file: string): Promise<number | null> {
  try {
    const s = await stat(file);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

async function treeBytes(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of entries) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(p);
    else if (entry.isFile()) total += (await fileSize(p)) ?? 0;
  }
  return total;
}
