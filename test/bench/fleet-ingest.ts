/**
 * Fleet ingestion at scale: N SIMULATED devices (test/sim/fleet-sim.ts) publishing
 * telemetry at 1 Hz for S seconds through one broker to the real server.
 *
 * Method: the broker runs in its own process (Aedes, test/bench/mqtt-broker.ts) and the
 * server reaches it through MQTT_URL, as it would Mosquitto, so that a plain extra
 * subscriber (`orchard/v1/devices/+/telemetry`, in the benchmark process) can count
 * what the broker delivers alone in the same run; the embedded broker only lets
 * devices and the server in. Figures: messages the simulator wrote to its sockets,
 * what the plain subscriber received, what the server ingested (its /metrics
 * counter) during the window, the backlog at its end, loss (sent − ingested once the
 * backlog has drained, up to 3 minutes), the delay from publish (the sample's `ts`) to
 * the plain subscriber and to a socket.io client watching the fleet receiving that
 * device's `fleet:device` row (rows
 * are coalesced per device for 250 ms by design, so this includes up to 250 ms of
 * coalescing; rows carry the newest sample only), the server's and the broker's CPU
 * (user+system over the run, 100 % = one core) and RSS at the end. Devices enroll
 * through the real API first; their connect time is reported, not measured in the run.
 *
 * BENCH_BROKER=mosquitto runs the same with Mosquitto 2 (Debian's `mosquitto`) as the
 * broker instead of Aedes: a bench-only config (anonymous clients, no persistence, no
 * connection limit) so both brokers do the same work; production adds the dynamic
 * security plugin's ACL check per message (docs/operations.md).
 *
 * BENCH_DEVICES (10000), BENCH_SECONDS (60), BENCH_BROKER (aedes | mosquitto).
 */
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import mqtt from "mqtt";
import type { TelemetryMessage } from "@orchard/contracts";
import { io } from "socket.io-client";
import { FleetSim } from "../sim/fleet-sim.ts";
import { Proc, freePort, login, removeDir, ROOT, startProcess, startServer, waitFor, type TestServer } from "../support/harness.ts";
import { processUsage, summarize } from "./stats.ts";

async function scrapeCounter(server: TestServer, series: string): Promise<number> {
  // Retried: under this much load a kept-alive connection can be reset between requests.
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
      const line = (await res.text()).split("\n").find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : 0;
    } catch (err) {
      if (!server.proc.running) throw new Error(`the server exited:\n${server.proc.output.slice(-3000)}`);
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export type BenchBroker = "aedes" | "mosquitto";

/** The broker under test in its own process, listening on `port`. */
async function startBroker(kind: BenchBroker, port: number): Promise<{ proc: Proc; name: string; cleanup: () => Promise<void> }> {
  if (kind === "aedes") {
    const proc = startProcess("broker", ["--import", "tsx", path.join(ROOT, "test/bench/mqtt-broker.ts"), String(port)]);
    await proc.waitForOutput(/broker listening/);
    return { proc, name: "Aedes", cleanup: async () => undefined };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-bench-mosquitto-"));
  const conf = path.join(dir, "mosquitto.conf");
  await writeFile(
    conf,
    [
      "# fleet-ingest benchmark only: anonymous, no persistence (never use this for a fleet)",
      "per_listener_settings false",
      "allow_anonymous true",
      "persistence false",
      "max_connections -1",
      "log_dest stderr",
      "log_type error",
      "log_type warning",
      `listener ${port} 127.0.0.1`,
      "",
    ].join("\n"),
  );
  const child = spawn("mosquitto", ["-c", conf], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
  });
  const proc = new Proc("mosquitto", child);
  await waitFor("mosquitto to accept connections", async () => {
    if (!proc.running) throw new Error(`mosquitto exited:\n${proc.output}`);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 1000 }).catch(() => null);
    await client?.endAsync();
    return client !== null;
  });
  const version = await new Promise<string>((resolve) => {
    const v = spawn("mosquitto", ["-h"], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    let out = "";
    v.stdout.on("data", (c: Buffer) => (out += c.toString()));
    v.on("close", () => resolve(/mosquitto version (\S+)/.exec(out)?.[1] ?? "?"));
  });
  return { proc, name: `Mosquitto ${version}`, cleanup: () => removeDir(dir) };
}

export async function benchFleetIngest(opts: { devices: number; seconds: number; broker?: BenchBroker }): Promise<string[]> {
  const { devices, seconds } = opts;
  const brokerPort = await freePort();
  const { proc: broker, name: brokerName, cleanup: brokerCleanup } = await startBroker(opts.broker ?? "aedes", brokerPort);
  const mqttUrl = `mqtt://127.0.0.1:${brokerPort}`;
  const server = await startServer({ env: { ORCHARD_LOG_LEVEL: "warn", MQTT_URL: mqttUrl, ORCHARD_FLUSH_MS: "1000" } });
  const log = (line: string) => process.stdout.write(`  ${line}\n`);
  let sim: FleetSim | null = null;
  try {
    // The plain subscriber: counts what the broker delivers.
    const plain = await mqtt.connectAsync(mqttUrl, { protocolVersion: 4, clientId: "bench-plain-subscriber", reconnectPeriod: 0 });
    let delivered = 0;
    let measuring = false;
    let windowStart = Infinity;
    const brokerDelays: number[] = [];
    plain.on("message", (_topic, payload) => {
      // Counted from the start of the window until everything sent has settled.
      if (!measuring) return;
      delivered++;
      const ts = (JSON.parse(payload.toString("utf8")) as TelemetryMessage).samples[0]!.ts;
      if (ts >= windowStart) brokerDelays.push(Date.now() - ts);
    });
    await plain.subscribeAsync("orchard/v1/devices/+/telemetry", { qos: 0 });

    // A browser watching the fleet.
    const socket = io(server.url, {
      transports: ["websocket"],
      extraHeaders: { cookie: await login(server), origin: server.url },
      reconnection: false,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", () => resolve());
      socket.once("connect_error", reject);
    });
    const delays: number[] = [];
    socket.on("fleet:device", (d) => {
      if (measuring && d.telemetry && d.telemetry.ts >= windowStart) delays.push(Date.now() - d.telemetry.ts);
    });

    let sent = 0;
    sim = new FleetSim({
      url: server.url,
      apiKey: server.apiKey,
      mqttUrl,
      devices,
      concurrency: 100,
      onTelemetrySent: () => {
        if (measuring) sent++;
      },
    });
    const t0 = Date.now();
    await sim.start();
    log(`${devices} simulated devices enrolled and connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await waitFor(
      `${devices} devices online`,
      async () => (await server.client.devices.list.query()).filter((d) => d.online).length === devices,
      300_000,
    );
    // Let the first round of telemetry go by before measuring.
    await new Promise((r) => setTimeout(r, 3000));

    const series = 'orchard_mqtt_messages_total{kind="telemetry"}';
    const ingestedBefore = await scrapeCounter(server, series);
    const serverBefore = await processUsage(server.proc.pid);
    const brokerBefore = await processUsage(broker.pid);
    const simBefore = process.cpuUsage();
    const start = Date.now();
    windowStart = start;
    measuring = true;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    // Stop sending (still connected), then wait for what is in flight to arrive: every message
    // sent from `start` on is then either counted by the server or lost.
    sim.pause();
    const elapsed = (Date.now() - start) / 1000;
    const serverAfter = await processUsage(server.proc.pid);
    const brokerAfter = await processUsage(broker.pid);
    const simCpu = process.cpuUsage(simBefore);
    // Throughput is what arrived during the window; then the backlog is left to drain (up to
    // 3 minutes), so loss counts only what never arrives.
    const sentInWindow = sent;
    const deliveredInWindow = delivered;
    const ingestedInWindow = (await scrapeCounter(server, series)) - ingestedBefore;
    const settleStart = Date.now();
    let ingested = ingestedInWindow;
    for (let last = -1; Date.now() - settleStart < 180_000;) {
      await new Promise((r) => setTimeout(r, 2000));
      ingested = (await scrapeCounter(server, series)) - ingestedBefore;
      if (ingested === last && delivered >= sent) break;
      last = ingested;
    }
    const settleS = (Date.now() - settleStart) / 1000;
    measuring = false;
    const stats = sim.stats();
    await sim.stop({ clean: false });
    sim = null;
    socket.disconnect();
    await plain.endAsync();

    const d = summarize(delays);
    const b = summarize(brokerDelays);
    const cpu = (u: number) => `${((u / elapsed) * 100).toFixed(0)} %`;
    const lines = [
      `${devices} simulated devices at 1 Hz, ${elapsed.toFixed(0)} s measured; broker (${brokerName}) in its own process, server via MQTT_URL`,
      "",
      "| devices | sent msg/s | broker → plain subscriber msg/s | server ingested msg/s | backlog at the end | lost | drained in | publish → plain subscriber p50 / p99 ms | fleet:device rows | publish → socket.io p50 ms | p99 ms | max ms | server CPU | server RSS | broker CPU | broker RSS |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      `| ${devices} | ${(sentInWindow / elapsed).toFixed(0)} | ${(deliveredInWindow / elapsed).toFixed(0)} | ${(ingestedInWindow / elapsed).toFixed(0)} | ${Math.max(0, sentInWindow - ingestedInWindow)} | ${(((sent - Math.min(sent, ingested)) / Math.max(1, sent)) * 100).toFixed(2)} % | ${settleS.toFixed(0)} s | ${b.p50.toFixed(0)} / ${b.p99.toFixed(0)} | ${d.n} | ${d.p50.toFixed(0)} | ${d.p99.toFixed(0)} | ${d.max.toFixed(0)} | ${cpu(serverAfter.cpuSeconds - serverBefore.cpuSeconds)} | ${(serverAfter.rssBytes / 2 ** 20).toFixed(0)} MiB | ${cpu(brokerAfter.cpuSeconds - brokerBefore.cpuSeconds)} | ${(brokerAfter.rssBytes / 2 ** 20).toFixed(0)} MiB |`,
      "",
      `simulator and clients (benchmark process): CPU ${cpu((simCpu.user + simCpu.system) / 1e6)}, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB; ${stats.telemetrySent} telemetry messages in total, ${stats.publishErrors} publish errors, ${stats.disconnects} disconnects; lost = sent in the window and never ingested (after draining up to 3 min)`,
    ];
    return lines;
  } finally {
    await sim?.stop({ clean: false }).catch(() => undefined);
    await server.stop();
    await broker.stop();
    await brokerCleanup();
    await removeDir(server.dataDir);
  }
}
