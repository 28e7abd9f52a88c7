// The pieces of scripts/build.mjs that are worth testing on their own: running one step
// with its output in the build log and a progress line with the elapsed time, what the
// native build's failure was for (the one sentence `npm install` prints), and the
// fingerprint of a step's inputs that lets a start skip a build nothing changed for.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileStamp, inputsFile } from "./launch.mjs";

/** 3.1 s, 59.9 s, 1m20s, 12m05s. */
export function formatElapsed(ms) {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** The percentage of a CMake (Makefile generator) or Ninja progress line, or null. */
export function parseCompileProgress(line) {
  const make = /^\[\s*(\d{1,3})%\]/.exec(line);
  if (make) return { percent: Number(make[1]) };
  const ninja = /^\[(\d+)\/(\d+)\]/.exec(line);
  if (ninja) return { percent: Math.floor((100 * Number(ninja[1])) / Number(ninja[2])), done: Number(ninja[1]), total: Number(ninja[2]) };
  return null;
}

const NEXT_PHASES = [
  [/Creating an optimized production build/, "compiling"],
  [/Compiled successfully|Compiled with warnings/, "compiled"],
  [/Linting and checking validity of types|Checking validity of types|Running TypeScript/, "type-checking"],
  [/Collecting page data/, "collecting page data"],
  [/Generating static pages \((\d+)\/(\d+)\)/, "generating pages"],
  [/Finalizing page optimization/, "finalizing"],
];

/** What `next build` is doing, from one of its lines, or null. */
export function parseNextPhase(line) {
  for (const [re, phase] of NEXT_PHASES) {
    const m = re.exec(line);
    if (m) return m[2] ? `${phase} ${m[1]}/${m[2]}` : phase;
  }
  return null;
}

/** What the native runner's build fingerprint covers (with the configure options), relative to the root. */
export const NATIVE_INPUTS = ["native/CMakeLists.txt", "native/src", "native/include", "native/tools", "native/tests"];

/** What the dashboard's build fingerprint covers, relative to the root, less dashboardInputSkip. */
export const DASHBOARD_INPUTS = [
  "apps/web/src",
  "apps/web/next.config.ts",
  "apps/web/postcss.config.mjs",
  "apps/web/public",
  "apps/web/tsconfig.json",
  "apps/web/package.json",
  "packages/contracts/src",
  "packages/format/src",
  "packages/client/src",
  "prisma/schema.prisma",
  "package-lock.json",
];
/** The generated Prisma client (made from the schema, which is covered) and tests are not the dashboard's inputs. */
export const dashboardInputSkip = (p) => p.includes(`${path.sep}generated`) || p.endsWith(".test.ts") || p.endsWith(".test.tsx");

/** The Debian packages the native runner needs to build (README "What you need"). */
export const NATIVE_PACKAGES = ["cmake", "g++", "nlohmann-json3-dev"];

/**
 * Why the native configure or build failed, from its output: a missing package by name when
 * the output says so, else what failed.
 */
export function nativeFailureReason(stage, output) {
  if (/nlohmann_json/i.test(output) && /Could not find|not found|NOTFOUND/i.test(output)) return "nlohmann-json3-dev is not installed";
  if (/GoogleTest was not found|Could NOT find GTest/i.test(output)) return "libgtest-dev (GoogleTest) is not installed";
  if (/No CMAKE_CXX_COMPILER could be found|CMAKE_CXX_COMPILER not set/i.test(output)) return "no C++ compiler was found (g++)";
  return stage === "configure" ? "cmake could not configure native/" : "compiling it failed";
}

/** The one sentence build.mjs prints when the runner could not be built and the rest of the install goes on. */
export function runnerNotBuiltSentence(reason) {
  return (
    `orchard-runner was not built: ${reason}; the server, the dashboard, the CLI and agents on the llama.cpp runner work, ` +
    "but agents on the sim or executorch backend (npm run demo), the benchmarks and npm test need it: " +
    `install it with \`sudo apt-get install ${NATIVE_PACKAGES.join(" ")}\` and run \`npm run build\``
  );
}

function walk(target, skip, out) {
  if (!existsSync(target) || skip(target)) return;
  const st = statSync(target);
  if (!st.isDirectory()) {
    out.push(target);
    return;
  }
  for (const entry of readdirSync(target).sort()) walk(path.join(target, entry), skip, out);
}

/**
 * A fingerprint of the contents of `targets` (files or folders, walked; `skip` leaves paths out),
 * with `extra` strings mixed in (options the step ran with). Paths are taken relative to `root`.
 */
export function fingerprint(root, targets, { skip = () => false, extra = [] } = {}) {
  const files = [];
  for (const t of targets) walk(path.join(root, t), skip, files);
  const hash = createHash("sha256");
  for (const x of extra) hash.update(`extra\0${x}\0`);
  for (const f of files) {
    hash.update(`${path.relative(root, f)}\0`);
    hash.update(readFileSync(f));
    hash.update("\0");
  }
  return `${files.length}:${hash.digest("hex")}`;
}

/** The fingerprint a step recorded after its last success, or null. */
export function readStamp(file) {
  try {
    const v = JSON.parse(readFileSync(file, "utf8"));
    return typeof v?.inputs === "string" ? v.inputs : null;
  } catch {
    return null;
  }
}

export function writeStamp(file, inputs) {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ inputs, builtAt: new Date().toISOString() })}\n`);
}

/**
 * Prints `[build] ...` lines. On a terminal (and not in CI) a running step's line is redrawn in place
 * with its progress and elapsed time; otherwise each progress change that matters is its own line.
 */
export class Reporter {
  constructor({ out = process.stdout, err = process.stderr, live = Boolean(process.stdout.isTTY) && !process.env.CI } = {}) {
    this.out = out;
    this.err = err;
    this.live = live;
    this.drawn = false;
  }
  line(msg) {
    this.clear();
    this.out.write(`[build] ${msg}\n`);
  }
  error(msg) {
    this.clear();
    this.err.write(`[build] ${msg}\n`);
  }
  /** A running step's state; redrawn on a terminal, ignored otherwise (see plain()). */
  status(msg) {
    if (!this.live) return;
    this.out.write(`\r[build] ${msg}\x1b[K`);
    this.drawn = true;
  }
  clear() {
    if (this.drawn) this.out.write("\r\x1b[K");
    this.drawn = false;
  }
}

/**
 * Runs one build step: its output goes to `logFile` (after a header), the reporter shows
 * `<title>: <progress> <elapsed>` while it runs and `<title> … <elapsed>` when it is done.
 * `progress(line)` turns an output line into a short status (a percentage, a phase) or null.
 * Plain output (CI, not a terminal) prints a status line when the status changes its tens of
 * percent or its phase, and at least every 30 s. Resolves { ok, code, output tail, elapsed }.
 */
export function runStep({ reporter, title, cmd, args, cwd, env = process.env, logFile, progress = () => null, plainEveryMs = 30_000 }) {
  const started = Date.now();
  appendFileSync(logFile, `\n==== ${title}: ${cmd} ${args.join(" ")} (${new Date().toISOString()})\n`);
  const tail = [];
  let status = "";
  let lastPlain = "";
  let lastPlainAt = started;
  const show = () => {
    const elapsed = formatElapsed(Date.now() - started);
    reporter.status(`${title} ${status ? `${status} ` : ""}${elapsed}`);
  };
  const plain = (force) => {
    if (reporter.live) return;
    const key = status.replace(/(\d+)%/, (_, p) => `${Math.floor(Number(p) / 10) * 10}%`);
    if (force || (key && key !== lastPlain)) {
      reporter.line(`${title} ${status ? `${status} ` : "still running "}${formatElapsed(Date.now() - started)}`);
      lastPlain = key;
      lastPlainAt = Date.now();
    }
  };
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      resolve({ ok: false, code: null, error: err, tail: [], output: "", elapsedMs: 0 });
      return;
    }
    let output = "";
    let pending = "";
    const onData = (chunk) => {
      const text = chunk.toString("utf8");
      appendFileSync(logFile, text);
      if (output.length < 4_000_000) output += text;
      pending += text;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? "";
      for (const l of lines) {
        tail.push(l);
        if (tail.length > 30) tail.shift();
        const p = progress(l);
        if (p) status = p;
      }
      plain(false);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    show();
    const timer = setInterval(() => {
      show();
      if (Date.now() - lastPlainAt >= plainEveryMs) plain(true);
    }, 500);
    let spawnError = null;
    child.on("error", (err) => (spawnError = err));
    child.on("close", (code) => {
      clearInterval(timer);
      if (pending) tail.push(pending);
      while (tail.length > 30) tail.shift();
      const elapsedMs = Date.now() - started;
      reporter.clear();
      const ok = code === 0 && !spawnError;
      if (ok) reporter.line(`${title} … ${formatElapsed(elapsedMs)}`);
      appendFileSync(
        logFile,
        `==== ${title}: ${ok ? "done" : `failed (${spawnError ? spawnError.message : `exit ${code}`})`} in ${formatElapsed(elapsedMs)}\n`,
      );
      resolve({ ok, code, error: spawnError, tail, output, elapsedMs });
    });
  });
}

/** Prints a failed step's last lines and where its whole output is. */
export function reportFailure(reporter, title, result, logFile) {
  const why = result.error ? (result.error.code === "ENOENT" ? "the program was not found" : result.error.message) : `exit ${result.code}`;
  reporter.error(`${title} failed (${why}) after ${formatElapsed(result.elapsedMs)}; its last lines:`);
  for (const l of result.tail) reporter.err.write(`    ${l}\n`);
  reporter.error(`the whole output is in ${logFile}`);
}

/**
 * Bundles one bin's TypeScript entry into `bundle` (ESM for Node 20) with esbuild: the
 * project's own modules (the package's src, @orchard/* workspaces, files it imports from
 * other folders) inlined, every other package left to node_modules, and records the sources
 * it was made from beside it (scripts/lib/launch.mjs: a bin uses the bundle only while they
 * are unchanged).
 */
export async function bundleEntry({ root, entry, bundle }) {
  const esbuild = await import("esbuild");
  const ownPackages = /^@orchard\//;
  const result = await esbuild.build({
    entryPoints: [path.join(root, entry)],
    outfile: path.join(root, bundle),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    absWorkingDir: root,
    metafile: true,
    logLevel: "silent",
    legalComments: "none",
    banner: { js: `// Built by scripts/build.mjs from ${entry}: do not edit (the bin runs ${entry} itself once a source changes).` },
    plugins: [
      {
        name: "node-modules-external",
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (args) => {
            if (ownPackages.test(args.path) || path.isAbsolute(args.path)) return undefined;
            return { path: args.path, external: true };
          });
        },
      },
    ],
  });
  const inputs = {};
  for (const rel of Object.keys(result.metafile.inputs).sort()) {
    const abs = path.resolve(root, rel);
    inputs[path.relative(root, abs)] = fileStamp(abs);
  }
  const out = path.join(root, bundle);
  writeFileSync(inputsFile(out), `${JSON.stringify({ entry, bundle: fileStamp(out), inputs }, null, 1)}\n`);
  return { inputs: Object.keys(inputs).length };
}
