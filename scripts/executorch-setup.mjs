#!/usr/bin/env node
// Creates the project-local Python environment (.venv/) with ExecuTorch, PyTorch and
// the export toolchain, pinned in tools/export/requirements.txt. Afterwards
// scripts/build.mjs builds orchard-runner against the ExecuTorch wheel's C++ package,
// and the tests export and run real .pte files. Skips the install when .venv already
// has exactly these requirements. Needs Python >= 3.10 with venv, and PyPI.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const venv = path.join(root, ".venv");
const python = path.join(venv, "bin", "python");
const requirements = path.join(root, "tools/export/requirements.txt");
const stamp = path.join(venv, ".orchard-requirements");
const log = (msg) => process.stdout.write(`[executorch-setup] ${msg}\n`);

function run(cmd, args, what) {
  const started = Date.now();
  log(`${what}…`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.error?.code === "ENOENT") fail(`${what}: \`${cmd}\` was not found`);
  if (r.status !== 0) fail(`${what} failed (exit ${r.status})`);
  log(`${what} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function fail(msg) {
  process.stderr.write(`[executorch-setup] ${msg}\n`);
  process.exit(1);
}

const wanted = createHash("sha256").update(readFileSync(requirements)).digest("hex");
if (existsSync(stamp) && readFileSync(stamp, "utf8").trim() === wanted) {
  log(".venv is up to date");
  process.exit(0);
}
if (!existsSync(python)) {
  const system = process.env.PYTHON ?? "python3";
  run(system, ["-m", "venv", venv], `create .venv with ${system}`);
}
// torch from PyPI is the CUDA build with its NVIDIA wheels (several GB, runs on the CPU);
// pip's cache makes a second install on the same machine fast.
run(
  python,
  ["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", "-r", requirements],
  "pip install -r tools/export/requirements.txt (PyTorch is ~4 GB the first time)",
);
writeFileSync(stamp, `${wanted}\n`);
log("done: `npm run build` now builds orchard-runner with the executorch backend");
