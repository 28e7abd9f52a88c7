#!/usr/bin/env node
// Builds what `npm start`, `npm run demo` and `npm test` need, skipping what is
// already up to date: the Prisma client, the native runner (CMake) and the
// dashboard's production build (Next.js). Runs after `npm install` too.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { planNativeConfigure, recordConfigureDone, recordConfigureInvalid, recordConfigureStarted } from "./lib/native-configure.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
const log = (msg) => process.stdout.write(`[build] ${msg}\n`);

function newestMtime(target, skip = () => false) {
  if (!existsSync(target)) return 0;
  const st = statSync(target);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of readdirSync(target)) {
    const p = path.join(target, entry);
    if (skip(p)) continue;
    newest = Math.max(newest, newestMtime(p, skip));
  }
  return newest;
}

function run(cmd, args, what, onFailure = () => undefined) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  if (r.error?.code === "ENOENT" || r.status !== 0) onFailure();
  if (r.error?.code === "ENOENT") fail(`${what}: \`${cmd}\` was not found`);
  if (r.status !== 0) fail(`${what} failed (exit ${r.status})`);
  log(`${what} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** share/cmake of the ExecuTorch wheel in .venv (npm run executorch:setup), or null. */
function findExecuTorchCmakeDir() {
  const lib = path.join(root, ".venv", "lib");
  if (!existsSync(lib)) return null;
  for (const dir of readdirSync(lib)) {
    const cmakeDir = path.join(lib, dir, "site-packages", "executorch", "share", "cmake");
    if (existsSync(path.join(cmakeDir, "executorch-config.cmake"))) return cmakeDir;
  }
  return null;
}

function fail(msg) {
  process.stderr.write(`[build] ${msg}\n`);
  process.exit(1);
}

// 1. Prisma client (its own postinstall is disabled: see allowScripts in package.json).
const generated = path.join(root, "apps/web/src/server/db/generated/client.ts");
if (newestMtime(path.join(root, "prisma/schema.prisma")) > newestMtime(generated)) {
  run(bin("prisma"), ["generate"], "prisma generate");
}

// 2. The native runner. Needs cmake and a C++17 compiler (README: "What you need").
for (const tool of ["cmake", "c++"]) {
  try {
    execFileSync(tool, ["--version"], { stdio: "ignore" });
  } catch {
    fail(`building the native runner needs \`${tool}\`: on Debian/Ubuntu/Raspberry Pi OS run \`sudo apt-get install cmake g++\``);
  }
}
// With ExecuTorch when .venv has the wheel (npm run executorch:setup), else sim only; the
// GoogleTest suite for `npm test` (--tests), never for `npm install` (--install: it must not
// need GoogleTest), otherwise as the folder has it. Configured again when the last configure
// or build failed, or the options changed (scripts/lib/native-configure.mjs).
const tests = process.argv.includes("--tests") ? "on" : process.argv.includes("--install") ? "off" : "keep";
const plan = planNativeConfigure({ root, executorchCmake: findExecuTorchCmakeDir(), tests });
if (plan.configure) {
  // A configure that failed half way leaves a cache without a Makefile: start clean.
  if (plan.cleanCache) rmSync(path.join(root, "native/build/CMakeCache.txt"));
  log(`configuring native/build: ${plan.reason}`);
  recordConfigureStarted(root, plan);
  const withEt = plan.args.includes("-DORCHARD_WITH_EXECUTORCH=ON");
  run("cmake", plan.args, withEt ? "configure native runner with ExecuTorch from .venv" : "configure native runner");
  recordConfigureDone(root, plan);
}
// The build re-runs cmake by itself when its inputs changed; if that (or the build) fails, configure afresh next time.
run("cmake", ["--build", "native/build", "-j", "2"], "build native runner", () => recordConfigureInvalid(root));

// 3. The dashboard. Rebuilt when anything it compiles changed since the last build.
const webDir = path.join(root, "apps/web");
const buildId = path.join(webDir, ".next/BUILD_ID");
const sources = [
  path.join(webDir, "src"),
  path.join(webDir, "next.config.ts"),
  path.join(webDir, "postcss.config.mjs"),
  path.join(webDir, "public"),
  path.join(root, "packages/contracts/src"),
];
const newestSource = Math.max(...sources.map((s) => newestMtime(s, (p) => p.includes(`${path.sep}generated`))));
if (process.env.ORCHARD_SKIP_UI_BUILD === "1") {
  log("dashboard build skipped (ORCHARD_SKIP_UI_BUILD=1)");
} else if (newestSource > newestMtime(buildId)) {
  run(bin("next"), ["build", "apps/web"], "build dashboard");
} else {
  log("dashboard is up to date");
}
