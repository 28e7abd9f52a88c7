/**
 * Benchmark runs against a real database (PGlite, and PostgreSQL when
 * ORCHARD_TEST_POSTGRES_URL is set), with a fake clock and a recorder in place of the
 * MQTT link; device events go through the fleet as ingestion delivers them. The real
 * link and agents are exercised in test/integration/bench.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BENCH_DEFAULT_MAX_NEW_TOKENS,
  BENCH_STANDARD_PROMPTS,
  type BenchDeviceResult,
  type BenchRunDto,
  type DeviceCommand,
  type RunnerStatus,
} from "@orchard/contracts";
import { BENCH_COLUMNS } from "@orchard/client";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { BenchmarkService, defaultRunName, exportFileName } from "./benchmarks.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";

const log = createLogger("error");
const T0 = Date.UTC(2026, 10, 28, 6, 40, 12);
const STALL_MS = 10 * 60_000;
const ready: RunnerStatus = {
  state: "ready",
  backend: "sim",
  model: "sim (no model)",
  pid: 1,
  rssBytes: 1,
  maxContext: 2048,
  loadMs: 40,
  restarts: 0,
  lastError: null,
  version: "0.1.0",
};
const board = { socTempC: null, throttleRaw: null, cpuFreqHz: null, boardPowerW: null };

function resultFor(promptIds: string[], decode = 20): BenchDeviceResult {
  return {
    backend: "sim",
    runnerVersion: "0.1.0",
    model: "sim (no model)",
    modelSha256: null,
    loadMs: 40,
    before: { ...board, socTempC: 50.5, throttleRaw: 0 },
    after: { ...board, socTempC: 61.25, throttleRaw: 0x20002 },
    prompts: promptIds.map((promptId, i) => ({
      promptId,
      promptTokens: 6 + i,
      generatedTokens: 9,
      ttftMs: 120 + i,
      prefillTokS: 400,
      decodeTokS: decode + i,
      totalMs: 600,
      peakRssBytes: 64 * 2 ** 20,
      energyJPerToken: null,
      finishReason: "length",
      textPreview: "Paris.",
    })),
  };
}

describe.each(DB_KINDS)("benchmarks on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let bench: BenchmarkService;
  let now: number;
  let sent: { deviceId: string; command: DeviceCommand }[];
  let failSendTo: Set<string>;
  let changes: BenchRunDto[];
  let enrollment: EnrollmentService;

  const newService = () => {
    const s = new BenchmarkService(
      db.prisma,
      fleet,
      async (deviceId, command) => {
        if (failSendTo.has(deviceId)) throw new Error("broker unreachable");
        sent.push({ deviceId, command });
      },
      { stallTimeoutMs: STALL_MS, emitCoalesceMs: 60_000 },
      log,
      () => now,
    );
    s.on("changed", (run) => changes.push(run));
    return s;
  };

  async function enroll(name: string, runner: RunnerStatus = ready, online = true): Promise<string> {
    const { token } = await enrollment.createToken({ ttlMinutes: 5, createdById: null, deviceName: name });
    const { deviceId } = await enrollment.enroll({ token, hostname: name, arch: "arm64", agentVersion: "1" }, "mqtt://h:1");
    if (online)
      fleet.applyStatus(deviceId, {
        state: "online",
        ts: now,
        agentVersion: "1",
        hostname: name,
        arch: "arm64",
        runner,
        activeModel: null,
      });
    return deviceId;
  }

  /** What the agent sends, delivered the way ingestion delivers it. */
  const progress = (deviceId: string, runId: string, completed: number, total = 4) =>
    fleet.applyEvent(deviceId, { kind: "bench.progress", ts: now, runId, completed, total });
  const result = (deviceId: string, runId: string, r: BenchDeviceResult | null, error: string | null = null) =>
    fleet.applyEvent(deviceId, { kind: "bench.result", ts: now, runId, ok: error === null, error, result: r });
  const stored = async (runId: string) => {
    await bench.idle();
    return bench.get(runId);
  };
  const ids = BENCH_STANDARD_PROMPTS.map((p) => p.id);

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = T0;
    sent = [];
    failSendTo = new Set();
    changes = [];
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    enrollment = new EnrollmentService(db.prisma, fleet);
    bench = newService();
  });
  afterEach(async () => {
    await bench.close();
    await db.close();
  });

  it("stores the run, sends bench.run to each ready device and fails the others at once with the reason", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const off = await enroll("pi-off", ready, false);
    const loading = await enroll("pi-loading", { ...ready, state: "starting" });
    const run = await bench.create({ deviceIds: [a, b, off, loading, a] });

    expect(run.name).toBe("Benchmark 2026-11-28 06:40 UTC");
    expect(run.state).toBe("running");
    expect(run.maxNewTokens).toBe(BENCH_DEFAULT_MAX_NEW_TOKENS);
    expect(run.prompts).toEqual(BENCH_STANDARD_PROMPTS);
    expect(run.devices.map((d) => [d.deviceName, d.state, d.total])).toEqual([
      ["pi-a", "pending", 4],
      ["pi-b", "pending", 4],
      ["pi-loading", "failed", 4],
      ["pi-off", "failed", 4],
    ]);
    expect(run.devices.find((d) => d.deviceId === off)!.error).toBe("pi-off was offline when the run started.");
    expect(run.devices.find((d) => d.deviceId === loading)!.error).toMatch(/loading its model/);

    // One command per ready device (a repeated id counts once), each carrying the run id.
    expect(sent.map((s) => s.deviceId).sort()).toEqual([a, b].sort());
    for (const s of sent) {
      expect(s.command).toMatchObject({ type: "bench.run", runId: run.id, maxNewTokens: 64, prompts: BENCH_STANDARD_PROMPTS, ts: T0 });
    }
    expect(new Set(sent.map((s) => s.command.id)).size).toBe(2);
    expect(changes.at(-1)).toEqual(run);
    expect(await bench.list()).toEqual([
      expect.objectContaining({ id: run.id, state: "running", devices: 4, done: 0, failed: 2, promptCount: 4, finishedAt: null }),
    ]);
  });

  it("follows progress and results to a finished run, and ignores what comes after", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ name: "  Before the firmware update ", deviceIds: [a, b], maxNewTokens: 16 });
    expect(run.name).toBe("Before the firmware update");
    expect(sent[0]!.command).toMatchObject({ maxNewTokens: 16 });

    now += 1_000;
    progress(a, run.id, 1);
    progress(a, run.id, 2);
    let r = await stored(run.id);
    expect(r.devices[0]).toMatchObject({ state: "running", completed: 2, total: 4, startedAt: now, finishedAt: null });
    expect(r.devices[1]).toMatchObject({ state: "pending", completed: 0, startedAt: null });
    expect(changes.at(-1)!.devices[0]!.completed).toBe(2); // announced after it was stored

    now += 1_000;
    result(a, run.id, resultFor(ids));
    r = await stored(run.id);
    expect(r.devices[0]).toMatchObject({ state: "done", completed: 4, error: null, finishedAt: now, startedAt: now - 1_000 });
    expect(r.devices[0]!.result).toEqual(resultFor(ids));
    expect(r.state).toBe("running");

    progress(a, run.id, 3); // after its result: ignored
    result(b, run.id, resultFor(ids, 30));
    r = await stored(run.id);
    expect(r.state).toBe("finished");
    expect(r.devices.map((d) => [d.state, d.completed])).toEqual([
      ["done", 4],
      ["done", 4],
    ]);
    expect(changes.at(-1)).toEqual(r);
    expect(bench.waitingCount()).toBe(0);
    expect((await bench.list())[0]).toMatchObject({ state: "finished", done: 2, failed: 0, finishedAt: now });
  });

  it("records a device's failure with its reason and the prompts it finished", async () => {
    const a = await enroll("pi-a");
    const run = await bench.create({ deviceIds: [a] });
    result(a, run.id, resultFor(ids.slice(0, 1)), "the runner exited during prompt short-answer");
    const r = await stored(run.id);
    expect(r.state).toBe("finished");
    expect(r.devices[0]).toMatchObject({ state: "failed", completed: 1, error: "the runner exited during prompt short-answer" });
    expect(r.devices[0]!.result!.prompts.map((p) => p.promptId)).toEqual(["capital-of-france"]);
  });

  it("fails a device that goes offline during the run", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ deviceIds: [a, b] });
    progress(a, run.id, 1);
    fleet.applyStatus(a, { state: "offline", reason: "lost" });
    result(a, run.id, resultFor(ids)); // too late: the run gave up on it
    let r = await stored(run.id);
    expect(r.devices[0]).toMatchObject({ state: "failed", error: "pi-a went offline during the run.", completed: 1, result: null });
    expect(r.state).toBe("running");
    result(b, run.id, resultFor(ids));
    r = await stored(run.id);
    expect(r.state).toBe("finished");
  });

  it("fails a device that makes no progress for the stall timeout; progress restarts the timer", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ deviceIds: [a, b] });
    now += STALL_MS - 1_000;
    progress(a, run.id, 1);
    now += 2_000;
    bench.checkStalls();
    let r = await stored(run.id);
    expect(r.devices[0]!.state).toBe("running");
    expect(r.devices[1]).toMatchObject({ state: "failed", error: "pi-b reported no progress for 10 min; the run stopped waiting for it." });
    now += STALL_MS + 1;
    bench.checkStalls();
    r = await stored(run.id);
    expect(r.devices[0]!.state).toBe("failed");
    expect(r.state).toBe("finished");
  });

  it("ignores events for runs and devices it does not know", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ deviceIds: [a] });
    progress(a, "no-such-run", 1);
    result(a, "no-such-run", resultFor(ids));
    result(b, run.id, resultFor(ids)); // b is not part of this run
    const r = await stored(run.id);
    expect(r.devices).toHaveLength(1);
    expect(r.devices[0]).toMatchObject({ deviceId: a, state: "pending" });
    expect(await db.prisma.benchmarkDeviceRun.count()).toBe(1);
  });

  it("fails a device whose agent refuses the command, and one the command could not be sent to", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    failSendTo.add(b);
    const run = await bench.create({ deviceIds: [a, b] });
    expect(run.devices[1]).toMatchObject({ state: "failed", error: "Could not send the benchmark to pi-b: broker unreachable" });
    fleet.applyEvent(a, {
      kind: "command.result",
      ts: now,
      commandId: sent[0]!.command.id,
      ok: false,
      message: 'unsupported command type "bench.run"',
    });
    const r = await stored(run.id);
    expect(r.devices[0]).toMatchObject({ state: "failed", error: 'pi-a refused the benchmark: unsupported command type "bench.run"' });
    expect(r.state).toBe("finished");
  });

  it("is finished at once when no device can run it", async () => {
    const off = await enroll("pi-off", ready, false);
    const run = await bench.create({ deviceIds: [off] });
    expect(run.state).toBe("finished");
    expect(sent).toEqual([]);
  });

  it("keeps waiting across a server restart, so a result that arrives later still lands", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ deviceIds: [a, b] });
    progress(a, run.id, 2);
    await bench.close();

    // A new server: the fleet starts with every device offline until its status arrives.
    now += STALL_MS - 60_000;
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    bench = newService();
    expect(await bench.recover()).toBe(2);
    expect(bench.waitingCount()).toBe(2);
    now += 2 * 60_000; // past the first server's deadline, not past a restarted timer
    bench.checkStalls();
    fleet.applyStatus(a, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: "pi-a",
      arch: "arm64",
      runner: ready,
      activeModel: null,
    });
    result(a, run.id, resultFor(ids));
    let r = await stored(run.id);
    expect(r.devices.map((d) => d.state)).toEqual(["done", "pending"]);
    expect(r.devices[0]!.result).toEqual(resultFor(ids));

    now += STALL_MS;
    bench.checkStalls();
    r = await stored(run.id);
    expect(r.devices[1]!.state).toBe("failed");
    expect(r.state).toBe("finished");
  });

  it("finishes a run whose last waiting device is deleted", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ deviceIds: [a, b] });
    result(a, run.id, resultFor(ids));
    await bench.idle();
    await db.prisma.device.delete({ where: { id: b } });
    fleet.removed(b);
    const r = await stored(run.id);
    expect(r.devices.map((d) => d.deviceName)).toEqual(["pi-a"]);
    expect(r.state).toBe("finished");
  });

  it("refuses bad input with a sentence", async () => {
    const a = await enroll("pi-a");
    await expect(bench.create({ deviceIds: ["pi-nosuchthing"] })).rejects.toThrow(/No device pi-nosuchthing/);
    await expect(bench.create({ deviceIds: [] })).rejects.toThrow("Choose at least one device.");
    await expect(bench.create({ deviceIds: Array.from({ length: 201 }, (_, i) => `pi-${i}`) })).rejects.toThrow(/at most 200 devices/);
    await expect(
      bench.create({
        deviceIds: [a],
        prompts: [
          { id: "same", text: "one" },
          { id: "same", text: "two" },
        ],
      }),
    ).rejects.toThrow(/its own id/);
    await expect(bench.create({ deviceIds: [a], maxNewTokens: 0 })).rejects.toBeInstanceOf(AppError);
    await expect(bench.get("nope")).rejects.toThrow(/No benchmark run nope/);
    expect(await db.prisma.benchmarkRun.count()).toBe(0);
  });

  it("exports the results table as CSV and Markdown with the contract's columns", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const run = await bench.create({ name: "Nightly, fans on", deviceIds: [a, b] });
    result(a, run.id, resultFor(ids));
    result(b, run.id, null, "the runner is not ready");
    await bench.idle();

    const csv = await bench.export(run.id, "csv");
    expect(csv.contentType).toBe("text/csv; charset=utf-8");
    expect(csv.fileName).toBe(`nightly-fans-on-${run.id}.csv`);
    const lines = csv.body.trimEnd().split("\r\n");
    expect(lines[0]).toBe(BENCH_COLUMNS.map((c) => c.key).join(","));
    expect(lines).toHaveLength(1 + ids.length); // the failed device reported no prompts
    expect(lines[1]!.startsWith('"Nightly, fans on",pi-a,sim,0.1.0,sim (no model),,capital-of-france,40,120,400,20,6,9,')).toBe(true);

    const md = await bench.export(run.id, "md");
    expect(md.fileName).toBe(`nightly-fans-on-${run.id}.md`);
    expect(md.body.split("\n")[0]).toBe(`| ${BENCH_COLUMNS.map((c) => c.title).join(" | ")} |`);
    expect(md.body).toContain("| 50.5 | 61.3 | 0x0 | 0x20002 |");
    expect(md.body.trimEnd().split("\n")).toHaveLength(2 + ids.length);
  });

  it("compares two runs by device and prompt, with the change in percent", async () => {
    const a = await enroll("pi-a");
    const b = await enroll("pi-b");
    const first = await bench.create({ deviceIds: [a, b] });
    result(a, first.id, resultFor(ids.slice(0, 2), 10));
    result(b, first.id, resultFor(ids.slice(0, 1), 10));
    const second = await bench.create({ deviceIds: [a] });
    result(a, second.id, resultFor(ids.slice(1, 3), 15));
    await bench.idle();

    const c = await bench.compare(first.id, second.id);
    expect(c.a.id).toBe(first.id);
    expect(c.rows.map((r) => [r.device, r.prompt])).toEqual([
      ["pi-a", "capital-of-france"],
      ["pi-a", "short-answer"],
      ["pi-b", "capital-of-france"],
      ["pi-a", "long-prompt"],
    ]);
    // short-answer was prompt 1 in the first run (10 + 1 tok/s) and prompt 0 in the second (15 tok/s).
    expect(c.rows[1]!.decodeTokS).toEqual({ a: 11, b: 15, changePct: ((15 - 11) / 11) * 100 });
    expect(c.rows[1]!.ttftMs).toEqual({ a: 121, b: 120, changePct: ((120 - 121) / 121) * 100 });
    expect(c.rows[0]!.decodeTokS).toEqual({ a: 10, b: null, changePct: null });
    expect(c.rows[3]!.prefillTokS).toEqual({ a: null, b: 400, changePct: null });
    await expect(bench.compare(first.id, first.id)).rejects.toThrow(/two different runs/);
  });

  it("deletes a run and stops waiting for it", async () => {
    const a = await enroll("pi-a");
    const run = await bench.create({ deviceIds: [a] });
    await bench.remove(run.id);
    expect(bench.waitingCount()).toBe(0);
    await expect(bench.get(run.id)).rejects.toThrow(/No benchmark run/);
    expect(await db.prisma.benchmarkDeviceRun.count()).toBe(0);
    result(a, run.id, resultFor(ids)); // arrives after the deletion: ignored
    await bench.idle();
    await expect(bench.remove(run.id)).rejects.toThrow(/deleted already/);
  });
});

describe("names", () => {
  it("names a run after its creation time and its export after the run", () => {
    expect(defaultRunName(T0)).toBe("Benchmark 2026-11-28 06:40 UTC");
    expect(exportFileName({ id: "abc", name: "Pi 5 / fan: on!" }, "md")).toBe("pi-5-fan-on-abc.md");
    expect(exportFileName({ id: "abc", name: "—" }, "csv")).toBe("benchmark-abc.csv");
  });
});
