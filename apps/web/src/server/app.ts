/**
 * Builds the whole server from its configuration: database, services, MQTT
 * (embedded broker or MQTT_URL), HTTP routes, the Next.js UI and socket.io, all on
 * one port. server.ts calls this; so can anything that needs a real server in-process.
 */
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import path from "node:path";
import next from "next";
import { openDatabase } from "./db/client.ts";
import type { Env } from "./env.ts";
import { createLogger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { startEmbeddedBroker, type EmbeddedBroker } from "./mqtt/broker.ts";
import { createIngestor } from "./mqtt/ingest.ts";
import { connectServerLink, type ServerLink } from "./mqtt/link.ts";
import { startRetainSweeper } from "./mqtt/retain-sweeper.ts";
import { DynsecAccounts, embeddedAccounts, manualAccounts, type BrokerAccounts } from "./mqtt/accounts.ts";
import { CredentialService, DEFAULT_CREDENTIAL_OPTIONS } from "./services/credentials.ts";
import { attachRealtime } from "./realtime/socket.ts";
import { createRoutes } from "./http/routes.ts";
import { loadTlsOptions } from "./http/tls.ts";
import { DownloadGate } from "./http/artifacts.ts";
import { ArtifactSigner, defaultSigningKeyFile } from "./artifacts/signing.ts";
import { BlobStore } from "./artifacts/store.ts";
import { ArtifactService } from "./services/artifacts.ts";
import { DEFAULT_UPLOAD_OPTIONS, UploadService } from "./services/uploads.ts";
import { RemoteFetch } from "./services/remote-fetch.ts";
import { DEFAULT_ROLLOUT_OPTIONS, RolloutService, blobDownloadUrl } from "./services/rollouts.ts";
import { DEFAULT_COMPARISON_OPTIONS, RuntimeComparisonService } from "./services/runtime-comparisons.ts";
import { ADMIN_USERNAME, AuthService } from "./services/auth.ts";
import { AlertService, DEFAULT_ALERT_OPTIONS } from "./services/alerts.ts";
import { ApiKeyService } from "./services/api-keys.ts";
import { AuditService } from "./services/audit.ts";
import { UserService } from "./services/users.ts";
import { BenchmarkService, DEFAULT_BENCH_OPTIONS } from "./services/benchmarks.ts";
import { ChatRelay, DEFAULT_RELAY_OPTIONS } from "./services/chat-relay.ts";
import { ConversationService } from "./services/conversations.ts";
import { DeviceService } from "./services/devices.ts";
import { EnrollmentService } from "./services/enrollment.ts";
import { FleetService } from "./services/fleet.ts";
import { FleetThroughput } from "./services/fleet-throughput.ts";
import { SystemService, type Services } from "./services/index.ts";
import { TelemetryStore } from "./services/telemetry-store.ts";

export interface OrchardServer {
  url: string;
  mqttUrl: string;
  services: Services;
  close(): Promise<void>;
}

export async function startOrchard(env: Env): Promise<OrchardServer> {
  const log = createLogger(env.ORCHARD_LOG_LEVEL);
  await mkdir(env.dataDir, { recursive: true });

  const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
  if (db.migration.applied.length > 0) log.info("database migrated", { db: db.kind, applied: db.migration.applied });
  const cleanup: (() => Promise<unknown>)[] = [() => db.close()];
  const closeAll = async () => {
    for (const fn of cleanup.reverse()) await fn().catch((err: Error) => log.error("shutdown step failed", { error: err.message }));
  };

  try {
    const auth = new AuthService(
      db.prisma,
      { sessionHours: env.ORCHARD_SESSION_HOURS, bootstrapApiKey: env.ORCHARD_API_KEY, loginMaxFailures: env.ORCHARD_LOGIN_MAX_FAILURES },
      log.child("auth"),
    );
    const admin = await auth.ensureAdmin(env.ORCHARD_ADMIN_PASSWORD);

    const fleet = new FleetService(db.prisma, { staleMs: env.ORCHARD_DEVICE_STALE_SECONDS * 1000 }, log.child("fleet"));
    await fleet.load();
    const metrics = new Metrics(fleet);
    // Before the fleet's first flush: it reads which devices the database still had online.
    const alerts = new AlertService(
      db.prisma,
      fleet,
      {
        ...DEFAULT_ALERT_OPTIONS,
        tempC: env.ORCHARD_ALERT_TEMP_C,
        diskFreePercent: env.ORCHARD_ALERT_DISK_FREE_PERCENT,
        clearHoldMs: env.ORCHARD_ALERT_CLEAR_HOLD_SECONDS * 1000,
        staleMs: env.ORCHARD_DEVICE_STALE_SECONDS * 1000,
      },
      log.child("alerts"),
    );
    await alerts.load();
    metrics.trackAlerts(alerts);
    const telemetry = new TelemetryStore(
      db.prisma,
      { rawHours: env.ORCHARD_TELEMETRY_RAW_HOURS, rollupDays: env.ORCHARD_TELEMETRY_ROLLUP_DAYS },
      log.child("telemetry"),
    );
    const throughput = new FleetThroughput(fleet, db.prisma, telemetry, () => alerts.activeCount());
    // Models: the signing key (created on first start), the content-addressed store, uploads and artifacts.
    const signer = await ArtifactSigner.loadOrCreate(
      env.ORCHARD_SIGNING_KEY_FILE ? path.resolve(env.ORCHARD_SIGNING_KEY_FILE) : defaultSigningKeyFile(env.dataDir),
      log.child("artifacts"),
    );
    const store = new BlobStore(path.join(env.dataDir, "artifacts"));
    await store.init();
    const uploads = new UploadService(
      db.prisma,
      store,
      { ...DEFAULT_UPLOAD_OPTIONS, expiryMs: env.ORCHARD_UPLOAD_EXPIRY_HOURS * 3600_000 },
      log.child("uploads"),
      new RemoteFetch({ allowPrivate: env.ORCHARD_ALLOW_PRIVATE_MODEL_URLS === "1" }),
    );
    cleanup.push(() => uploads.close());
    await uploads.recover();
    const artifacts = new ArtifactService(db.prisma, fleet, uploads, store, signer, log.child("artifacts"));
    const downloads = new DownloadGate(env.ORCHARD_MAX_CONCURRENT_DOWNLOADS);
    metrics.trackDownloads(downloads);

    // MQTT: the embedded broker unless MQTT_URL names an external one.
    let broker: EmbeddedBroker | null = null;
    let brokerUrl: string;
    let serverCreds: { username?: string; password?: string };
    if (env.MQTT_URL) {
      brokerUrl = env.MQTT_URL;
      serverCreds = { username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD };
    } else {
      serverCreds = { username: "orchard-server", password: randomBytes(24).toString("base64url") };
      broker = await startEmbeddedBroker({
        host: env.HOST,
        port: env.MQTT_PORT,
        auth: {
          serverUsername: serverCreds.username!,
          serverPassword: serverCreds.password!,
          verifyDevice: (id, pw) => fleet.verifyDeviceCredentials(id, pw),
        },
        log: log.child("broker"),
      });
      cleanup.push(() => broker!.close());
      brokerUrl = `mqtt://127.0.0.1:${broker.port}`;
    }
    // Device accounts on the broker: the database itself for the embedded one; Mosquitto's dynamic security
    // plugin when its admin account is given (reconciled with the database now); by hand otherwise.
    let accounts: BrokerAccounts;
    if (broker) {
      accounts = embeddedAccounts(broker);
    } else if (env.MQTT_DYNSEC_USERNAME && env.MQTT_DYNSEC_PASSWORD) {
      const dynsec = await DynsecAccounts.connect(
        { url: brokerUrl, username: env.MQTT_DYNSEC_USERNAME, password: env.MQTT_DYNSEC_PASSWORD },
        log.child("broker-accounts"),
      );
      accounts = dynsec;
      cleanup.push(() => dynsec.close());
      await dynsec.ensureServerAccount(env.MQTT_USERNAME!, env.MQTT_PASSWORD!);
      const report = await dynsec.reconcile(fleet.list().map((d) => d.id));
      if (report.rolesCreated > 0 || report.removed.length > 0) log.info("broker accounts reconciled with the database", { ...report });
      if (report.missing.length > 0) {
        log.warn(
          "devices without a broker account cannot connect (their password is stored hashed, so it cannot be recreated): re-enroll them",
          { devices: report.missing },
        );
      }
    } else {
      accounts = manualAccounts(brokerUrl, env.MQTT_USERNAME, log.child("broker-accounts"));
    }
    // The relay publishes through the link, and the link delivers chat streams to the relay.
    let publishCommand: ServerLink["publishCommand"] = () => Promise.reject(new Error("the MQTT link is not connected yet"));
    const chatRelay = new ChatRelay(fleet, (id, cmd) => publishCommand(id, cmd), DEFAULT_RELAY_OPTIONS, log.child("chat"));
    cleanup.push(async () => chatRelay.close());
    // Benchmarks publish bench.run through the link and follow the results the fleet receives; device runs
    // still waiting from before a restart are picked up before the link delivers anything.
    const benchmarks = new BenchmarkService(
      db.prisma,
      fleet,
      (id, cmd) => publishCommand(id, cmd),
      { ...DEFAULT_BENCH_OPTIONS, stallTimeoutMs: env.ORCHARD_BENCH_STALL_SECONDS * 1000 },
      log.child("bench"),
    );
    cleanup.push(() => benchmarks.close());
    const benchWaiting = await benchmarks.recover();
    if (benchWaiting > 0) log.info("benchmark device runs still waiting for their devices", { count: benchWaiting });
    // Rollouts: planned on a timer and on every device event; what was in progress resumes as devices connect.
    const rollouts = new RolloutService(
      db.prisma,
      fleet,
      (id, cmd) => publishCommand(id, cmd),
      artifacts,
      {
        ...DEFAULT_ROLLOUT_OPTIONS,
        downloadUrl: blobDownloadUrl(env.ORCHARD_PUBLIC_URL),
        onStaleReport: (report) => metrics.rolloutStaleReports.inc({ state: report.state }),
      },
      log.child("rollouts"),
    );
    cleanup.push(() => rollouts.close());
    const rolloutsOpen = await rollouts.recover();
    if (rolloutsOpen > 0) log.info("rollouts resumed", { count: rolloutsOpen });
    // Runtime comparisons drive rollouts and benchmark runs; after a restart each carries on from its row.
    const comparisons = new RuntimeComparisonService(
      db.prisma,
      fleet,
      rollouts,
      benchmarks,
      DEFAULT_COMPARISON_OPTIONS,
      log.child("compare"),
    );
    cleanup.push(() => comparisons.close());
    const comparisonsOpen = await comparisons.recover();
    if (comparisonsOpen > 0) log.info("runtime comparisons resumed", { count: comparisonsOpen });
    const ingest = createIngestor({ fleet, chat: chatRelay, metrics, log: log.child("ingest") });
    const link = await connectServerLink({
      url: brokerUrl,
      ...serverCreds,
      clientId: `orchard-server-${randomBytes(4).toString("hex")}`,
      onMessage: ingest,
      log: log.child("mqtt"),
    });
    cleanup.push(() => link.close());
    if (!broker) {
      // An external broker keeps whatever a device retains; the sweeper clears it where the protocol retains nothing.
      const sweeper = startRetainSweeper({
        url: brokerUrl,
        ...serverCreds,
        clientId: `orchard-retain-${randomBytes(4).toString("hex")}`,
        log: log.child("mqtt"),
      });
      cleanup.push(() => sweeper.close());
    }
    publishCommand = (id, cmd) => link.publishCommand(id, cmd);
    const credentials = new CredentialService(
      db.prisma,
      fleet,
      accounts,
      publishCommand,
      log.child("credentials"),
      DEFAULT_CREDENTIAL_OPTIONS,
    );
    cleanup.push(async () => credentials.close());
    const conversations = new ConversationService(db.prisma, fleet, chatRelay, log.child("chat"));
    const interrupted = await conversations.recoverInterrupted();
    if (interrupted > 0) log.info("marked answers interrupted by the last shutdown", { count: interrupted });

    const services: Services = {
      auth,
      users: new UserService(db.prisma, Date.now, (userId) => auth.accessChanged(userId)),
      audit: new AuditService(db.prisma, log.child("audit")),
      fleet,
      metrics,
      link,
      enrollment: new EnrollmentService(db.prisma, fleet, Date.now, signer.publicKey, accounts),
      devices: new DeviceService(
        db.prisma,
        fleet,
        {
          onRemoved: async (id) => {
            await accounts.removeDevice(id).catch((err: Error) =>
              log.error("removing a deleted device's broker account failed; it is removed at the next start", {
                device: id,
                error: err.message,
              }),
            );
            void link.clearRetained(id).catch(() => undefined);
          },
        },
        telemetry,
      ),
      system: new SystemService(db, link, { embedded: broker !== null, url: redactUrl(brokerUrl) }),
      chatRelay,
      conversations,
      apiKeys: new ApiKeyService(db.prisma, (userId) => auth.accessChanged(userId)),
      telemetry,
      throughput,
      alerts,
      benchmarks,
      uploads,
      artifacts,
      rollouts,
      comparisons,
      credentials,
    };

    const mqttUrlFor = (req: IncomingMessage): string => {
      if (env.ORCHARD_PUBLIC_MQTT_URL) return env.ORCHARD_PUBLIC_MQTT_URL;
      if (env.MQTT_URL) return redactUrl(env.MQTT_URL, true);
      const host = new URL(`http://${req.headers.host ?? "localhost"}`).hostname;
      return `mqtt://${host.includes(":") ? `[${host}]` : host}:${broker!.port}`;
    };
    const routes = createRoutes({ services, log: log.child("http"), mqttUrlFor, publicUrl: env.ORCHARD_PUBLIC_URL, downloads });

    // The UI: Next.js on the same HTTP server, after our routes and the session gate.
    // HTTPS when a certificate is configured (ORCHARD_TLS_*), plain HTTP otherwise.
    const tlsOptions =
      env.ORCHARD_TLS_CERT_FILE && env.ORCHARD_TLS_KEY_FILE
        ? await loadTlsOptions({ certFile: env.ORCHARD_TLS_CERT_FILE, keyFile: env.ORCHARD_TLS_KEY_FILE })
        : null;
    const httpServer: http.Server = tlsOptions ? https.createServer(tlsOptions) : http.createServer();
    const ui = next({ dev: env.ORCHARD_DEV === "1", dir: env.webDir, hostname: env.HOST, port: env.PORT, httpServer });
    await ui.prepare().catch((err: Error) => {
      throw new Error(
        `the dashboard could not start (${err.message}); run \`npm run build\` (or start with \`npm start\`, which builds what is missing)`,
      );
    });
    cleanup.push(() => ui.close());
    const uiHandler = ui.getRequestHandler();
    httpServer.on("request", (req, res) => {
      routes(req, res).then(
        (handled) => (handled ? undefined : uiHandler(req, res)),
        (err: Error) => {
          log.error("request failed", { error: err.message });
          if (!res.headersSent) res.writeHead(500);
          res.end();
        },
      );
    });
    const realtime = attachRealtime({
      httpServer,
      auth,
      fleet,
      conversations,
      alerts,
      benchmarks,
      rollouts,
      comparisons,
      throughput,
      log: log.child("socket"),
      publicUrl: env.ORCHARD_PUBLIC_URL,
    });

    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", (err: NodeJS.ErrnoException) =>
        reject(err.code === "EADDRINUSE" ? new Error(`port ${env.PORT} is in use: set PORT to a free port`) : err),
      );
      httpServer.listen(env.PORT, env.HOST, () => resolve());
    });
    const address = httpServer.address();
    const port = typeof address === "object" && address ? address.port : env.PORT;
    cleanup.push(async () => {
      httpServer.closeAllConnections();
      await realtime.close(); // also closes httpServer
    });

    const timers = [
      setInterval(() => void fleet.flush(), env.ORCHARD_FLUSH_MS),
      setInterval(() => fleet.expireStale(), 5_000),
      setInterval(() => alerts.tick(), 5_000),
      setInterval(() => void auth.purgeExpiredSessions().catch(() => undefined), 3600_000),
      setInterval(
        () => void artifacts.housekeeping().catch((err: Error) => log.warn("model housekeeping failed", { error: err.message })),
        3600_000,
      ),
    ];
    void artifacts.housekeeping().catch((err: Error) => log.warn("model housekeeping failed", { error: err.message }));
    // Rolls up telemetry every minute and applies retention (the first run catches up after a restart).
    telemetry.start();
    void telemetry.run().catch((err: Error) => log.warn("telemetry rollup failed; retried next run", { error: err.message }));
    cleanup.push(async () => {
      for (const t of timers) clearInterval(t);
      await telemetry.stop();
      await fleet.flush();
      await alerts.close();
    });

    const url = `${tlsOptions ? "https" : "http"}://localhost:${port}`;
    log.info(`Orchard ${db.kind === "pglite" ? "(embedded database)" : "(PostgreSQL)"} listening on ${url}`, {
      mqtt: broker ? `embedded broker on port ${broker.port}` : redactUrl(brokerUrl),
      dataDir: env.dataDir,
    });
    if (admin.generatedPassword) {
      // Printed once, on the start that created the account.
      process.stdout.write(
        `\n  Sign in at ${url}/login as "${ADMIN_USERNAME}" with password: ${admin.generatedPassword}\n` +
          `  (shown only now; set ORCHARD_ADMIN_PASSWORD to choose your own)\n\n`,
      );
    } else if (env.ORCHARD_ADMIN_PASSWORD !== undefined) {
      log.info(`sign in at ${url}/login as "${ADMIN_USERNAME}" with the password in ORCHARD_ADMIN_PASSWORD`);
    } else {
      // The password was printed on the first start only: say how to get a new one.
      log.info(`sign in at ${url}/login as "${ADMIN_USERNAME}" (password lost? stop the server and run \`npm run reset-admin-password\`)`);
    }

    return { url, mqttUrl: broker ? `mqtt://127.0.0.1:${broker.port}` : brokerUrl, services, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** A broker URL without its password (or without any credentials, to hand to devices). */
function redactUrl(url: string, stripUser = false): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = stripUser ? "" : "***";
    if (stripUser) u.username = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}
