/**
 * Real ExecuTorch models for tests, benchmarks and the demo: tiny random-weight models
 * exported by the project's own export tool (tools/export, `python -m orchard_export tiny`)
 * into <root>/<hash of the tool's sources>/<layout> (tests: test/.models), once per
 * version of the tool.
 * Needs the project's Python environment (.venv, `npm run executorch:setup`) and an
 * orchard-runner built against it. `executorchUnavailable()` says why not when
 * either is missing; the tests then skip with that reason, except in CI where the
 * environment is part of the build and its absence is an error.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ExportedModelManifest } from "@orchard/contracts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNNER_BIN = path.join(ROOT, "native/build/orchard-runner");
/** Where tests keep their exports (git-ignored). */
export const TEST_MODELS_DIR = path.join(ROOT, "test/.models");

export const VENV_PYTHON = path.join(ROOT, ".venv/bin/python");
const EXPORT_TOOL = path.join(ROOT, "tools/export");

export const EXPORT_LAYOUTS = ["gemma4-e2b-extcache", "llm-standard"] as const;
export type ExportLayout = (typeof EXPORT_LAYOUTS)[number];

/** orchard-model.json, as the export tool writes it: the contract's part and what tests also read. */
export const ExportedModel = ExportedModelManifest.extend({
  /** The orchard-runner profile it runs with (tools/export RUNNER_PROFILES). */
  profile: z.enum(["gemma4-extcache", "llm-standard"]),
  promptTokenIds: z.array(z.number().int()).min(1),
  /** Greedy ids of the eager PyTorch model the .pte was lowered from (quantized as the .pte is). */
  eagerQuantizedTokenIds: z.array(z.number().int()).min(1),
  /** …and of the unquantized FP32 eager model (int4 on random weights may part from it). */
  eagerFp32TokenIds: z.array(z.number().int()).min(1),
});
export type ExportedModel = z.infer<typeof ExportedModel>;

/** Why the real-runtime tests cannot run here, or null when they can. */
export function executorchUnavailable(): string | null {
  if (!existsSync(VENV_PYTHON)) return "no .venv with ExecuTorch (run `npm run executorch:setup`, then `npm run build`)";
  if (!existsSync(RUNNER_BIN)) return `${RUNNER_BIN} is not built`;
  const caps = execFileSync(RUNNER_BIN, ["--capabilities"], { encoding: "utf8" });
  if (!caps.includes('"executorch"'))
    return "orchard-runner was built without ExecuTorch (run `npm run build` after `npm run executorch:setup`)";
  return null;
}

function hashTree(dir: string, hash = createHash("sha256")): ReturnType<typeof createHash> {
  for (const entry of readdirSync(dir).sort()) {
    if (entry === "__pycache__" || entry.startsWith(".")) continue;
    const p = path.join(dir, entry);
    if (statSync(p).isDirectory()) hashTree(p, hash);
    else hash.update(`${path.relative(EXPORT_TOOL, p)}\0`).update(readFileSync(p));
  }
  return hash;
}

/** The exported folder for `layout` (model.pte, tokenizer files, orchard-model.json), exporting it when missing. */
export function tinyModel(layout: ExportLayout, root: string = TEST_MODELS_DIR): { dir: string; model: string; manifest: ExportedModel } {
  const key = hashTree(EXPORT_TOOL).digest("hex").slice(0, 16);
  const dir = path.join(root, key, layout);
  if (!existsSync(path.join(dir, "orchard-model.json"))) {
    // Test files run in parallel workers and may both find it missing: each exports into its
    // own folder, the first rename wins and a later one drops its copy.
    const partial = `${dir}.partial-${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(path.dirname(dir), { recursive: true });
    const r = spawnSync(VENV_PYTHON, ["-m", "orchard_export", "tiny", "--layout", layout, "--out", partial], {
      cwd: EXPORT_TOOL,
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(`exporting the tiny ${layout} model failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
    try {
      renameSync(partial, dir);
    } catch (error) {
      if (!existsSync(path.join(dir, "orchard-model.json"))) throw error;
      rmSync(partial, { recursive: true, force: true });
    }
  }
  const manifest = ExportedModel.parse(JSON.parse(readFileSync(path.join(dir, "orchard-model.json"), "utf8")));
  return { dir, model: path.join(dir, "model.pte"), manifest };
}
