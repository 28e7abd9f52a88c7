/**
 * fleet-sim: N SIMULATED devices for tests and benchmarks. Not Raspberry Pis and not
 * the agent: each simulated device enrolls through the real enrollment API (or reuses
 * saved credentials), connects as its own MQTT 3.1.1 client with its own credentials
 * and a retained last will, publishes a retained `online` DeviceStatus (runner backend
 * `sim`, model "simulated device (fleet-sim)") and a TelemetryMessage with one sample
 * every interval (1 Hz by default) with plausible, varying made-up values. Everything
 * it sends is counted, per device, so tests can compare it with what the server stored.
 *
 * Every simulated device says so: its name is `sim-00001 (simulated)`, its hostname
 * `fleet-sim-00001`, its agent version `fleet-sim`, its model "simulated device (fleet-sim)".
 *
 *   npx tsx test/sim/fleet-sim.ts --url http://127.0.0.1:3000 --api-key KEY --devices 100 --seconds 60
 *
 * Options: --mqtt-url (default: the URL the server hands out at enrollment),
 * --interval-ms (1000), --credentials FILE (reuse devices enrolled before; written
 * after enrolling when the file does not exist), --prefix (sim).
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import mqtt, { type MqttClient } from "mqtt";
import {
  decodeThrottle,
  EnrollResponse,
  topics,
  type DeviceEvent,
  type DeviceStatus,
  type RunnerState,
  type RunnerStatus,
  type TelemetryMessage,
  type TelemetrySample,
} from "@orchard/contracts";
import { createOrchardClient } from "../../apps/cli/src/client.ts";

export const SIM_MODEL = "simulated device (fleet-sim)";
export const SIM_AGENT_VERSION = "fleet-sim";

export interface SimCredentials {
  deviceId: string;
  name: string;
  mqttUrl: string;
  mqttUsername: string;
  mqttPassword: string;
}

export interface FleetSimOptions {
  /** The Orchard server (for enrollment). */
  url: string;
  /** An API key, to create enrollment tokens. */
  apiKey: string;
  devices: number;
  /** Overrides the broker URL the server hands out at enrollment. */
  mqttUrl?: string;
  /** Telemetry period per device. */
  intervalMs?: number;
  /** Devices enrolled before (e.g. by an earlier run); more are enrolled if there are fewer than `devices`. */
  credentials?: SimCredentials[];
  /** Name prefix: devices are called `${prefix}-00001 (simulated)`. */
  prefix?: string;
  /** Enrollments (and MQTT connects) in flight at once. */
  concurrency?: number;
  /** Share of devices that report decode tokens/s (as if generating). */
  generatingShare?: number;
  /** Called after each telemetry message is written to the socket (benchmarks). */
  onTelemetrySent?: (deviceId: string, sample: TelemetrySample) => void;
}

export interface FleetSimStats {
  devices: number;
  connected: number;
  /** Telemetry messages written to the socket (one sample each), flood included. */
  telemetrySent: number;
  /** Of which sent by `flood()`. */
  floodSent: number;
  statusSent: number;
  /** Publishes that failed (not connected, socket error); not counted as sent. */
  publishErrors: number;
  /** Connections that dropped while the simulator was running. */
  disconnects: number;
  /** Telemetry messages sent per device id (flood included). */
  perDevice: Map<string, number>;
}

interface SimDevice {
  creds: SimCredentials;
  index: number;
  client: MqttClient | null;
  timer: NodeJS.Timeout | null;
  // The made-up machine this device pretends to be.
  memTotal: number;
  temp: number;
  cpu: number;
  memAvailable: number;
  generating: boolean;
  tokS: number;
  runnerRss: number;
  prevCpu: boolean;
  /** Values forced into every sample (tests: a hot or throttled device), see `override()`. */
  overrides: Partial<TelemetrySample>;
}

const GiB = 2 ** 30;

/** A fleet of simulated devices. `start()` enrolls and connects them; `stop()` disconnects them cleanly. */
export class FleetSim {
  private readonly devices: SimDevice[] = [];
  private readonly perDevice = new Map<string, number>();
  private counters = { telemetrySent: 0, floodSent: 0, statusSent: 0, publishErrors: 0, disconnects: 0 };
  private running = false;
  private readonly intervalMs: number;

  constructor(private readonly opts: FleetSimOptions) {
    this.intervalMs = opts.intervalMs ?? 1000;
  }

  /** Enrolls `n` simulated devices through the real API: tokens over tRPC with the API key, then POST /api/enroll, in parallel batches. */
  static async enroll(opts: { url: string; apiKey: string; n: number; prefix?: string; firstIndex?: number; concurrency?: number }) {
    const client = createOrchardClient({ url: opts.url, apiKey: opts.apiKey });
    const prefix = opts.prefix ?? "sim";
    const first = opts.firstIndex ?? 0;
    const concurrency = opts.concurrency ?? 50;
    const out: SimCredentials[] = [];
    for (let i = 0; i < opts.n; i += concurrency) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(concurrency, opts.n - i) }, async (_, j) => {
          const n = String(first + i + j + 1).padStart(5, "0");
          const name = `${prefix}-${n} (simulated)`;
          const { token } = await client.enrollment.create.mutate({ deviceName: name, ttlMinutes: 5 });
          const res = await fetch(`${opts.url.replace(/\/$/, "")}/api/enroll`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ token, hostname: `fleet-sim-${n}`, arch: "sim", agentVersion: SIM_AGENT_VERSION }),
          });
          if (res.status !== 201) throw new Error(`enrolling ${name} failed: ${res.status} ${await res.text()}`);
          const r = EnrollResponse.parse(await res.json());
          return { deviceId: r.deviceId, name: r.name, mqttUrl: r.mqttUrl, mqttUsername: r.mqttUsername, mqttPassword: r.mqttPassword };
        }),
      );
      out.push(...batch);
    }
    return out;
  }

  /** Enrolls what is missing, connects every device (batches of `concurrency`), publishes their status and starts telemetry. */
  async start(): Promise<void> {
    const have = this.opts.credentials?.slice(0, this.opts.devices) ?? [];
    const missing = this.opts.devices - have.length;
    const enrolled =
      missing > 0
        ? await FleetSim.enroll({
            url: this.opts.url,
            apiKey: this.opts.apiKey,
            n: missing,
            prefix: this.opts.prefix,
            firstIndex: have.length,
            concurrency: this.opts.concurrency,
          })
        : [];
    const all = [...have, ...enrolled];
    const share = this.opts.generatingShare ?? 0.3;
    all.forEach((creds, index) => {
      // Deterministic per index, so runs are comparable.
      const r = mulberry32(index + 1);
      const memTotal = r() < 0.5 ? 4 * GiB : 8 * GiB;
      this.devices.push({
        creds,
        index,
        client: null,
        timer: null,
        memTotal,
        temp: 45 + r() * 20,
        cpu: 5 + r() * 40,
        memAvailable: memTotal * (0.4 + r() * 0.4),
        generating: r() < share,
        tokS: 4 + r() * 10,
        runnerRss: 400e6 + r() * 800e6,
        prevCpu: false,
        overrides: {},
      });
      this.perDevice.set(creds.deviceId, 0);
    });
    this.running = true;
    const concurrency = this.opts.concurrency ?? 100;
    for (let i = 0; i < this.devices.length; i += concurrency) {
      await Promise.all(this.devices.slice(i, i + concurrency).map((d) => this.connect(d)));
    }
    // Spread the devices over the interval so the server sees a steady stream, not one spike a second.
    for (const d of this.devices) {
      const offset = (d.index * this.intervalMs) / this.devices.length;
      d.timer = setTimeout(() => {
        this.sendTelemetry(d);
        d.timer = setInterval(() => this.sendTelemetry(d), this.intervalMs);
      }, offset);
    }
  }

  /** Credentials of the running devices (to save and reuse). */
  credentials(): SimCredentials[] {
    return this.devices.map((d) => d.creds);
  }

  deviceIds(): string[] {
    return this.devices.map((d) => d.creds.deviceId);
  }

  stats(): FleetSimStats {
    return {
      devices: this.devices.length,
      connected: this.devices.filter((d) => d.client?.connected).length,
      ...this.counters,
      perDevice: new Map(this.perDevice),
    };
  }

  /** Makes one device misbehave: `count` telemetry messages as fast as the socket takes them. Resolves with how many were sent. */
  async flood(deviceId: string, count: number): Promise<number> {
    const d = this.devices.find((x) => x.creds.deviceId === deviceId);
    if (!d?.client) throw new Error(`no connected simulated device ${deviceId}`);
    let sent = 0;
    for (let i = 0; i < count; i += 100) {
      const n = Math.min(100, count - i);
      const results = await Promise.all(Array.from({ length: n }, () => this.publishTelemetry(d, true)));
      sent += results.filter(Boolean).length;
    }
    return sent;
  }

  /** Stops sending telemetry and stays connected (so what is in flight still arrives); `stop()` disconnects. */
  pause(): void {
    this.running = false;
    for (const d of this.devices) {
      if (d.timer) clearTimeout(d.timer);
      d.timer = null;
    }
  }

  /** Stops telemetry; with `clean` (default) each device publishes a retained `offline` (shutdown) first, else they vanish and the broker publishes their last wills. */
  async stop(opts: { clean?: boolean } = {}): Promise<void> {
    this.pause();
    const clean = opts.clean ?? true;
    const concurrency = this.opts.concurrency ?? 100;
    for (let i = 0; i < this.devices.length; i += concurrency) {
      await Promise.all(
        this.devices.slice(i, i + concurrency).map(async (d) => {
          const c = d.client;
          d.client = null;
          if (!c) return;
          if (clean && c.connected) {
            const offline: DeviceStatus = { state: "offline", reason: "shutdown", ts: Date.now() };
            await c.publishAsync(topics.status(d.creds.deviceId), JSON.stringify(offline), { qos: 1, retain: true }).catch(() => undefined);
            await c.endAsync().catch(() => undefined);
          } else {
            // Without DISCONNECT: the broker sees a lost connection and publishes the last will.
            c.stream.destroy();
            await c.endAsync(true).catch(() => undefined);
          }
        }),
      );
    }
  }

  private async connect(d: SimDevice): Promise<void> {
    const { creds } = d;
    const will: DeviceStatus = { state: "offline", reason: "lost" };
    const client = await mqtt.connectAsync(this.opts.mqttUrl ?? creds.mqttUrl, {
      protocolVersion: 4,
      clientId: creds.deviceId,
      username: creds.mqttUsername,
      password: creds.mqttPassword,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
      // A QoS 0 publish while disconnected fails (and is not counted) instead of waiting in a queue.
      queueQoSZero: false,
      will: { topic: topics.status(creds.deviceId), payload: Buffer.from(JSON.stringify(will)), qos: 1, retain: true },
    });
    client.on("close", () => {
      if (this.running && d.client === client) this.counters.disconnects++;
    });
    client.on("error", () => undefined);
    d.client = client;
    const status: DeviceStatus = {
      state: "online",
      ts: Date.now(),
      agentVersion: SIM_AGENT_VERSION,
      hostname: `fleet-sim-${String(d.index + 1).padStart(5, "0")}`,
      arch: "sim",
      runner: {
        state: "ready",
        backend: "sim",
        model: SIM_MODEL,
        pid: null,
        rssBytes: Math.round(d.runnerRss),
        maxContext: 2048,
        loadMs: 0,
        restarts: 0,
        lastError: null,
        version: null,
      },
      activeModel: null,
    };
    await client.publishAsync(topics.status(creds.deviceId), JSON.stringify(status), { qos: 1, retain: true });
    this.counters.statusSent++;
  }

  private sendTelemetry(d: SimDevice): void {
    if (!this.running || !d.client) return; // stopped, or this device was killed (see kill())
    void this.publishTelemetry(d, false);
  }

  private publishTelemetry(d: SimDevice, flood: boolean): Promise<boolean> {
    const client = d.client;
    if (!client?.connected) {
      this.counters.publishErrors++;
      return Promise.resolve(false);
    }
    const sample = this.nextSample(d);
    const message: TelemetryMessage = { samples: [sample] };
    return new Promise((resolve) => {
      client.publish(topics.telemetry(d.creds.deviceId), JSON.stringify(message), { qos: 0 }, (err) => {
        if (err) {
          this.counters.publishErrors++;
          return resolve(false);
        }
        this.counters.telemetrySent++;
        if (flood) this.counters.floodSent++;
        this.perDevice.set(d.creds.deviceId, (this.perDevice.get(d.creds.deviceId) ?? 0) + 1);
        this.opts.onTelemetrySent?.(d.creds.deviceId, sample);
        resolve(true);
      });
    });
  }

  /**
   * Forces values into every following sample of one device (e.g. `{ socTempC: 90 }` or a
   * throttle reading), to drive alerts and charts in tests; `{}` goes back to made-up values.
   */
  override(deviceId: string, values: Partial<TelemetrySample>): void {
    const d = this.devices.find((x) => x.creds.deviceId === deviceId);
    if (!d) throw new Error(`no simulated device ${deviceId}`);
    d.overrides = values;
  }

  /** Drops one device's connection without a clean `offline` (the broker publishes its last will); it stays silent until `reconnect()`. */
  async kill(deviceId: string): Promise<void> {
    const d = this.device(deviceId);
    const c = d.client;
    d.client = null;
    if (!c) return;
    c.stream.destroy();
    await c.endAsync(true).catch(() => undefined);
  }

  /** Connects a killed device again: a retained `online` status, then telemetry as before. */
  async reconnect(deviceId: string): Promise<void> {
    const d = this.device(deviceId);
    if (d.client) throw new Error(`simulated device ${deviceId} is connected`);
    await this.connect(d);
  }

  /** Publishes a `runner.state` event, as the agent does on a runner transition (e.g. to `crash_loop`). */
  async runnerState(deviceId: string, state: RunnerState, values: Partial<RunnerStatus> = {}): Promise<void> {
    const d = this.device(deviceId);
    if (!d.client?.connected) throw new Error(`simulated device ${deviceId} is not connected`);
    const event: DeviceEvent = {
      kind: "runner.state",
      ts: Date.now(),
      runner: {
        state,
        backend: "sim",
        model: SIM_MODEL,
        pid: null,
        rssBytes: Math.round(d.runnerRss),
        maxContext: 2048,
        loadMs: 0,
        restarts: 0,
        lastError: null,
        version: null,
        ...values,
      },
    };
    await d.client.publishAsync(topics.events(deviceId), JSON.stringify(event), { qos: 1 });
  }

  private device(deviceId: string): SimDevice {
    const d = this.devices.find((x) => x.creds.deviceId === deviceId);
    if (!d) throw new Error(`no simulated device ${deviceId}`);
    return d;
  }

  /** Made-up but plausible: random walks within a Pi's ranges; temperature follows load. */
  private nextSample(d: SimDevice): TelemetrySample {
    const walk = (v: number, step: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v + (Math.random() * 2 - 1) * step));
    d.cpu = walk(d.cpu + (d.generating ? 2 : -1), 8, 1, 100);
    d.temp = walk(d.temp + (d.cpu - 40) / 100, 0.8, 35, 85);
    d.memAvailable = walk(d.memAvailable, d.memTotal * 0.01, d.memTotal * 0.1, d.memTotal * 0.9);
    d.runnerRss = walk(d.runnerRss, 5e6, 300e6, 1.4e9);
    const generatingNow = d.generating && Math.random() < 0.9;
    const hot = d.temp > 80;
    const cpuPercent = d.prevCpu ? Math.round(d.cpu * 10) / 10 : null; // like the agent: null on the first sample
    d.prevCpu = true;
    const load1 = Math.round((d.cpu / 25) * 100) / 100;
    const tokensPerSecond = generatingNow ? Math.round(walk(d.tokS, 1, 0.5, 30) * 100) / 100 : null;
    const cpuFreqHz = hot ? 1_500_000_000 : 2_400_000_000;
    return {
      ts: Date.now(),
      cpuPercent,
      load1,
      load5: Math.round(load1 * 90) / 100,
      load15: Math.round(load1 * 80) / 100,
      memTotalBytes: d.memTotal,
      memAvailableBytes: Math.round(d.memAvailable),
      swapTotalBytes: GiB / 2,
      swapUsedBytes: d.memAvailable < d.memTotal * 0.15 ? 64 * 2 ** 20 : 0,
      diskTotalBytes: 64 * GiB,
      diskFreeBytes: 20 * GiB,
      socTempC: Math.round(d.temp * 10) / 10,
      throttle: decodeThrottle(hot ? 0x80008 | 0x4 : 0),
      runnerRssBytes: Math.round(d.runnerRss),
      tokensPerSecond,
      prefillTokensPerSecond: tokensPerSecond === null ? null : Math.round(tokensPerSecond * 480) / 100,
      // Tokens generated since the previous sample, as the agent counts them.
      generatedTokens: tokensPerSecond === null ? 0 : Math.round((tokensPerSecond * this.intervalMs) / 1000),
      activeGenerations: generatingNow ? 1 : 0,
      cpuFreqHz,
      boardPowerW: Math.round((3 + (d.cpu / 100) * 4.5) * 100) / 100,
      ...d.overrides,
    };
  }
}

/** A small seeded PRNG, so a device index always gets the same made-up machine. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- command line

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: process.env.ORCHARD_URL ?? "http://127.0.0.1:3000" },
      "api-key": { type: "string", default: process.env.ORCHARD_API_KEY },
      "mqtt-url": { type: "string" },
      devices: { type: "string", default: "10" },
      seconds: { type: "string", default: "60" },
      "interval-ms": { type: "string", default: "1000" },
      credentials: { type: "string" },
      prefix: { type: "string", default: "sim" },
    },
  });
  if (!values["api-key"]) throw new Error("--api-key (or ORCHARD_API_KEY) is required to enroll simulated devices");
  const credsFile = values.credentials;
  const credentials = credsFile && existsSync(credsFile) ? (JSON.parse(await readFile(credsFile, "utf8")) as SimCredentials[]) : undefined;
  const sim = new FleetSim({
    url: values.url!,
    apiKey: values["api-key"],
    mqttUrl: values["mqtt-url"],
    devices: Number(values.devices),
    intervalMs: Number(values["interval-ms"]),
    credentials,
    prefix: values.prefix,
  });
  const say = (line: string) => process.stdout.write(`[fleet-sim, simulated devices] ${line}\n`);
  say(`starting ${values.devices} simulated devices against ${values.url}`);
  const t0 = Date.now();
  await sim.start();
  if (credsFile && !credentials) await writeFile(credsFile, JSON.stringify(sim.credentials(), null, 2), { mode: 0o600 });
  say(`${sim.stats().connected} connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const report = () => {
    const { perDevice: _perDevice, ...s } = sim.stats();
    say(JSON.stringify(s));
  };
  const ticker = setInterval(report, 5000);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, Number(values.seconds) * 1000);
    process.once("SIGINT", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  clearInterval(ticker);
  await sim.stop();
  report();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`fleet-sim: ${err.message}\n`);
      process.exit(1);
    },
  );
}
