/**
 * scripts/build.mjs's decision whether to (re)configure native/build, on scratch
 * folders: a build folder is configured again when its last configure failed (even
 * with a Makefile left from an earlier one), when the options change, and never
 * needs GoogleTest unless the caller asks for the tests.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  CONFIGURE_RECORD,
  planNativeConfigure,
  recordConfigureDone,
  recordConfigureInvalid,
  recordConfigureStarted,
} from "../../scripts/lib/native-configure.mjs";

const roots: string[] = [];
afterEach(async () => {
  for (const dir of roots.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A scratch checkout root with native/build holding `files`. */
async function root(files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-configure-"));
  roots.push(dir);
  await mkdir(path.join(dir, "native/build"), { recursive: true });
  for (const [name, body] of Object.entries(files)) await writeFile(path.join(dir, "native/build", name), body);
  return dir;
}
const CACHE_TESTS_ON = "ORCHARD_BUILD_TESTS:BOOL=ON\nORCHARD_WITH_EXECUTORCH:BOOL=OFF\n";
const CACHE_TESTS_OFF = "ORCHARD_BUILD_TESTS:BOOL=OFF\nORCHARD_WITH_EXECUTORCH:BOOL=OFF\n";

/** Configures `dir` as build.mjs does when it succeeds: record started, (cmake), record done. */
async function configured(dir: string, opts: { tests?: "on" | "off" | "keep"; executorchCmake?: string | null } = {}) {
  const plan = planNativeConfigure({ root: dir, ...opts });
  recordConfigureStarted(dir, plan);
  await writeFile(
    path.join(dir, "native/build/CMakeCache.txt"),
    plan.args.includes("-DORCHARD_BUILD_TESTS=ON") ? CACHE_TESTS_ON : CACHE_TESTS_OFF,
  );
  await writeFile(path.join(dir, "native/build/Makefile"), "all:\n");
  recordConfigureDone(dir, plan);
  return plan;
}

describe("planNativeConfigure", () => {
  it("configures an empty build folder, without the tests unless they are asked for", async () => {
    const dir = await root();
    const install = planNativeConfigure({ root: dir, tests: "off" });
    expect(install).toMatchObject({ configure: true, cleanCache: false });
    expect(install.args).toContain("-DORCHARD_BUILD_TESTS=OFF"); // npm install never needs GoogleTest
    expect(planNativeConfigure({ root: dir }).args).toContain("-DORCHARD_BUILD_TESTS=OFF");
    expect(planNativeConfigure({ root: dir, tests: "on" }).args).toContain("-DORCHARD_BUILD_TESTS=ON");
  });

  it("reconfigures from scratch a folder with CMakeCache.txt but no Makefile (a configure that failed half way)", async () => {
    const dir = await root({ "CMakeCache.txt": CACHE_TESTS_ON });
    expect(planNativeConfigure({ root: dir })).toMatchObject({ configure: true, cleanCache: true });
  });

  it("leaves a folder alone whose last configure succeeded with the same options", async () => {
    const dir = await root();
    await configured(dir);
    expect(planNativeConfigure({ root: dir })).toMatchObject({ configure: false });
    await configured(dir, { tests: "on" });
    expect(planNativeConfigure({ root: dir, tests: "on" })).toMatchObject({ configure: false });
    // npm start keeps a folder that has the tests (no reconfigure back and forth)…
    const plain = planNativeConfigure({ root: dir });
    expect(plain).toMatchObject({ configure: false });
    expect(plain.args).toContain("-DORCHARD_BUILD_TESTS=ON");
    // …npm install goes without them, so it never depends on GoogleTest still being there.
    const install = planNativeConfigure({ root: dir, tests: "off" });
    expect(install).toMatchObject({ configure: true });
    expect(install.args).toContain("-DORCHARD_BUILD_TESTS=OFF");
  });

  it("reconfigures after a build failed (cmake re-runs itself during the build and can fail there)", async () => {
    const dir = await root();
    await configured(dir, { tests: "on" });
    recordConfigureInvalid(dir);
    expect(planNativeConfigure({ root: dir, tests: "on" })).toMatchObject({
      configure: true,
      reason: "the last configure did not succeed",
    });
  });

  it("reconfigures when the last configure failed, even with a Makefile left from an earlier one", async () => {
    const dir = await root();
    await configured(dir);
    // e.g. `npm test` asked for the tests and GoogleTest was missing: configure started and failed.
    recordConfigureStarted(dir, planNativeConfigure({ root: dir, tests: "on" }));
    const again = planNativeConfigure({ root: dir, tests: "on" });
    expect(again).toMatchObject({ configure: true, cleanCache: false });
    expect(again.reason).toMatch(/did not succeed/);
    // And a build that does not need the tests goes back to a configure without them.
    const install = planNativeConfigure({ root: dir, tests: "keep" });
    expect(install).toMatchObject({ configure: true });
    expect(install.args).toContain("-DORCHARD_BUILD_TESTS=OFF");
  });

  it("reconfigures when the options change (the ExecuTorch wheel appeared, the tests are asked for)", async () => {
    const dir = await root();
    await configured(dir);
    const withEt = planNativeConfigure({ root: dir, executorchCmake: "/venv/executorch/share/cmake" });
    expect(withEt).toMatchObject({ configure: true });
    expect(withEt.reason).toMatch(/options changed/);
    expect(withEt.args).toEqual(
      expect.arrayContaining(["-DORCHARD_WITH_EXECUTORCH=ON", "-DCMAKE_PREFIX_PATH=/venv/executorch/share/cmake"]),
    );
    expect(planNativeConfigure({ root: dir, tests: "on" })).toMatchObject({ configure: true });
  });

  it("configures once a folder configured by hand (no record), keeping the tests it was configured with", async () => {
    const dir = await root({ "CMakeCache.txt": CACHE_TESTS_ON, Makefile: "all:\n" });
    const plan = planNativeConfigure({ root: dir });
    expect(plan).toMatchObject({ configure: true, cleanCache: false });
    expect(plan.args).toContain("-DORCHARD_BUILD_TESTS=ON");
    expect(CONFIGURE_RECORD).toBe("orchard-configure.json");
  });
});
