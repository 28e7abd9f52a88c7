/**
 * The pieces of scripts/build.mjs on their own: progress parsing and elapsed times, the
 * step runner (output into the log, one line per step, the failed step's last lines),
 * the reason named when the runner cannot be built, input fingerprints (a start skips a
 * build nothing changed for), and the bundles' freshness check the bins use.
 */
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  fingerprint,
  formatElapsed,
  nativeFailureReason,
  parseCompileProgress,
  parseNextPhase,
  Reporter,
  reportFailure,
  runStep,
  runnerNotBuiltSentence,
} from "../../scripts/lib/build-steps.mjs";
import { bundleStaleReason, fileStamp, inputsFile } from "../../scripts/lib/launch.mjs";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function scratch(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), "orchard-build-steps-"));
  dirs.push(d);
  return d;
}

/** A Reporter writing into strings. */
function capture(live: boolean) {
  const out = { text: "" };
  const err = { text: "" };
  const reporter = new Reporter({
    out: { write: (s: string) => ((out.text += s), true) } as unknown as NodeJS.WritableStream,
    err: { write: (s: string) => ((err.text += s), true) } as unknown as NodeJS.WritableStream,
    live,
  });
  return { reporter, out, err };
}

describe("progress and elapsed times", () => {
  it("formats seconds below a minute and m/s above", () => {
    expect(formatElapsed(3140)).toBe("3.1 s");
    expect(formatElapsed(80_000)).toBe("1m20s");
    expect(formatElapsed(151_000)).toBe("2m31s");
  });

  it("reads CMake's Makefile and Ninja progress", () => {
    expect(parseCompileProgress("[ 40%] Building CXX object CMakeFiles/orchard_core.dir/src/app.cpp.o")).toEqual({ percent: 40 });
    expect(parseCompileProgress("[100%] Built target orchard-runner")).toEqual({ percent: 100 });
    expect(parseCompileProgress("[12/30] Building CXX object x.o")).toEqual({ percent: 40, done: 12, total: 30 });
    expect(parseCompileProgress("-- Configuring done")).toBeNull();
  });

  it("names next build's phases", () => {
    expect(parseNextPhase("   Creating an optimized production build ...")).toBe("compiling");
    expect(parseNextPhase(" ✓ Compiled successfully in 52s")).toBe("compiled");
    expect(parseNextPhase("   Generating static pages (3/12) ")).toBe("generating pages 3/12");
    expect(parseNextPhase("Route (app)")).toBeNull();
  });
});

describe("runStep", () => {
  it("sends the tool's output to the log and prints one line with the elapsed time (plain output)", async () => {
    const dir = await scratch();
    const log = path.join(dir, "build.log");
    await writeFile(log, "");
    const { reporter, out } = capture(false);
    const script = "for (const p of [10, 55, 100]) console.log(`[${String(p).padStart(3)}%] Building CXX object f${p}.o`)";
    const r = await runStep({
      reporter,
      title: "native runner: compile",
      cmd: process.execPath,
      args: ["-e", script],
      cwd: dir,
      logFile: log,
      progress: (l: string) => (parseCompileProgress(l) ? `${parseCompileProgress(l)!.percent}%` : null),
    });
    expect(r.ok).toBe(true);
    const logText = await readFile(log, "utf8");
    expect(logText, "the compiler's lines belong in the log").toContain("Building CXX object f55.o");
    expect(out.text, "the compiler's lines are not printed").not.toContain("Building CXX object");
    expect(out.text).toMatch(/\[build\] native runner: compile 100% \d+\.\d s\n/);
    expect(out.text).toMatch(/\[build\] native runner: compile … \d+\.\d s\n$/);
    expect(out.text, "no carriage returns when not on a terminal").not.toContain("\r");
  });

  it("redraws one line in place on a terminal", async () => {
    const dir = await scratch();
    const log = path.join(dir, "build.log");
    await writeFile(log, "");
    const { reporter, out } = capture(true);
    const r = await runStep({
      reporter,
      title: "dashboard (next build)",
      cmd: process.execPath,
      args: ["-e", "setTimeout(() => {}, 700)"],
      cwd: dir,
      logFile: log,
    });
    expect(r.ok).toBe(true);
    expect(out.text).toContain("\r[build] dashboard (next build) ");
    expect(out.text).toMatch(/\[build\] dashboard \(next build\) … \d+\.\d s\n$/);
  });

  it("on failure prints the step's last lines and the log's path", async () => {
    const dir = await scratch();
    const log = path.join(dir, "build.log");
    await writeFile(log, "");
    const { reporter, err } = capture(false);
    const script = "for (let i = 1; i <= 50; i++) console.error(`line ${i}`); process.exit(3)";
    const r = await runStep({
      reporter,
      title: "native runner: configure",
      cmd: process.execPath,
      args: ["-e", script],
      cwd: dir,
      logFile: log,
    });
    expect(r.ok).toBe(false);
    reportFailure(reporter, "native runner: configure", r, log);
    expect(err.text).toContain("native runner: configure failed (exit 3)");
    expect(err.text).toContain("    line 50\n");
    expect(err.text).toContain("    line 21\n");
    expect(err.text, "only the last 30 lines").not.toContain("    line 20\n");
    expect(err.text).toContain(`the whole output is in ${log}`);
  });

  it("a program that is not installed is a failed step, not a crash", async () => {
    const dir = await scratch();
    const log = path.join(dir, "build.log");
    await writeFile(log, "");
    const { reporter, err } = capture(false);
    const r = await runStep({ reporter, title: "x", cmd: "orchard-no-such-program", args: [], cwd: dir, logFile: log });
    expect(r.ok).toBe(false);
    reportFailure(reporter, "x", r, log);
    expect(err.text).toContain("x failed (the program was not found)");
  });
});

describe("why the runner was not built", () => {
  it("names nlohmann-json3-dev from cmake's message, and the sentence says what to install", () => {
    const cmake =
      'CMake Error at CMakeLists.txt:30 (find_package):\n  Could not find a package configuration file provided by "nlohmann_json"\n  (requested version 3.10) with any of the following names:';
    const reason = nativeFailureReason("configure", cmake);
    expect(reason).toBe("nlohmann-json3-dev is not installed");
    const sentence = runnerNotBuiltSentence(reason);
    expect(sentence).toMatch(/^orchard-runner was not built: nlohmann-json3-dev is not installed; /);
    expect(sentence).toContain("sudo apt-get install cmake g++ nlohmann-json3-dev");
    expect(sentence).toContain("npm run build");
    expect(sentence.split(/\.\s/), "one sentence").toHaveLength(1);
    expect(nativeFailureReason("build", "error: expected ';'")).toBe("compiling it failed");
  });
});

describe("fingerprint", () => {
  it("changes with a file's content, not with its mtime, and leaves skipped files out", async () => {
    const dir = await scratch();
    await mkdir(path.join(dir, "src/generated"), { recursive: true });
    await writeFile(path.join(dir, "src/a.ts"), "a");
    await writeFile(path.join(dir, "src/generated/g.ts"), "g");
    const skip = (p: string) => p.includes("generated");
    const first = fingerprint(dir, ["src", "missing.json"], { skip });
    await utimes(path.join(dir, "src/a.ts"), new Date(), new Date(Date.now() + 5000));
    expect(fingerprint(dir, ["src", "missing.json"], { skip }), "touched, same content").toBe(first);
    await writeFile(path.join(dir, "src/generated/g.ts"), "changed");
    expect(fingerprint(dir, ["src", "missing.json"], { skip }), "a skipped file").toBe(first);
    expect(fingerprint(dir, ["src"], { skip, extra: ["-DORCHARD_BUILD_TESTS=ON"] }), "other options").not.toBe(first);
    await writeFile(path.join(dir, "src/a.ts"), "b");
    expect(fingerprint(dir, ["src", "missing.json"], { skip })).not.toBe(first);
  });
});

describe("bundleStaleReason (which program a bin runs)", () => {
  it("is null while every recorded source is unchanged, and names the one that changed", async () => {
    const dir = await scratch();
    await mkdir(path.join(dir, "apps/x/src"), { recursive: true });
    await mkdir(path.join(dir, "apps/x/dist"), { recursive: true });
    const src = path.join(dir, "apps/x/src/main.ts");
    const bundle = path.join(dir, "apps/x/dist/x.mjs");
    await writeFile(src, "console.log(1)");
    await writeFile(bundle, "console.log(1)");
    expect(bundleStaleReason(bundle, dir)).toBe("not built");
    await writeFile(inputsFile(bundle), JSON.stringify({ bundle: fileStamp(bundle), inputs: { "apps/x/src/main.ts": fileStamp(src) } }));
    expect(bundleStaleReason(bundle, dir)).toBeNull();
    await writeFile(src, "console.log(22)");
    expect(bundleStaleReason(bundle, dir)).toBe("apps/x/src/main.ts changed");
    await rm(src);
    expect(bundleStaleReason(bundle, dir)).toBe("apps/x/src/main.ts changed");
  });
});
