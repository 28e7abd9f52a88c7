#!/usr/bin/env node
// Builds what `npm start`, `npm run demo` and `npm test` need, skipping what is
// already up to date: the Prisma client, the native runner (CMake), the compiled CLI
// and agent (esbuild, apps/*/dist) and the dashboard's production build (Next.js).
// Runs after `npm install` too.
//
//   node scripts/build.mjs            npm run build, npm run bench: everything, a runner failure fails
//   node scripts/build.mjs --install  npm install: the runner is optional (one sentence when it cannot be built)
//   node scripts/build.mjs --start    npm start, npm run demo: likewise
//   node scripts/build.mjs --tests    npm test: the runner with its GoogleTest suite, a failure fails
//   node scripts/build.mjs --only=agent   the agent's bundles alone (a Pi: infra/pi/agent-install.md)
//
// Each step prints one line with its elapsed time (on a terminal a live line with its
// progress); compiler, cmake and next output goes to .orchard/build.log, whose last lines
// are printed when a step fails. A step is skipped when the fingerprint of its inputs is
// the one recorded after its last success (docs/operations.md "Install and start").
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  bundleEntry,
  DASHBOARD_INPUTS,
  dashboardInputSkip,
  fingerprint,
  formatElapsed,
  NATIVE_INPUTS,
  nativeFailureReason,
  parseCompileProgress,
  parseNextPhase,
  readStamp,
  Reporter,
  reportFailure,
  runnerNotBuiltSentence,
  runStep,
  writeStamp,
} from "./lib/build-steps.mjs";
import { bundleStaleReason } from "./lib/launch.mjs";
import { planNativeConfigure, recordConfigureDone, recordConfigureInvalid, recordConfigureStarted } from "./lib/native-configure.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => path.join(root, "node_modules", ".bin", name);
const argv = process.argv.slice(2);
const mode = argv.includes("--tests") ? "tests" : argv.includes("--install") ? "install" : argv.includes("--start") ? "start" : "build";
const only = argv.find((a) => a.startsWith("--only="))?.slice("--only=".length) ?? null;
if (only !== null && only !== "agent") {
  process.stderr.write("[build] --only takes agent\n");
  process.exit(2);
}
const runnerOptional = mode === "install" || mode === "start";

const reporter = new Reporter();
const logFile = path.join(root, ".orchard/build.log");
mkdirSync(path.dirname(logFile), { recursive: true });
writeFileSync(logFile, `scripts/build.mjs ${argv.join(" ")} (${new Date().toISOString()})\n`);
const started = Date.now();

function fail(msg) {
  reporter.error(msg);
  process.exit(1);
}

async function step(title, cmd, args, progress) {
  const result = await runStep({ reporter, title, cmd, args, cwd: root, logFile, progress });
  if (!result.ok) reportFailure(reporter, title, result, logFile);
  return result;
}

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

// 1. Prisma client (its own postinstall is disabled: see allowScripts in package.json).
async function prismaClient() {
  const generated = path.join(root, "apps/web/src/server/db/generated/client.ts");
  if (newestMtime(path.join(root, "prisma/schema.prisma")) <= newestMtime(generated)) return;
  if (!(await step("prisma client (prisma generate)", bin("prisma"), ["generate"])).ok) fail("the Prisma client is needed by the server");
}

// 2. The native runner. Needs cmake, a C++17 compiler and nlohmann-json (README "What you need").
/** null when built (or up to date), else why not. */
async function nativeRunner() {
  const missingTool = ["cmake", "c++"].find((tool) => {
    try {
      execFileSync(tool, ["--version"], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missingTool) return missingTool === "cmake" ? "cmake is not installed" : "no C++ compiler was found (g++)";

  // With ExecuTorch when .venv has the wheel (npm run executorch:setup), else sim only; the
  // GoogleTest suite for `npm test` (--tests), never for `npm install` (--install: it must not
  // need GoogleTest), otherwise as the folder has it. Configured again when the last configure
  // or build failed, or the options changed (scripts/lib/native-configure.mjs).
  const tests = mode === "tests" ? "on" : mode === "install" ? "off" : "keep";
  const plan = planNativeConfigure({ root, executorchCmake: findExecuTorchCmakeDir(), tests });
  const withTests = plan.args.includes("-DORCHARD_BUILD_TESTS=ON");
  const stampFile = path.join(root, "native/build/orchard-build-stamp.json");
  const inputs = fingerprint(root, NATIVE_INPUTS, { extra: plan.args });
  const outputs = ["orchard-runner", "orchard-tokenize", ...(withTests ? ["orchard_tests"] : [])];
  const built = outputs.every((f) => existsSync(path.join(root, "native/build", f)));
  if (!plan.configure && built && readStamp(stampFile) === inputs) {
    reporter.line("native runner is up to date");
    return null;
  }
  rmSync(stampFile, { force: true });
  if (plan.configure) {
    // A configure that failed half way leaves a cache without a Makefile: start clean.
    if (plan.cleanCache) rmSync(path.join(root, "native/build/CMakeCache.txt"));
    reporter.line(`native runner: configuring native/build (${plan.reason})`);
    recordConfigureStarted(root, plan);
    const withEt = plan.args.includes("-DORCHARD_WITH_EXECUTORCH=ON");
    const r = await step(withEt ? "native runner: configure (with ExecuTorch from .venv)" : "native runner: configure", "cmake", plan.args);
    if (!r.ok) return nativeFailureReason("configure", r.output);
    recordConfigureDone(root, plan);
  }
  // The build re-runs cmake by itself when its inputs changed; if that (or the build) fails, configure afresh next time.
  const r = await step("native runner: compile", "cmake", ["--build", "native/build", "-j", "2"], (line) => {
    const p = parseCompileProgress(line);
    return p ? `${p.percent}%${p.total ? ` (${p.done}/${p.total})` : ""}` : null;
  });
  if (!r.ok) {
    recordConfigureInvalid(root);
    return nativeFailureReason("build", r.output);
  }
  writeStamp(stampFile, inputs);
  return null;
}

// 3. The CLI and the agent as JavaScript: their bins run these instead of compiling TypeScript at each start.
const BUNDLES = [
  { app: "cli", entry: "apps/cli/src/main.ts", bundle: "apps/cli/dist/orchard.mjs" },
  { app: "agent", entry: "apps/agent/src/main.ts", bundle: "apps/agent/dist/orchard-agent.mjs" },
  { app: "agent", entry: "apps/agent/src/llama-runner/main.ts", bundle: "apps/agent/dist/orchard-llama-runner.mjs" },
];
async function bundles() {
  const todo = BUNDLES.filter((b) => (only === null || b.app === only) && bundleStaleReason(path.join(root, b.bundle), root) !== null);
  if (todo.length === 0) {
    reporter.line(only ? "agent (dist) is up to date" : "CLI and agent (dist) are up to date");
    return;
  }
  const t0 = Date.now();
  for (const b of todo) {
    try {
      await bundleEntry({ root, ...b });
    } catch (err) {
      const detail =
        (err.errors ?? []).map((e) => `${e.location?.file ?? ""}:${e.location?.line ?? ""} ${e.text}`).join("\n") || err.message;
      writeFileSync(logFile, `\n==== bundle ${b.entry} failed\n${detail}\n`, { flag: "a" });
      fail(`compiling ${b.entry} to ${b.bundle} failed:\n${detail}`);
    }
  }
  const what = [...new Set(todo.map((b) => (b.app === "cli" ? "CLI" : "agent")))].join(" and ");
  const where = [...new Set(todo.map((b) => path.dirname(b.bundle)))].join(", ");
  reporter.line(`${what} (esbuild → ${where}) … ${formatElapsed(Date.now() - t0)}`);
}

// 4. The dashboard. Rebuilt when anything it compiles changed since the last build.
async function dashboard() {
  if (process.env.ORCHARD_SKIP_UI_BUILD === "1") {
    reporter.line("dashboard build skipped (ORCHARD_SKIP_UI_BUILD=1)");
    return;
  }
  const webDir = path.join(root, "apps/web");
  const stampFile = path.join(webDir, ".next/orchard-build-stamp.json");
  const skip = dashboardInputSkip;
  const inputs = fingerprint(root, DASHBOARD_INPUTS, { skip });
  const buildId = path.join(webDir, ".next/BUILD_ID");
  // A build from before these stamps counts when it is newer than every source (the rule before them).
  const legacyFresh = () =>
    readStamp(stampFile) === null &&
    newestMtime(buildId) >
      Math.max(
        ...["src", "next.config.ts", "postcss.config.mjs", "public"].map((s) => newestMtime(path.join(webDir, s), skip)),
        newestMtime(path.join(root, "packages/contracts/src"), skip),
      );
  if (existsSync(buildId) && (readStamp(stampFile) === inputs || legacyFresh())) {
    if (readStamp(stampFile) !== inputs) writeStamp(stampFile, inputs);
    reporter.line("dashboard is up to date");
    return;
  }
  rmSync(stampFile, { force: true });
  const r = await step("dashboard (next build)", bin("next"), ["build", "apps/web"], parseNextPhase);
  if (!r.ok) fail("the dashboard could not be built");
  writeStamp(stampFile, inputs);
}

if (only === "agent") {
  await bundles();
} else {
  await prismaClient();
  const notBuilt = await nativeRunner();
  if (notBuilt !== null) {
    if (!runnerOptional) fail(runnerNotBuiltSentence(notBuilt));
    reporter.line(runnerNotBuiltSentence(notBuilt));
  }
  await bundles();
  await dashboard();
}
reporter.line(`done in ${formatElapsed(Date.now() - started)} (output of the tools: ${path.relative(process.cwd(), logFile) || logFile})`);
