/**
 * Simulated model files end to end: scripts/sim-model.ts writes them, the real
 * native/build/orchard-runner loads them with `--backend sim --model FILE`, and the
 * reference ids simReferenceIds() computes are exactly what `--verify` (and so the
 * rollout health gate) accepts — and what a model with another token offset fails.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RunnerDone, RunnerMessage } from "@orchard/contracts";
import { REFERENCE_PROMPT, SIM_HEADER_MAX_BYTES, simHeaderLine, simReferenceIds, writeSimModel } from "../../scripts/sim-model.ts";
import { FAST_SIM, ROOT, RUNNER_BIN, RunnerProcess, assertRunnerBuilt, runOnce } from "./runner-process.ts";

const MiB = 1024 * 1024;
let dir: string;
const started: RunnerProcess[] = [];

beforeAll(async () => {
  assertRunnerBuilt();
  dir = await mkdtemp(path.join(tmpdir(), "orchard-sim-model-"));
});

afterEach(async () => {
  const runners = started.splice(0);
  try {
    for (const runner of runners) {
      const exit = await runner.close();
      expect(exit, `runner exit; stderr:\n${runner.stderr.slice(-2000)}`).toEqual({ code: 0, signal: null });
      expect(runner.streamProblems).toEqual([]);
    }
  } finally {
    for (const runner of runners) runner.kill();
  }
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function sha256File(file: string): Promise<string> {
  return createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
}

/** The generation's done line for the reference prompt, run by hand over the protocol. */
async function referenceRun(args: string[], maxNewTokens: number): Promise<RunnerDone> {
  const { runner, first } = await RunnerProcess.start(args);
  started.push(runner);
  expect(first.type).toBe("ready");
  runner.send({ type: "generate", id: "ref", messages: [{ role: "user", content: REFERENCE_PROMPT }], max_new_tokens: maxNewTokens });
  const last = (await runner.until((m: RunnerMessage) => m.type === "done" || m.type === "error", "done for ref")).at(-1)!;
  if (last.type !== "done") throw new Error(`reference run failed: ${JSON.stringify(last)}`);
  return last;
}

/** `npm run sim-model -- …` as an operator runs it (tsx, the real runner). */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(path.join(ROOT, "node_modules/.bin/tsx"), [path.join(ROOT, "scripts/sim-model.ts"), ...args], {
    cwd: ROOT,
    env: { ...process.env, ORCHARD_RUNNER_BIN: RUNNER_BIN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  return { code, stdout, stderr };
}

describe("writeSimModel", () => {
  it("writes the header line, then padding up to the exact size, and reports the file's sha256", async () => {
    const file = path.join(dir, "padded.sim");
    const header = { name: "padded", decode_tok_s: 25, prefill_tok_s: 400, load_ms: 5, token_offset: 0 };
    const written = await writeSimModel({ file, sizeBytes: 3 * MiB + 123, header });
    expect(written).toEqual({ file, sizeBytes: 3 * MiB + 123, sha256: await sha256File(file) });
    expect((await stat(file)).size).toBe(3 * MiB + 123);

    const bytes = await readFile(file);
    const newline = bytes.indexOf(0x0a);
    expect(newline).toBeGreaterThan(0);
    expect(newline).toBeLessThan(SIM_HEADER_MAX_BYTES);
    expect(JSON.parse(bytes.subarray(0, newline).toString("utf8"))).toEqual({ orchard_sim_model: 1, ...header });
    expect(bytes.subarray(0, newline + 1).toString("utf8")).toBe(simHeaderLine(header));
    // Random-ish padding: not one repeated byte, and no temporary file left behind.
    expect(new Set(bytes.subarray(newline + 1, newline + 4097)).size).toBeGreaterThan(64);
    expect((await readdir(dir)).filter((n) => n.startsWith("padded.sim"))).toEqual(["padded.sim"]);

    // Two files with the same header and size still differ (so their content addresses do).
    const again = await writeSimModel({ file: path.join(dir, "padded-2.sim"), sizeBytes: 3 * MiB + 123, header });
    expect(again.sha256).not.toBe(written.sha256);
  });

  it("refuses a size that cannot hold the header and header values the runner would refuse", async () => {
    await expect(writeSimModel({ file: path.join(dir, "tiny.sim"), sizeBytes: 10 })).rejects.toThrow(/cannot hold its 24-byte header/);
    await expect(writeSimModel({ file: path.join(dir, "bad.sim"), sizeBytes: MiB, header: { token_offset: 256 } })).rejects.toThrow();
    await expect(writeSimModel({ file: path.join(dir, "bad.sim"), sizeBytes: MiB, header: { decode_tok_s: 0 } })).rejects.toThrow();
    await expect(
      writeSimModel({ file: path.join(dir, "bad.sim"), sizeBytes: MiB, header: { colour: "red" } as unknown as { name: string } }),
    ).rejects.toThrow();
    expect((await readdir(dir)).filter((n) => n.startsWith("tiny.sim") || n.startsWith("bad.sim"))).toEqual([]);
  });
});

describe("orchard-runner --backend sim --model FILE", () => {
  it("loads a generated file: named from its header and labelled as the sim", async () => {
    const file = path.join(dir, "demo.sim");
    await writeSimModel({ file, sizeBytes: 2 * MiB, header: { name: "demo-7b v2", load_ms: 0, decode_tok_s: 5000, prefill_tok_s: 50000 } });
    const { runner, first } = await RunnerProcess.start(["--backend", "sim", "--model", file]);
    started.push(runner);
    expect(first).toMatchObject({ type: "ready", backend: "sim", model: "sim (demo-7b v2)", max_context: 2048 });
    const stderr = await runner.untilStderr(/sim: simulated model .*demo\.sim .*decode 5000 tok\/s, load 0 ms, token offset 0/);
    expect(stderr).not.toMatch(/warning/);

    // Without a name the file's name stands in; --model-name still wins.
    const unnamed = path.join(dir, "unnamed.sim");
    await writeSimModel({ file: unnamed, sizeBytes: 4096, header: { load_ms: 0 } });
    const a = await RunnerProcess.start(["--backend", "sim", "--model", unnamed]);
    started.push(a.runner);
    expect(a.first).toMatchObject({ type: "ready", model: "sim (unnamed.sim)" });
    const b = await RunnerProcess.start(["--backend", "sim", "--model", unnamed, "--model-name", "operator label"]);
    started.push(b.runner);
    expect(b.first).toMatchObject({ type: "ready", model: "operator label" });
  });

  it("lets --sim-* flags override the header", async () => {
    const file = path.join(dir, "slow.sim");
    await writeSimModel({ file, sizeBytes: 4096, header: { load_ms: 600_000, decode_tok_s: 0.01, prefill_tok_s: 0.01 } });
    // With the header's 10-minute load this would never become ready within the wait.
    const { runner, first } = await RunnerProcess.start(["--backend", "sim", "--model", file, ...FAST_SIM.slice(2)]);
    started.push(runner);
    expect(first.type).toBe("ready");
    await runner.untilStderr(/prefill 20000 tok\/s, decode 2000 tok\/s, load 10 ms/);
  });

  it("refuses clearly with load_failed: missing file, not a sim model, bad header, fail_load", async () => {
    const notSim = path.join(dir, "model.pte");
    await writeFile(notSim, Buffer.concat([Buffer.from([0, 0, 0, 0]), Buffer.from("ET12\n"), Buffer.alloc(1000)]));
    const badHeader = path.join(dir, "bad-header.sim");
    await writeFile(badHeader, '{"orchard_sim_model":1,"decode_tok_s":"fast"}\npadding');
    const oversize = path.join(dir, "oversize.sim");
    await writeFile(oversize, `{"orchard_sim_model":1,"pad":"${"p".repeat(5000)}"}\n`);
    const failing = path.join(dir, "fail.sim");
    await writeSimModel({ file: failing, sizeBytes: MiB, header: { fail_load: true, load_ms: 0 } });

    const cases: [string, string][] = [
      [path.join(dir, "missing.sim"), `no model file at ${path.join(dir, "missing.sim")}`],
      [notSim, `${notSim}: not a simulated model (the first line is not an orchard_sim_model header)`],
      [badHeader, `${badHeader}: bad simulated model header: "decode_tok_s" must be a number > 0`],
      [
        oversize,
        `${oversize}: not a simulated model (the first line is not an orchard_sim_model header); no line break in the first 4096 bytes (a header line must fit in them)`,
      ],
      [failing, "this simulated model is configured to fail loading"],
    ];
    for (const [file, message] of cases) {
      const result = await runOnce(["--backend", "sim", "--model", file]);
      expect(result.code, file).toBe(1);
      const lines = result.stdout.trimEnd().split("\n");
      expect(lines, file).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toEqual({ type: "error", code: "load_failed", message });
      expect(result.stderr).toContain(`load_failed: ${message}`);
    }
  });

  it("token_offset rotates every generated byte id and its text; control ids stay", async () => {
    const plain = path.join(dir, "plain.sim");
    const shifted = path.join(dir, "shifted.sim");
    await writeSimModel({ file: plain, sizeBytes: 8192, header: { load_ms: 0 } });
    await writeSimModel({ file: shifted, sizeBytes: 8192, header: { load_ms: 0, token_offset: 1 } });
    const fast = FAST_SIM.slice(2);
    const a = await referenceRun(["--backend", "sim", "--model", plain, ...fast], 400);
    const b = await referenceRun(["--backend", "sim", "--model", shifted, ...fast], 400);
    expect(a.finish_reason).toBe("stop");
    expect(b.finish_reason).toBe("stop");
    // The plain file behaves exactly like the sim without a model.
    const none = await referenceRun(FAST_SIM, 400);
    expect(a.token_ids).toEqual(none.token_ids);
    expect(b.token_ids).toEqual(a.token_ids.map((id) => (id < 256 ? (id + 1) % 256 : id)));
    expect(b.token_ids.every((id, i) => id !== a.token_ids[i] || id >= 256)).toBe(true);
  });
});

describe("simReferenceIds", () => {
  it("returns the ids --verify accepts, and a model with another token offset fails them", async () => {
    const v1 = path.join(dir, "v1.sim");
    const v2 = path.join(dir, "v2.sim");
    await writeSimModel({ file: v1, sizeBytes: MiB, header: { name: "v1", decode_tok_s: 0.5, load_ms: 0 } });
    await writeSimModel({ file: v2, sizeBytes: MiB, header: { name: "v2", token_offset: 7, load_ms: 0 } });

    const ids = await simReferenceIds({ runnerBin: RUNNER_BIN, modelFile: v1, prompt: REFERENCE_PROMPT, maxNewTokens: 12 });
    expect(ids).toHaveLength(12);
    // The same ids a hand-made protocol run gives (the header's slow rates do not change them).
    expect((await referenceRun(["--backend", "sim", "--model", v1, ...FAST_SIM.slice(2)], 12)).token_ids).toEqual(ids);

    const fast = FAST_SIM.slice(2);
    const pass = await runOnce(["--backend", "sim", "--model", v1, ...fast, "--verify", `--verify-ids=${ids.join(",")}`]);
    expect(pass.code, pass.stderr).toBe(0);
    expect(pass.stderr).toMatch(/verify: PASS/);

    const fail = await runOnce(["--backend", "sim", "--model", v2, ...fast, "--verify", `--verify-ids=${ids.join(",")}`]);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toMatch(/verify: FAIL/);
    const v2ids = await simReferenceIds({ modelFile: v2, maxNewTokens: 12 });
    expect(v2ids).toEqual(ids.map((id) => (id < 256 ? (id + 7) % 256 : id)));
  });

  it("rejects with the runner's reason when the model cannot be loaded", async () => {
    const failing = path.join(dir, "fail-ref.sim");
    await writeSimModel({ file: failing, sizeBytes: 4096, header: { fail_load: true } });
    await expect(simReferenceIds({ modelFile: failing })).rejects.toThrow(
      `${failing}: load_failed: this simulated model is configured to fail loading`,
    );
    await expect(simReferenceIds({ runnerBin: path.join(dir, "no-runner"), modelFile: failing })).rejects.toThrow(/no-runner is missing/);
  });
});

describe("npm run sim-model", () => {
  it("writes the file and prints its sha256 and the reference ids", async () => {
    const file = path.join(dir, "cli.sim");
    const result = await cli(["--out", file, "--size", "2MiB", "--name", "cli demo", "--token-offset", "3", "--decode-tok-s", "40"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await stat(file)).size).toBe(2 * MiB);
    const sha = await sha256File(file);
    expect(result.stdout).toContain(`wrote ${file}: ${2 * MiB} bytes, sha256 ${sha}`);
    expect(result.stdout).toContain('header: {"orchard_sim_model":1,"name":"cli demo","decode_tok_s":40,"token_offset":3}');
    const ids = await simReferenceIds({ modelFile: file, maxNewTokens: 16 });
    expect(result.stdout).toContain(`reference ids for "The capital of France is": ${JSON.stringify(ids)}`);

    const json = await cli(["--out", path.join(dir, "cli.json.sim"), "--size", "4096", "--fail-load", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      sizeBytes: 4096,
      runtime: "sim",
      runtimeVersion: "1",
      header: { fail_load: true },
      reference: null,
    });
  });

  it("explains bad flags and exits 2", async () => {
    const cases: [string[], string][] = [
      [["--size", "1MiB"], "--out FILE is required"],
      [["--out", path.join(dir, "x.sim")], "--size is required"],
      [["--out", path.join(dir, "x.sim"), "--size", "lots"], '--size needs a byte count like 67108864, 64MiB or 1GiB, not "lots"'],
      [["--out", path.join(dir, "x.sim"), "--size", "10"], "--size 10 is smaller than the 24-byte header"],
      [
        ["--out", path.join(dir, "x.sim"), "--size", "1MiB", "--token-offset", "300"],
        '--token-offset needs an integer from 0 to 255, not "300"',
      ],
      [["--out", path.join(dir, "x.sim"), "--size", "1MiB", "--decode-tok-s", "0"], '--decode-tok-s needs a number > 0, not "0"'],
      [["--out", path.join(dir, "x.sim"), "--size", "1MiB", "--bogus"], "Unknown option '--bogus'"],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr).toContain("usage: npm run sim-model");
    }
    expect((await readdir(dir)).some((n) => n.startsWith("x.sim"))).toBe(false);
  });
});
