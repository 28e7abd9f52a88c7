/**
 * scripts/build.mjs for real, in a scratch copy of the checkout (its files, node_modules
 * linked), on a machine where cmake cannot find nlohmann-json (a CMake toolchain file
 * given through CMAKE_TOOLCHAIN_FILE hides every installed CMake package, as on a
 * machine without nlohmann-json3-dev). `npm install`'s build goes on without the runner
 * and says why in one sentence; `npm run build` fails with the sentence, cmake's last
 * lines and the log's path. The CLI and agent bundles are built, skipped when nothing
 * changed, and the bins run them only while their sources are unchanged.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, cp, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DASHBOARD_INPUTS, dashboardInputSkip, fingerprint } from "../../scripts/lib/build-steps.mjs";
import { ROOT } from "../support/harness.ts";

let copy: string;
let toolchain: string;

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(cmd, args, {
    cwd: copy,
    // CI=true: plain lines, as in CI and under npm install when stdout is no terminal.
    env: { ...process.env, CI: "true", ORCHARD_SKIP_UI_BUILD: "1", CMAKE_TOOLCHAIN_FILE: toolchain, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

beforeAll(async () => {
  copy = await mkdtemp(path.join(os.tmpdir(), "orchard-build-"));
  const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((f) => f && existsSync(path.join(ROOT, f)));
  for (const f of files) await cp(path.join(ROOT, f), path.join(copy, f), { force: true });
  // The Prisma client as installed (after the schema it was made from: prisma generate is skipped).
  await cp(path.join(ROOT, "apps/web/src/server/db/generated"), path.join(copy, "apps/web/src/server/db/generated"), { recursive: true });
  await symlink(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
  const empty = path.join(copy, ".no-packages");
  await mkdir(empty);
  toolchain = path.join(copy, "hide-packages.cmake");
  await writeFile(toolchain, `set(CMAKE_FIND_ROOT_PATH "${empty}")\nset(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n`);
}, 120_000);

afterAll(async () => {
  if (copy) await rm(copy, { recursive: true, force: true });
});

// The tests run in order on one copy: each starts from what the one before left.
describe("scripts/build.mjs without nlohmann-json", () => {
  it("npm install's build (--install) succeeds without the runner and says why in one sentence", async () => {
    const r = await run(process.execPath, ["scripts/build.mjs", "--install"]);
    expect(r.code, `exit code\n${r.out}\n${r.err}`).toBe(0);
    const sentence = r.out.split("\n").find((l) => l.includes("orchard-runner was not built"));
    expect(sentence, r.out).toMatch(
      /^\[build\] orchard-runner was not built: nlohmann-json3-dev is not installed; .*sudo apt-get install cmake g\+\+ nlohmann-json3-dev.*npm run build/,
    );
    expect(r.out).toContain("[build] native runner: configuring native/build (not configured yet)");
    expect(r.err, "the failed step with its elapsed time").toMatch(/\[build\] native runner: configure failed \(exit 1\) after \d+\.\d s/);
    expect(r.err, "cmake's last lines").toContain("Configuring incomplete, errors occurred!");
    expect(r.err).toContain(`the whole output is in ${path.join(copy, ".orchard/build.log")}`);
    const log = await readFile(path.join(copy, ".orchard/build.log"), "utf8");
    expect(log, "cmake's output went to the log").toContain('provided by "nlohmann_json"');
    expect(r.out, "cmake's output is not printed").not.toContain("Could not find a package configuration file");
    expect(existsSync(path.join(copy, "native/build/orchard-runner"))).toBe(false);
    for (const f of ["apps/cli/dist/orchard.mjs", "apps/agent/dist/orchard-agent.mjs", "apps/agent/dist/orchard-llama-runner.mjs"]) {
      expect(existsSync(path.join(copy, f)), `${f} was built`).toBe(true);
    }
  });

  it("without cmake on the PATH the sentence says so", async () => {
    const r = await run(process.execPath, ["scripts/build.mjs", "--install"], { PATH: path.join(copy, ".no-packages") });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(
      /\[build\] orchard-runner was not built: cmake is not installed; .*sudo apt-get install cmake g\+\+ nlohmann-json3-dev/,
    );
  });

  it("npm run demo says the sim agents need the runner and how to get it (or to use llama.cpp)", async () => {
    const r = await run(process.execPath, ["--import", "tsx", "scripts/demo.ts"], { ORCHARD_DEMO_RUNNER: "" });
    expect(r.code).toBe(2);
    expect(r.err).toContain("demo: the sim agents need orchard-runner (native/build/orchard-runner), which is not built");
    expect(r.err).toContain("ORCHARD_DEMO_RUNNER=llamacpp npm run demo");
  });

  it("npm run build (no flag) fails with the same sentence", async () => {
    const r = await run(process.execPath, ["scripts/build.mjs"]);
    expect(r.code).toBe(1);
    expect(r.out, "the failed configure is tried again, from a clean cache").toContain(
      "[build] native runner: configuring native/build (the last configure did not finish (no Makefile or build.ninja))",
    );
    expect(r.err).toMatch(/\[build\] orchard-runner was not built: nlohmann-json3-dev is not installed; /);
  });

  it("the bundles are skipped when nothing changed, the bins run them, and a changed source wins over a stale bundle", async () => {
    const again = await run(process.execPath, ["scripts/build.mjs", "--install"]);
    expect(again.out).toContain("[build] CLI and agent (dist) are up to date");

    const cli = path.join(copy, "apps/cli/bin/orchard.mjs");
    const fromDist = await run(process.execPath, [cli, "--help"], { ORCHARD_LAUNCH_DEBUG: "1" });
    expect(fromDist.code).toBe(0);
    expect(fromDist.err).toContain("launch: orchard from dist/orchard.mjs");
    expect(fromDist.out).toContain("usage: orchard <command>");
    const agent = await run(process.execPath, [path.join(copy, "apps/agent/bin/orchard-agent.mjs"), "--version"], {
      ORCHARD_LAUNCH_DEBUG: "1",
    });
    expect(agent.err).toContain("launch: orchard-agent from dist/orchard-agent.mjs");
    expect(agent.out.trim(), "the bundle finds the agent's package.json").toMatch(/^\d+\.\d+\.\d+/);

    await appendFile(path.join(copy, "apps/cli/src/format.ts"), "\n// edited\n");
    const fromSource = await run(process.execPath, [cli, "--help"], { ORCHARD_LAUNCH_DEBUG: "1" });
    expect(fromSource.code).toBe(0);
    expect(fromSource.err).toContain("launch: orchard from source (apps/cli/src/format.ts changed)");
    expect(fromSource.out).toContain("usage: orchard <command>");

    const rebuilt = await run(process.execPath, ["scripts/build.mjs", "--install"]);
    expect(rebuilt.out, "only the CLI's bundle is rebuilt").toMatch(/\[build\] CLI \(esbuild → apps\/cli\/dist\) … \d/);
    const after = await run(process.execPath, [cli, "--help"], { ORCHARD_LAUNCH_DEBUG: "1" });
    expect(after.err).toContain("launch: orchard from dist/orchard.mjs");
  });

  it("skips next build while the dashboard's inputs match the last build's stamp, and builds (here: fails, with its last lines) once one changed", async () => {
    const next = path.join(copy, "apps/web/.next");
    await mkdir(next, { recursive: true });
    await writeFile(path.join(next, "BUILD_ID"), "test");
    // Older than every source: only the stamp can say the build is current.
    await utimes(path.join(next, "BUILD_ID"), new Date(2000, 0, 1), new Date(2000, 0, 1));
    const stamp = fingerprint(copy, DASHBOARD_INPUTS, { skip: dashboardInputSkip });
    await writeFile(path.join(next, "orchard-build-stamp.json"), JSON.stringify({ inputs: stamp }));
    const same = await run(process.execPath, ["scripts/build.mjs", "--start"], { ORCHARD_SKIP_UI_BUILD: "" });
    expect(same.code, same.err).toBe(0);
    expect(same.out).toContain("[build] dashboard is up to date");

    await appendFile(path.join(copy, "apps/web/next.config.ts"), "\nthis is not TypeScript (\n");
    const changed = await run(process.execPath, ["scripts/build.mjs", "--start"], { ORCHARD_SKIP_UI_BUILD: "" });
    expect(changed.code).toBe(1);
    expect(changed.err).toMatch(/\[build\] dashboard \(next build\) failed \(exit \d+\) after \d/);
    expect(changed.err).toContain(`the whole output is in ${path.join(copy, ".orchard/build.log")}`);
    expect(changed.err).toContain("[build] the dashboard could not be built");
  });
});
