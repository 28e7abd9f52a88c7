// Whether scripts/build.mjs must (re)configure the native build folder, and with which
// options. A configure is recorded in <build>/orchard-configure.json: "started" before
// cmake runs, "done" with its arguments only after it succeeded. So a folder is
// configured again when its last configure failed (a Makefile from an earlier success
// can still be there), when the options change (the ExecuTorch wheel appeared, the tests
// are asked for), or when nothing records how it was configured (by hand, or before
// this record existed: configured once, keeping its cached options).
//
// GoogleTest: native/CMakeLists.txt refuses to configure with ORCHARD_BUILD_TESTS=ON
// when it is missing, so only a caller that runs the tests (npm test: tests "on") asks
// for them; `npm install` (tests "off") never builds them, so it never needs GoogleTest;
// other builds (npm start, npm run build: "keep") keep what the folder had when its last
// configure succeeded, and go without the tests otherwise.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

export const CONFIGURE_RECORD = "orchard-configure.json";

function readRecord(file) {
  try {
    const record = JSON.parse(readFileSync(file, "utf8"));
    if ((record?.state === "started" || record?.state === "done") && Array.isArray(record.args)) return record;
  } catch {
    // missing or unreadable: no record
  }
  return null;
}

function writeRecord(file, record) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file);
}

const sameArgs = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * @param {{ root: string, buildDir?: string, sourceDir?: string, executorchCmake?: string | null, tests?: "on" | "off" | "keep" }} input
 *   buildDir/sourceDir relative to root (what cmake is given, run in root); executorchCmake: the wheel's share/cmake;
 *   tests: "on" the caller runs the native tests, "off" it must not need GoogleTest, "keep" (default) either.
 * @returns {{ configure: boolean, reason: string, args: string[], cleanCache: boolean }}
 */
export function planNativeConfigure({ root, buildDir = "native/build", sourceDir = "native", executorchCmake = null, tests = "keep" }) {
  const dir = path.join(root, buildDir);
  const cacheFile = path.join(dir, "CMakeCache.txt");
  const cache = existsSync(cacheFile) ? readFileSync(cacheFile, "utf8") : null;
  const generated = existsSync(path.join(dir, "Makefile")) || existsSync(path.join(dir, "build.ninja"));
  const record = readRecord(path.join(dir, CONFIGURE_RECORD));

  let withTests = false;
  if (tests === "on" || tests === "off") withTests = tests === "on";
  else if (record?.state === "done") withTests = record.args.includes("-DORCHARD_BUILD_TESTS=ON");
  else if (!record && cache) withTests = /^ORCHARD_BUILD_TESTS:BOOL=ON$/m.test(cache);

  const args = ["-S", sourceDir, "-B", buildDir, "-DCMAKE_BUILD_TYPE=Release", `-DORCHARD_BUILD_TESTS=${withTests ? "ON" : "OFF"}`];
  // Without the wheel, a folder configured by hand with ExecuTorch (a Pi's source install) keeps its cached options.
  if (executorchCmake) args.push("-DORCHARD_WITH_EXECUTORCH=ON", `-DCMAKE_PREFIX_PATH=${executorchCmake}`);

  let reason = null;
  if (cache === null) reason = "not configured yet";
  else if (!generated) reason = "the last configure did not finish (no Makefile or build.ninja)";
  else if (!record) reason = "no record of how it was configured";
  else if (record.state !== "done") reason = "the last configure did not succeed";
  else if (!sameArgs(record.args, args)) reason = "its options changed";
  return {
    configure: reason !== null,
    reason: reason ?? "configured with these options",
    args,
    // A cache without generated files is from a configure that failed half way: start clean.
    cleanCache: cache !== null && !generated,
  };
}

/** Before running cmake: a configure that does not reach recordConfigureDone counts as failed. */
export function recordConfigureStarted(root, plan, buildDir = "native/build") {
  writeRecord(path.join(root, buildDir, CONFIGURE_RECORD), { state: "started", args: plan.args });
}

/** After a build that failed: cmake may have re-run itself and failed, so the next build configures again. */
export function recordConfigureInvalid(root, buildDir = "native/build") {
  const file = path.join(root, buildDir, CONFIGURE_RECORD);
  const record = readRecord(file);
  if (record) writeRecord(file, { ...record, state: "started" });
}

/** After cmake succeeded. */
export function recordConfigureDone(root, plan, buildDir = "native/build") {
  writeRecord(path.join(root, buildDir, CONFIGURE_RECORD), { state: "done", args: plan.args });
}
