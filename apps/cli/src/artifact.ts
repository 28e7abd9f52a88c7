/**
 * `orchard artifact push|list|rm`: models from a terminal. `push` uploads the model file
 * and its tokenizer files with the same resumable uploader as the dashboard (chunks that
 * survive a dropped connection), then creates the signed model on the server.
 */
import { open, readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import {
  ARTIFACT_RUNTIMES,
  ArtifactFileName,
  EXPORTED_MODEL_MANIFEST,
  ExportedModelManifest,
  type ArtifactRuntime,
} from "@orchard/contracts";
import type { ArtifactDto } from "@orchard/client";
import { parseTokenIds, roleForFileName } from "@orchard/client";
import { uploadFile, type UploadProgress, type UploadSource } from "@orchard/client";
import type { OrchardClient } from "./client.ts";
import { ago, bytes, formatByteRate, table } from "./format.ts";

export interface PushOptions {
  files: string[];
  name: string | undefined;
  version: string | undefined;
  runtime: string | undefined;
  runtimeVersion: string | undefined;
  profile: string | undefined;
  maxContext: string | undefined;
  referencePrompt: string | undefined;
  expectedIds: string | undefined;
}

/** What `push` sends, checked before a byte is uploaded; throws a sentence for the user. */
export interface PushPlan {
  files: { path: string; name: string; role: "model" | "tokenizer" | "tokenizer_config" | "other"; size: number }[];
  name: string;
  version: string;
  runtime: ArtifactRuntime;
  runtimeVersion: string;
  profile: string | null;
  maxContext: number | null;
  reference: { prompt: string; expectedTokenIds: number[] | null } | null;
}

/**
 * `push DIR` of a folder tools/export wrote: its .pte first, then every other file but
 * orchard-model.json, whose name, version, runtime, profile, context and reference
 * (prompt and the .pte's own greedy ids) fill in whatever the command line left out.
 */
export async function optionsFromExportFolder(dir: string, o: PushOptions): Promise<PushOptions> {
  const manifestPath = path.join(dir, EXPORTED_MODEL_MANIFEST);
  const text = await readFile(manifestPath, "utf8").catch(() => null);
  if (text === null) {
    throw new Error(
      `${dir} is a folder without ${EXPORTED_MODEL_MANIFEST} (what tools/export writes); name the files instead: orchard artifact push MODEL [TOKENIZER…]`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${manifestPath} is not JSON: ${(error as Error).message}`);
  }
  const parsed = ExportedModelManifest.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${manifestPath}: ${issue.path.join(".") || "the file"}: ${issue.message}`);
  }
  const m = parsed.data;
  const names: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name !== EXPORTED_MODEL_MANIFEST && !entry.name.startsWith(".")) names.push(entry.name);
  }
  const models = names.filter((n) => /\.pte$/i.test(n));
  if (models.length !== 1) {
    throw new Error(`${dir} must hold exactly one .pte file (it has ${models.length === 0 ? "none" : models.join(", ")})`);
  }
  const rest = names.filter((n) => n !== models[0]).sort();
  return {
    files: [models[0]!, ...rest].map((n) => path.join(dir, n)),
    name: o.name ?? m.name,
    version: o.version ?? m.version,
    runtime: o.runtime ?? m.runtime,
    runtimeVersion: o.runtimeVersion ?? m.runtimeVersion,
    profile: o.profile ?? m.profile,
    maxContext: o.maxContext ?? String(m.maxContext),
    referencePrompt: o.referencePrompt ?? m.reference.prompt,
    expectedIds: o.expectedIds ?? (o.referencePrompt === undefined ? m.reference.expectedTokenIds.join(",") : undefined),
  };
}

export async function planPush(o: PushOptions): Promise<PushPlan> {
  if (o.files.length === 1 && (await stat(o.files[0]!).catch(() => null))?.isDirectory()) {
    return planPush(await optionsFromExportFolder(o.files[0]!, o));
  }
  if (o.files.length === 0) throw new Error("name the model file (then its tokenizer files): orchard artifact push MODEL [TOKENIZER…]");
  if (!o.name) throw new Error("--name is required (e.g. --name gemma4-e2b)");
  if (!o.version) throw new Error("--version is required (e.g. --version 2026.11.1)");
  if (!o.runtime || !(ARTIFACT_RUNTIMES as readonly string[]).includes(o.runtime)) {
    throw new Error(`--runtime must be one of ${ARTIFACT_RUNTIMES.join(", ")}`);
  }
  const runtime = o.runtime as ArtifactRuntime;
  const runtimeVersion = o.runtimeVersion ?? (runtime === "sim" ? "1" : undefined);
  if (!runtimeVersion) {
    throw new Error(
      runtime === "llama.cpp"
        ? "--runtime-version is required for llama.cpp (the llama.cpp release the devices' runner loads: see orchard-llama-runner --capabilities)"
        : "--runtime-version is required for executorch (the ExecuTorch version the model was exported with, e.g. 1.2.0)",
    );
  }
  if (runtime === "sim" && o.profile) throw new Error("a simulated (sim) model has no --profile");
  if (runtime === "llama.cpp" && o.profile) throw new Error("a llama.cpp (GGUF) model has no --profile");
  let maxContext: number | null = null;
  if (o.maxContext !== undefined) {
    maxContext = Number(o.maxContext);
    if (!Number.isInteger(maxContext) || maxContext < 1) throw new Error("--max-context must be a positive whole number");
  }
  let expected: number[] | null = null;
  if (o.expectedIds !== undefined) {
    try {
      expected = parseTokenIds(o.expectedIds);
    } catch (err) {
      throw new Error(`--expected-ids: ${(err as Error).message}`);
    }
    if (!o.referencePrompt) throw new Error("--expected-ids needs --reference-prompt (the prompt that gives those ids)");
  }
  const files: PushPlan["files"] = [];
  for (const [i, file] of o.files.entries()) {
    const name = path.basename(file);
    const check = ArtifactFileName.safeParse(name);
    if (!check.success) throw new Error(`${file}: ${check.error.issues[0]!.message}; rename the file`);
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) throw new Error(`${file}: no such file`);
    files.push({ path: file, name, role: i === 0 ? "model" : roleForFileName(name), size: st.size });
  }
  if (runtime === "llama.cpp" && !/\.gguf$/i.test(files[0]!.name)) {
    throw new Error(`a llama.cpp model is a .gguf file, not ${files[0]!.name} (its tokenizer and chat template are inside it)`);
  }
  const names = new Set<string>();
  for (const f of files) {
    if (names.has(f.name)) throw new Error(`two files are named ${f.name}`);
    names.add(f.name);
  }
  return {
    files,
    name: o.name,
    version: o.version,
    runtime,
    runtimeVersion,
    profile: o.profile ?? null,
    maxContext,
    reference: o.referencePrompt ? { prompt: o.referencePrompt, expectedTokenIds: expected } : null,
  };
}

/** A file on disk as an UploadSource: reads only the chunk being sent. */
async function fileSource(file: string, name: string, size: number): Promise<UploadSource & { close(): Promise<void> }> {
  const handle = await open(file, "r");
  return {
    name,
    size,
    async slice(start, end) {
      const buf = Buffer.allocUnsafe(end - start);
      let off = 0;
      while (off < buf.length) {
        const { bytesRead } = await handle.read(buf, off, buf.length - off, start + off);
        if (bytesRead === 0) throw new Error(`${file} got shorter while it was being uploaded`);
        off += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

export async function push(
  plan: PushPlan,
  deps: { client: OrchardClient; url: string; apiKey: string; err: (text: string) => void; tty: boolean },
): Promise<ArtifactDto> {
  const total = plan.files.reduce((n, f) => n + f.size, 0);
  let before = 0;
  const uploaded: { uploadId: string; name: string; role: PushPlan["files"][number]["role"] }[] = [];
  for (const f of plan.files) {
    const source = await fileSource(f.path, f.name, f.size);
    const line = progressLine(f.name, before, total, deps);
    try {
      const dto = await uploadFile(source, {
        baseUrl: deps.url,
        headers: { authorization: `Bearer ${deps.apiKey}` },
        onProgress: line.update,
      });
      line.done(dto.sha256 ?? "");
      uploaded.push({ uploadId: dto.id, name: f.name, role: f.role });
    } finally {
      await source.close();
    }
    before += f.size;
  }
  return deps.client.artifacts.create.mutate({
    name: plan.name,
    version: plan.version,
    runtime: plan.runtime,
    runtimeVersion: plan.runtimeVersion,
    profile: plan.profile,
    maxContext: plan.maxContext,
    reference: plan.reference,
    files: uploaded,
    source: "cli",
  });
}

/** One line on stderr per file: redrawn in place on a terminal, every few seconds otherwise. */
function progressLine(name: string, before: number, total: number, deps: { err: (t: string) => void; tty: boolean }) {
  let lastPrinted = 0;
  let lastText = "";
  const text = (p: UploadProgress) => {
    const pct = p.bytesTotal === 0 ? 100 : (p.bytesDone / p.bytesTotal) * 100;
    const parts = [`${name}: ${bytes(p.bytesDone)} / ${bytes(p.bytesTotal)} (${pct.toFixed(0)}%)`];
    if (p.rateBps) parts.push(formatByteRate(p.rateBps));
    if (p.etaSeconds !== null && p.bytesDone < p.bytesTotal) parts.push(`ETA ${eta(p.etaSeconds)}`);
    if (total > p.bytesTotal) parts.push(`all files ${bytes(before + p.bytesDone)} / ${bytes(total)}`);
    if (p.retry) parts.push(`retrying in ${Math.round(p.retry.inMs / 1000)} s: ${p.retry.error}`);
    return parts.join("  ");
  };
  return {
    update(p: UploadProgress) {
      lastText = text(p);
      const now = Date.now();
      if (deps.tty) deps.err(`\r\x1b[2K${lastText}`);
      else if (p.retry || now - lastPrinted >= 2000) {
        deps.err(`${lastText}\n`);
        lastPrinted = now;
      }
    },
    done(sha256: string) {
      const finished = `${lastText.split("  ")[0]}  sha256 ${sha256}`;
      deps.err(deps.tty ? `\r\x1b[2K${finished}\n` : `${finished}\n`);
    },
  };
}

function eta(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function artifactTable(artifacts: ArtifactDto[], now = Date.now()): string {
  if (artifacts.length === 0) return "no models yet (orchard artifact push MODEL …, or the dashboard's Models page)";
  return table(
    ["ID", "NAME", "VERSION", "RUNTIME", "SIZE", "FILES", "DEVICES", "CREATED"],
    artifacts.map((a) => [
      a.id.slice(0, 12),
      a.name,
      a.version,
      a.runtime === "sim" ? "sim (simulated)" : `${a.runtime} ${a.runtimeVersion}${a.profile ? ` ${a.profile}` : ""}`,
      bytes(a.totalBytes),
      String(a.files.length),
      a.devices.length === 0 ? "—" : a.devices.map((d) => (d.role === "active" ? d.name : `${d.name} (previous)`)).join(", "),
      ago(a.createdAt, now),
    ]),
  );
}

/** A model by its full id or an unambiguous prefix of it (at least 6 characters). */
export function resolveArtifact(artifacts: ArtifactDto[], ref: string): ArtifactDto {
  const exact = artifacts.find((a) => a.id === ref);
  if (exact) return exact;
  if (ref.length < 6) throw new Error(`no model ${ref} (give its id, or at least its first 6 characters)`);
  const matches = artifacts.filter((a) => a.id.startsWith(ref));
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new Error(`no model ${ref} (orchard artifact list shows them)`);
  throw new Error(`${ref} matches ${matches.length} models; give more of the id`);
}
