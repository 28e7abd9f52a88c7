/**
 * Benchmarks end to end with real processes: the server (embedded broker, PGlite),
 * two agents with real `orchard-runner --backend sim` runners and one enrolled agent
 * that never starts (offline), the dashboard's tRPC API, socket.io, the CSV and
 * Markdown exports over HTTP, and `orchard bench run --wait` from the CLI.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BENCH_STANDARD_PROMPTS, type BenchRunDto } from "@orchard/contracts";
import { BENCH_COLUMNS } from "@orchard/client";
import { parseCsv } from "../support/csv.ts";
import {
  ROOT,
  connectSocket,
  enrollAgent,
  login,
  removeDir,
  startServer,
  waitFor,
  type FleetSocket,
  type TestAgent,
  type TestServer,
} from "../support/harness.ts";

let server: TestServer;
let first: TestAgent;
let second: TestAgent;
let offline: TestAgent;
let cookie: string;
let socket: FleetSocket;

/** Values a device may be unable to read here (no PMIC, thermal zone or vcgencmd on this machine). */
const MAY_BE_NULL = new Set(["energyJPerToken", "tempBeforeC", "tempAfterC", "throttleBefore", "throttleAfter", "modelSha256"]);
const NUMERIC = new Set([
  "loadMs",
  "ttftMs",
  "prefillTokS",
  "decodeTokS",
  "promptTokens",
  "generatedTokens",
  "peakRssBytes",
  "energyJPerToken",
  "tempBeforeC",
  "tempAfterC",
  "throttleBefore",
  "throttleAfter",
]);

async function ready(agent: TestAgent) {
  await waitFor(`${agent.name} ready`, async () => {
    const d = (await server.client.devices.list.query()).find((x) => x.id === agent.deviceId);
    return d?.online && d.runner?.state === "ready";
  });
}

async function finished(id: string): Promise<BenchRunDto> {
  return waitFor(
    "the run to finish",
    async () => {
      const run = await server.client.bench.get.query({ id });
      return run.state === "finished" ? run : null;
    },
    90_000,
  );
}

beforeAll(async () => {
  server = await startServer();
  first = await enrollAgent(server, "bench-first");
  second = await enrollAgent(server, "bench-second");
  offline = await enrollAgent(server, "bench-offline"); // enrolled, never started
  for (const a of [first, second]) a.start(["--runner-arg=--sim-decode-tok-s=400", "--runner-arg=--sim-prefill-tok-s=2000"]);
  await ready(first);
  await ready(second);
  cookie = await login(server);
  socket = await connectSocket(server, cookie);
});

afterAll(async () => {
  socket?.disconnect();
  for (const a of [first, second]) await a?.proc?.stop();
  await server?.stop();
  for (const a of [first, second, offline]) if (a) await removeDir(a.dataDir);
  if (server) await removeDir(server.dataDir);
});

describe("benchmarks", () => {
  let run: BenchRunDto;

  it("runs the standard prompt set on two devices and records complete results; an offline device fails at once", async () => {
    const changes: BenchRunDto[] = [];
    socket.on("bench:changed", (r) => changes.push(r));
    const created = await server.client.bench.create.mutate({
      name: "Integration, two Pis",
      deviceIds: [first.deviceId, second.deviceId, offline.deviceId],
      maxNewTokens: 16,
    });
    expect(created.state).toBe("running");
    expect(created.prompts).toEqual(BENCH_STANDARD_PROMPTS);
    const off = created.devices.find((d) => d.deviceId === offline.deviceId)!;
    expect(off.state).toBe("failed");
    expect(off.error).toMatch(/bench-offline was offline/);

    run = await finished(created.id);
    await waitFor("the finished run over socket.io", () => changes.some((c) => c.id === run.id && c.state === "finished"));
    const list = await server.client.bench.list.query();
    expect(list[0]).toMatchObject({ id: run.id, state: "finished", devices: 3, done: 2, failed: 1, promptCount: 4 });

    for (const agent of [first, second]) {
      const d = run.devices.find((x) => x.deviceId === agent.deviceId)!;
      expect(d, agent.proc?.output.slice(-3000)).toMatchObject({ state: "done", completed: 4, total: 4, error: null });
      expect(d.startedAt).not.toBeNull();
      expect(d.finishedAt).toBeGreaterThanOrEqual(d.startedAt!);
      const r = d.result!;
      expect(r.backend).toBe("sim");
      expect(r.runnerVersion).toEqual(expect.any(String));
      expect(r.model).toEqual(expect.any(String));
      expect(r.loadMs).toBeGreaterThanOrEqual(0);
      expect(r.prompts.map((p) => p.promptId)).toEqual(BENCH_STANDARD_PROMPTS.map((p) => p.id));
      for (const p of r.prompts) {
        expect(p.decodeTokS).toBeGreaterThan(0);
        expect(p.prefillTokS).toBeGreaterThan(0);
        expect(p.generatedTokens).toBeGreaterThan(0);
        expect(p.generatedTokens).toBeLessThanOrEqual(16);
        expect(p.promptTokens).toBeGreaterThan(0);
        expect(p.ttftMs).toBeGreaterThanOrEqual(0);
        expect(p.peakRssBytes).toBeGreaterThan(0);
        expect(p.textPreview.length).toBeGreaterThan(0);
      }
    }
  });

  it("exports the results as CSV over HTTP, with an API key or a session", async () => {
    const url = `${server.url}/api/benchmarks/${run.id}.csv`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${server.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe(`attachment; filename="integration-two-pis-${run.id}.csv"`);
    const text = await res.text();
    const [header, ...rows] = parseCsv(text);
    expect(header).toEqual(BENCH_COLUMNS.map((c) => c.key));
    expect(rows).toHaveLength(2 * BENCH_STANDARD_PROMPTS.length); // the offline device has no rows
    const devices = new Set<string>();
    for (const row of rows) {
      expect(row).toHaveLength(header!.length);
      const cell = Object.fromEntries(header!.map((k, i) => [k, row[i]!]));
      expect(cell.run).toBe("Integration, two Pis");
      expect(cell.backend).toBe("sim");
      devices.add(cell.device!);
      for (const key of header!) {
        if (!MAY_BE_NULL.has(key)) expect(cell[key], `${key} is filled`).not.toBe("");
        if (NUMERIC.has(key) && cell[key] !== "") expect(Number.isFinite(Number(cell[key])), `${key}=${cell[key]} parses`).toBe(true);
      }
      expect(Number(cell.decodeTokS)).toBeGreaterThan(0);
      expect(Number(cell.generatedTokens)).toBeGreaterThan(0);
    }
    expect([...devices].sort()).toEqual(["bench-first", "bench-second"]);

    const withSession = await fetch(url, { headers: { cookie } });
    expect(withSession.status).toBe(200);
    expect(await withSession.text()).toBe(text);
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ error: { code: "unauthorized" } });
    expect((await fetch(`${server.url}/api/benchmarks/nosuchrun.csv`, { headers: { cookie } })).status).toBe(404);
  });

  it("exports the results as a Markdown table", async () => {
    const res = await fetch(`${server.url}/api/benchmarks/${run.id}.md`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/markdown; charset=utf-8");
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename=".+\.md"$/);
    const lines = (await res.text()).trimEnd().split("\n");
    expect(lines[0]).toBe(`| ${BENCH_COLUMNS.map((c) => c.title).join(" | ")} |`);
    expect(lines[1]).toMatch(/^\|( -{3}:? \|)+$/);
    expect(lines).toHaveLength(2 + 2 * BENCH_STANDARD_PROMPTS.length);
    for (const line of lines.slice(2)) {
      expect(line.split(" | ")).toHaveLength(BENCH_COLUMNS.length);
      expect(line).toMatch(/\| sim \|/);
    }
  });

  it("compares two runs by device and prompt", async () => {
    const again = await server.client.bench.create.mutate({ deviceIds: [first.deviceId], maxNewTokens: 16 });
    await finished(again.id);
    const c = await server.client.bench.compare.query({ a: run.id, b: again.id });
    expect(c.rows).toHaveLength(2 * BENCH_STANDARD_PROMPTS.length);
    const paired = c.rows.filter((r) => r.deviceId === first.deviceId);
    expect(paired).toHaveLength(BENCH_STANDARD_PROMPTS.length);
    for (const r of paired) {
      expect(r.decodeTokS.a).toBeGreaterThan(0);
      expect(r.decodeTokS.b).toBeGreaterThan(0);
      expect(r.decodeTokS.changePct).toEqual(expect.any(Number));
    }
    expect(c.rows.filter((r) => r.deviceId === second.deviceId).every((r) => r.decodeTokS.b === null)).toBe(true);
  });

  it("runs from the CLI with orchard bench run --wait --json", async () => {
    const cli = spawn(
      process.execPath,
      [
        path.join(ROOT, "apps/cli/bin/orchard.mjs"),
        "bench",
        "run",
        "--device",
        "bench-first",
        "--device",
        second.deviceId,
        "--max-tokens",
        "8",
        "--name",
        "From the CLI",
        "--wait",
        "--json",
      ],
      { env: { ...process.env, ORCHARD_URL: server.url, ORCHARD_API_KEY: server.apiKey } },
    );
    let out = "";
    let err = "";
    cli.stdout.on("data", (c: Buffer) => (out += c.toString()));
    cli.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => cli.on("exit", resolve));
    expect(code, err).toBe(0);
    const result = JSON.parse(out) as BenchRunDto;
    expect(result).toMatchObject({ name: "From the CLI", state: "finished", maxNewTokens: 8 });
    expect(result.devices.map((d) => [d.deviceName, d.state])).toEqual([
      ["bench-first", "done"],
      ["bench-second", "done"],
    ]);
    expect(result.devices.every((d) => d.result!.prompts.every((p) => p.generatedTokens > 0 && p.generatedTokens <= 8))).toBe(true);
    // A progress line per device on stderr, ending with each one done.
    expect(err).toMatch(/bench-first: done \(4\/4 prompts\)/);
    expect(err).toMatch(/bench-second: done \(4\/4 prompts\)/);
  });

  it("exits non-zero from the CLI when a device failed", async () => {
    const cli = spawn(
      process.execPath,
      [path.join(ROOT, "apps/cli/bin/orchard.mjs"), "bench", "run", "--device", "bench-offline", "--wait", "--csv"],
      { env: { ...process.env, ORCHARD_URL: server.url, ORCHARD_API_KEY: server.apiKey } },
    );
    let out = "";
    let err = "";
    cli.stdout.on("data", (c: Buffer) => (out += c.toString()));
    cli.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => cli.on("exit", resolve));
    expect(code).toBe(1);
    expect(err).toMatch(/bench-offline: failed: bench-offline was offline when the run started/);
    expect(parseCsv(out)).toEqual([BENCH_COLUMNS.map((c) => c.key)]); // the header, no rows
  });

  it("deletes a run", async () => {
    await server.client.bench.remove.mutate({ id: run.id });
    await expect(server.client.bench.get.query({ id: run.id })).rejects.toThrow(/No benchmark run/);
    expect((await fetch(`${server.url}/api/benchmarks/${run.id}.csv`, { headers: { cookie } })).status).toBe(404);
  });
});
