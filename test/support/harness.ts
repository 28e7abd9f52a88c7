/**
 * Real processes for tests that cross process boundaries: the Orchard server
 * (tsx apps/web/server.ts, embedded broker, PGlite or PostgreSQL), agents
 * (apps/agent's orchard-agent with the real native sim runner), and clients for
 * its APIs. Everything listens on 127.0.0.1 on ports picked at random.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import mqtt, { type MqttClient } from "mqtt";
import { io, type Socket } from "socket.io-client";
import { afterAll } from "vitest";
import type { TestMosquitto } from "./mosquitto.ts";
import { EnrollResponse, type ClientToServerEvents, type ServerToClientEvents } from "@orchard/contracts";
import { createOrchardClient, type OrchardClient } from "../../apps/cli/src/client.ts";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const AGENT_BIN = path.join(ROOT, "apps/agent/bin/orchard-agent.mjs");
export const RUNNER_BIN = path.join(ROOT, "native/build/orchard-runner");

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`,
  );
}

/** A child process whose output is kept for assertions and failure messages. */
export class Proc {
  output = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => {
      this.output += chunk.toString("utf8");
      if (this.output.length > 2_000_000) this.output = this.output.slice(-1_000_000);
      if (process.env.ORCHARD_TEST_VERBOSE) process.stderr.write(`[${name}] ${chunk.toString("utf8")}`);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }
  get pid(): number {
    return this.child.pid!;
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return waitFor(`${this.name} to print ${pattern}`, () => this.output.match(pattern), timeoutMs).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${this.name} output ---\n${this.output.slice(-4000)}`);
    });
  }
}

export function startProcess(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Proc(name, child);
}

export interface TestServer {
  url: string;
  mqttPort: number;
  apiKey: string;
  adminPassword: string;
  dataDir: string;
  databaseUrl: string | undefined;
  proc: Proc;
  client: OrchardClient;
  stop(): Promise<void>;
}

/**
 * ORCHARD_TEST_MODE=production: every server runs against its own Mosquitto (the shipped config, dynamic
 * security) and its own fresh PostgreSQL database, as in production. Both belong to the server's data dir,
 * so a restart with the same data dir finds them again; they go when the test file ends.
 */
export const PRODUCTION_MODE = process.env.ORCHARD_TEST_MODE === "production";
interface ProductionInfra {
  mosquitto: TestMosquitto;
  databaseUrl: string | undefined;
  dropDatabase: () => Promise<void>;
  server: { username: string; password: string };
}
const productionInfra = new Map<string, ProductionInfra>();
if (PRODUCTION_MODE && process.env.VITEST) {
  afterAll(async () => {
    for (const infra of productionInfra.values()) {
      await infra.mosquitto.stop();
      await infra.dropDatabase();
    }
    productionInfra.clear();
  });
}

async function productionFor(dataDir: string, databaseUrl: string | undefined): Promise<ProductionInfra> {
  const known = productionInfra.get(dataDir);
  if (known) return known;
  const { startMosquitto } = await import("./mosquitto.ts");
  const mosquitto = await startMosquitto();
  let dropDatabase = async () => undefined;
  if (databaseUrl === undefined) {
    const { createPostgresDatabase } = await import("../../apps/web/test/db.ts");
    databaseUrl = await createPostgresDatabase();
    const created = databaseUrl;
    dropDatabase = async () => {
      const pg = (await import("pg")).default;
      const admin = new pg.Client({ connectionString: process.env.ORCHARD_TEST_POSTGRES_URL });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${new URL(created).pathname.slice(1)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    };
  }
  const infra = { mosquitto, databaseUrl, dropDatabase, server: { username: "orchard-server", password: randomBytes(12).toString("hex") } };
  productionInfra.set(dataDir, infra);
  return infra;
}

/** HTTPS for a test server: its certificate and key, and the CA the test trusts it by. */
export interface TestServerTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** fetch trusting the CA in `caFile` besides the system's (Node's fetch is undici, pinned to the bundled version). */
export async function fetchTrusting(caFile: string): Promise<typeof fetch> {
  const { Agent } = await import("undici");
  const tls = await import("node:tls");
  const dispatcher = new Agent({ connect: { ca: [...tls.rootCertificates, await readFile(caFile, "utf8")] } });
  return (input, init) => fetch(input, { ...init, dispatcher } as RequestInit);
}

export async function startServer(
  opts: {
    databaseUrl?: string;
    dataDir?: string;
    env?: NodeJS.ProcessEnv;
    port?: number;
    mqttPort?: number;
    /** Serve HTTPS (ORCHARD_TLS_*): `url` is then https://localhost:port and `client` trusts the CA. */
    tls?: TestServerTls;
  } = {},
): Promise<TestServer> {
  // A restart passes the ports it had: enrolled agents know the server by them.
  const port = opts.port ?? (await freePort());
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), "orchard-server-")));
  const production = PRODUCTION_MODE && opts.env?.MQTT_URL === undefined ? await productionFor(dataDir, opts.databaseUrl) : null;
  const mqttPort = production?.mosquitto.port ?? opts.mqttPort ?? (await freePort());
  const productionEnv: NodeJS.ProcessEnv = production
    ? {
        DATABASE_URL: production.databaseUrl,
        MQTT_URL: production.mosquitto.url,
        ORCHARD_PUBLIC_MQTT_URL: production.mosquitto.url,
        MQTT_USERNAME: production.server.username,
        MQTT_PASSWORD: production.server.password,
        MQTT_DYNSEC_USERNAME: production.mosquitto.admin.username,
        MQTT_DYNSEC_PASSWORD: production.mosquitto.admin.password,
      }
    : {};
  const apiKey = `test-${randomBytes(16).toString("hex")}`;
  const adminPassword = `pw-${randomBytes(8).toString("hex")}`;
  // node --import tsx (not the tsx CLI, which runs the server in a child process) so proc.pid is the server.
  const proc = startProcess("server", ["--import", "tsx", path.join(ROOT, "apps/web/server.ts")], {
    PORT: String(port),
    HOST: "127.0.0.1",
    MQTT_PORT: String(mqttPort),
    ORCHARD_DATA: dataDir,
    ORCHARD_API_KEY: apiKey,
    ORCHARD_ADMIN_PASSWORD: adminPassword,
    DATABASE_URL: opts.databaseUrl ?? "",
    MQTT_URL: "",
    ORCHARD_FLUSH_MS: "200",
    // Tests serve model files from 127.0.0.1; a test of the refusal passes ORCHARD_ALLOW_PRIVATE_MODEL_URLS: "".
    ORCHARD_ALLOW_PRIVATE_MODEL_URLS: "1",
    ...productionEnv,
    ...(opts.tls ? { ORCHARD_TLS_CERT_FILE: opts.tls.certFile, ORCHARD_TLS_KEY_FILE: opts.tls.keyFile } : {}),
    ...opts.env,
  });
  const url = opts.tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
  const httpFetch = opts.tls ? await fetchTrusting(opts.tls.caFile) : fetch;
  await waitFor(
    "the server's /api/health",
    async () => {
      if (!proc.running) throw new Error(`server exited:\n${proc.output.slice(-3000)}`);
      return (await httpFetch(`${url}/api/health`)).ok;
    },
    90_000,
  ).catch(async (err: Error) => {
    await proc.stop(); // not left running behind a failed test
    throw new Error(`${err.message}\n--- server output ---\n${proc.output.slice(-4000)}`);
  });
  return {
    url,
    mqttPort,
    apiKey,
    adminPassword,
    dataDir,
    databaseUrl: production?.databaseUrl ?? opts.databaseUrl,
    proc,
    client: createOrchardClient({ url, apiKey, fetch: httpFetch }),
    stop: async () => {
      await proc.stop();
    },
  };
}

export interface TestAgent {
  name: string;
  dataDir: string;
  deviceId: string;
  proc: Proc | null;
  start(extraArgs?: string[]): Proc;
}

/** Enrolls an agent through the real CLI and enrollment API; `start()` runs it with the sim runner. */
export async function enrollAgent(server: TestServer, name: string, opts: { enrollArgs?: string[] } = {}): Promise<TestAgent> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `orchard-agent-${name}-`));
  const { token } = await server.client.enrollment.create.mutate({ deviceName: name, ttlMinutes: 5 });
  const enroll = startProcess(`enroll ${name}`, [
    AGENT_BIN,
    "enroll",
    "--server",
    server.url,
    "--token",
    token,
    "--data-dir",
    dataDir,
    ...(opts.enrollArgs ?? []),
  ]);
  const { code } = await enroll.exited;
  if (code !== 0) throw new Error(`orchard-agent enroll failed (exit ${code}):\n${enroll.output}`);
  const device = (await server.client.devices.list.query()).find((d) => d.name === name);
  if (!device) throw new Error(`device ${name} is not in the fleet after enrolling`);
  const agent: TestAgent = {
    name,
    dataDir,
    deviceId: device.id,
    proc: null,
    start(extraArgs = []) {
      agent.proc = startProcess(`agent ${name}`, [
        AGENT_BIN,
        "run",
        "--data-dir",
        dataDir,
        "--runner",
        "sim",
        "--runner-bin",
        RUNNER_BIN,
        "--telemetry-interval",
        "1",
        "--runner-arg=--sim-load-ms=50",
        ...extraArgs,
      ]);
      return agent.proc;
    },
  };
  return agent;
}

/** Signs in through the real login procedure and returns the session cookie. */
export async function login(server: TestServer, password = server.adminPassword): Promise<string> {
  const res = await fetch(`${server.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password }),
  });
  if (!res.ok) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  const cookie = res.headers.get("set-cookie");
  if (!cookie) throw new Error("login set no cookie");
  return cookie.split(";")[0]!;
}

export type FleetSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export async function connectSocket(server: TestServer, cookie: string | null): Promise<FleetSocket> {
  const socket: FleetSocket = io(server.url, {
    transports: ["websocket"],
    // A browser's WebSocket handshake carries its Origin; the server checks it for cookie sessions (CSRF).
    extraHeaders: cookie ? { cookie, origin: server.url } : {},
    reconnection: false,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (err) => reject(err));
  });
  return socket;
}

/** Enrolls a device through the real `POST /api/enroll` (no agent process): its id and broker credentials. */
export async function enrollDevice(server: TestServer, hostname: string): Promise<EnrollResponse> {
  const { token } = await server.client.enrollment.create.mutate({ ttlMinutes: 5 });
  const res = await fetch(`${server.url}/api/enroll`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token, hostname, arch: "arm64", agentVersion: "test" }),
  });
  if (res.status !== 201) throw new Error(`enrollment of ${hostname} failed: ${res.status} ${await res.text()}`);
  return EnrollResponse.parse(await res.json());
}

/**
 * An MQTT 3.1.1 client on the server's broker, no reconnects. A device's own login: `connectMqtt(server, device)`
 * (its id as username and client id); other credentials: pass them.
 */
export function connectMqtt(
  server: TestServer,
  creds: EnrollResponse | { username: string; password: string; clientId: string },
): Promise<MqttClient> {
  const opts = "deviceId" in creds ? { username: creds.deviceId, password: creds.mqttPassword, clientId: creds.deviceId } : creds;
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${server.mqttPort}`, {
      ...opts,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
  });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Runs the real `orchard` CLI against `server` with its API key; `url` overrides the server's. */
export function runCli(server: TestServer, args: string[], url = server.url): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, "apps/cli/bin/orchard.mjs"), ...args], {
    env: { ...process.env, ORCHARD_URL: url, ORCHARD_API_KEY: server.apiKey },
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code, out, err })));
}
