/**
 * `orchard-agent run` assembled: the MQTT link, the runner supervisor, telemetry
 * and the state file, wired to each other. Each part lives in its own folder and
 * knows nothing of the others; this module is the only place they meet.
 */
import os from "node:os";
import { BenchRunId, CHAT_DEFAULT_QUEUE_LIMIT, type DeviceStatus, type RunnerStatus } from "@orchard/contracts";
import { BenchRunner } from "../bench/bench-runner.js";
import { ChatExecutor } from "../chat/executor.js";
import { invalidRequest } from "../chat/errors.js";
import { SocReader } from "../chat/soc-reading.js";
import { type AgentFile, publicMqttUrl, saveAgentFile } from "../config/agent-file.js";
import type { RunnerConfig } from "../config/cli.js";
import { dataPaths } from "../config/paths.js";
import { CommandDispatcher } from "../link/commands.js";
import { MqttLink } from "../link/mqtt-link.js";
import type { BackoffOptions } from "../lib/backoff.js";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import type { RestartPolicyOptions } from "../runner/restart-policy.js";
import { defaultLlamaRunner } from "../runner/programs.js";
import { type RunnerLaunch, RunnerSupervisor } from "../runner/supervisor.js";
import { deviceAuthorization, fetchArtifactKey } from "../rollout/artifact-key.js";
import { askUntilComplete, CombinedCapabilities, probeCapabilities } from "../rollout/capabilities.js";
import { SupervisorModelHost, canRun } from "../rollout/model-host.js";
import { ModelStore } from "../rollout/model-store.js";
import { RolloutRunner, type RolloutRunnerOptions } from "../rollout/rollout-runner.js";
import { type AgentStateFile, StateFileWriter } from "../state/state-file.js";
import { TelemetryOutbox } from "../telemetry/outbox.js";
import { TelemetrySampler } from "../telemetry/sampler.js";
import { TokenRates } from "../telemetry/token-rate.js";
import { VCGENCMD_TIMEOUT_MS, Vcgencmd } from "../telemetry/vcgencmd.js";
import type { Trust } from "../lib/trust.js";
import { AGENT_VERSION } from "../version.js";

export interface AgentOptions {
  enrollment: AgentFile;
  dataDir: string;
  runner: RunnerConfig;
  telemetryIntervalMs: number;
  logger: Logger;
  /** Root for /proc and /sys ("/" on a device). */
  systemRoot?: string;
  vcgencmd?: string;
  /** How long one vcgencmd call may take (default VCGENCMD_TIMEOUT_MS). */
  vcgencmdTimeoutMs?: number;
  hostname?: string;
  arch?: string;
  clock?: Clock;
  mqttBackoff?: BackoffOptions;
  restartPolicy?: Partial<RestartPolicyOptions>;
  stateWriteIntervalMs?: number;
  /** Chats held at once, running + waiting (`--chat-queue`). */
  chatQueueLimit?: number;
  /** How long a chat waits for a loading or restarting runner before `not_ready`. */
  chatReadyWaitMs?: number;
  chatHeartbeatMs?: number;
  /** Most bytes rolled-out models may occupy (`--models-quota`); null or absent = only the disk limits them. */
  modelsQuotaBytes?: number | null;
  /** The CAs trusted for https:// and mqtts:// (agent.json's tls.caFile, loaded); default: the system's. */
  trust?: Trust;
  /** Rollout tuning (tests shorten the retries). */
  rollout?: Pick<RolloutRunnerOptions, "downloadAttempts" | "httpRetries" | "downloadBackoff" | "idleTimeoutMs">;
}

const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

export class Agent {
  readonly supervisor: RunnerSupervisor;
  readonly link: MqttLink;
  /** Runs chat.start / chat.cancel on the runner and streams the answers on the chat topics. */
  readonly chat: ChatExecutor;
  /** Runs bench.run through the chat queue and reports bench.progress / bench.result on the events topic. */
  readonly bench: BenchRunner;
  /** Token rates and counts for telemetry, fed from every generation the runner streams (chats and benchmarks). */
  readonly rates: TokenRates;
  /** Firmware readings (throttle bits, ARM clock, board power), shared by telemetry, answers and benchmarks. */
  readonly vcgencmd: Vcgencmd;
  /** Runs rollout.apply / abort / rollback: downloads, verifies and activates models (rollout/). */
  readonly rollout: RolloutRunner;
  /** What `orchard-runner --capabilities` and `orchard-llama-runner --capabilities` say they load (the union; each asked once). */
  readonly capabilities: CombinedCapabilities;
  /** The runtimes the runners load, once they said (reported in the online status). */
  #runtimes: string[] | null = null;
  readonly #opts: AgentOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #sampler: TelemetrySampler;
  readonly #outbox: TelemetryOutbox;
  readonly #commands: CommandDispatcher;
  readonly #stateFile: StateFileWriter;
  readonly #startedAt: number;
  readonly #hostname: string;
  readonly #arch: string;
  #tickTimer: NodeJS.Timeout | null = null;
  /** Stops asking runners whose capabilities are still unknown. */
  #stopAskingCapabilities: (() => void) | null = null;
  #nextTickAt = 0;
  #lastSampleAt: number | null = null;
  #closing: Promise<void> | null = null;
  #stateFinal = false;
  /** agent.json as loaded, plus the artifact key once fetched. */
  #enrollment: AgentFile;
  #fileWrites: Promise<void> = Promise.resolve();
  #keyFetch: Promise<string> | null = null;

  constructor(options: AgentOptions) {
    this.#opts = options;
    this.#log = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#startedAt = this.#clock.now();
    this.#hostname = options.hostname ?? os.hostname();
    this.#arch = options.arch ?? os.arch();
    const { enrollment } = options;
    this.#enrollment = enrollment;

    const llamaRunner = defaultLlamaRunner(options.runner.llamaThreads);
    this.supervisor = new RunnerSupervisor({
      command: options.runner.bin.path,
      llamaRunner,
      backend: options.runner.backend,
      model: options.runner.model,
      tokenizer: options.runner.tokenizer,
      profile: options.runner.profile,
      extraArgs: options.runner.extraArgs,
      logger: options.logger,
      clock: this.#clock,
      restartPolicy: options.restartPolicy,
      procRoot: options.systemRoot,
    });

    this.link = new MqttLink({
      url: enrollment.mqtt.url,
      username: enrollment.mqtt.username,
      password: enrollment.mqtt.password,
      passwords: () => this.#passwords(),
      ca: options.trust?.ca,
      onLoggedIn: (password) => void this.#loggedIn(password),
      deviceId: enrollment.deviceId,
      logger: options.logger,
      onlineStatus: () => this.onlineStatus(),
      backoff: options.mqttBackoff,
      clock: this.#clock,
    });

    this.rates = new TokenRates(60_000, this.#clock);
    this.supervisor.on("message", (message) => {
      if (message.type === "token") this.rates.countToken();
      else if (message.type === "done") this.rates.recordDone(message);
    });
    this.vcgencmd = new Vcgencmd({ command: options.vcgencmd, timeoutMs: options.vcgencmdTimeoutMs ?? VCGENCMD_TIMEOUT_MS });
    this.#sampler = new TelemetrySampler({
      root: options.systemRoot,
      dataDir: options.dataDir,
      vcgencmd: this.vcgencmd,
      runnerRssBytes: () => this.supervisor.status().rssBytes,
      rates: this.rates,
      activeGenerations: () => this.chat.info().held,
      clock: this.#clock,
      logger: options.logger.child({ component: "telemetry" }),
    });
    this.#outbox = new TelemetryOutbox({
      publish: (message) => this.link.publishTelemetry(message),
      isConnected: () => this.link.connected,
      logger: options.logger.child({ component: "telemetry" }),
    });

    const soc = new SocReader({ root: options.systemRoot, vcgencmd: this.vcgencmd });
    this.chat = new ChatExecutor({
      runner: this.supervisor,
      publish: (message) => this.link.publishChat(message),
      readSoc: () => soc.read(),
      logger: options.logger,
      clock: this.#clock,
      queueLimit: options.chatQueueLimit ?? CHAT_DEFAULT_QUEUE_LIMIT,
      readyWaitMs: options.chatReadyWaitMs,
      heartbeatMs: options.chatHeartbeatMs,
      deviceName: enrollment.name,
      modelSha256: () => this.rollout.models().active?.sha256 ?? null,
    });
    this.bench = new BenchRunner({
      runner: this.supervisor,
      queue: this.chat,
      publish: (event) => this.link.publishEvent(event),
      readBoard: async () => {
        const [reading, cpuFreqHz, boardPowerW] = await Promise.all([soc.read(), this.vcgencmd.armClockHz(), this.vcgencmd.boardPowerW()]);
        return { ...reading, cpuFreqHz, boardPowerW };
      },
      modelSha256: () => this.onlineStatus().activeModel?.sha256 ?? null,
      logger: options.logger,
      clock: this.#clock,
    });

    const runnerCommand = options.runner.bin.path;
    this.capabilities = new CombinedCapabilities(
      [
        { name: "orchard-runner", probe: () => probeCapabilities(runnerCommand) },
        { name: "orchard-llama-runner", probe: () => probeCapabilities(llamaRunner.command, llamaRunner.args) },
      ],
      (name, error) =>
        (error as { reason?: string }).reason === "timeout"
          ? this.#log.warn(`${name}: capabilities unknown (probe timed out); its runtimes are refused until it answers`, {
              error: error.message,
            })
          : this.#log.warn(`${name} does not say what it can load; its runtimes are refused`, { error: error.message }),
    );
    this.rollout = new RolloutRunner({
      store: new ModelStore({ dataDir: options.dataDir, quotaBytes: options.modelsQuotaBytes ?? null, logger: options.logger }),
      host: new SupervisorModelHost({ supervisor: this.supervisor, queue: this.chat, logger: options.logger }),
      cli: options.runner,
      stateFile: dataPaths(options.dataDir).rolloutFile,
      serverUrl: enrollment.serverUrl,
      authorization: () => deviceAuthorization(enrollment.deviceId, this.#passwords()[0]!),
      fetch: options.trust?.fetch,
      artifactKey: () => this.#artifactKey(),
      capabilities: () => this.capabilities.get(),
      publish: (event) => this.link.publishEvent(event),
      onModelsChanged: () => void this.link.publishStatus(),
      logger: options.logger,
      clock: this.#clock,
      systemRoot: options.systemRoot,
      ...options.rollout,
    });

    this.#commands = new CommandDispatcher({
      handlers: {
        ping: async () => ({ ok: true, message: "pong" }),
        "runner.restart": async () => {
          if (this.#closing) return { ok: false, message: "the agent is shutting down" };
          await this.supervisor.restart();
          return { ok: true, message: `runner restarted (${this.supervisor.status().state})` };
        },
        // Chats answer on their own topic (accepted … done/error), not with command.result.
        "chat.start": async (command) => {
          this.chat.start(command);
          return null;
        },
        "chat.cancel": async (command) => {
          this.chat.cancel(command);
          return null;
        },
        // Benchmarks answer with bench.progress / bench.result events.
        "bench.run": async (command) => {
          this.bench.start(command);
          return null;
        },
        // Rollouts answer with rollout.state / rollout.progress events; abort and rollback also say how it went.
        "rollout.apply": async (command) => {
          await this.rollout.apply(command);
          return null;
        },
        // A new broker password: on disk first, then confirmed; the server makes it the only one after this answer.
        "credentials.rotate": async (command) => {
          await this.#updateEnrollment((a) =>
            a.mqtt.nextPassword === command.password || a.mqtt.password === command.password
              ? a
              : { ...a, mqtt: { ...a.mqtt, nextPassword: command.password } },
          );
          this.#log.info("stored a new broker password; it is used from the next login");
          return { ok: true, message: "new password stored" };
        },
        "rollout.abort": (command) => this.rollout.abort(command),
        "rollout.rollback": (command) => this.rollout.rollback(command),
      },
      invalid: (json, reason) => {
        // A malformed chat.start whose request id is usable is refused where the server waits for it.
        const c = json as { type?: unknown; requestId?: unknown; runId?: unknown } | null;
        if (typeof c === "object" && c !== null && c.type === "bench.run" && BenchRunId.safeParse(c.runId).success) {
          this.bench.refuseInvalid(c.runId as string, reason);
          return true;
        }
        // e.g. a manifest with a file name like "../x": failed / bad_manifest for the rollout.
        if (this.rollout.refuseInvalid(json, reason)) return true;
        if (typeof c !== "object" || c === null || c.type !== "chat.start") return false;
        if (typeof c.requestId !== "string" || !REQUEST_ID.test(c.requestId)) return false;
        this.chat.refuseInvalid(c.requestId, invalidRequest(reason));
        return true;
      },
      reply: (event) => this.link.publishEvent(event),
      logger: options.logger,
      clock: this.#clock,
    });

    this.#stateFile = new StateFileWriter(
      dataPaths(options.dataDir).stateFile,
      options.logger,
      options.stateWriteIntervalMs ?? 2_000,
      this.#clock,
    );
    this.#wire();
  }

  onlineStatus(): Extract<DeviceStatus, { state: "online" }> {
    const models = this.rollout.models();
    return {
      state: "online",
      ts: this.#clock.now(),
      agentVersion: AGENT_VERSION,
      hostname: this.#hostname.slice(0, 255),
      arch: this.#arch.slice(0, 32),
      runner: this.supervisor.status(),
      // From models/current.json: null while the runner runs the command line's model.
      activeModel: models.active,
      previousModel: models.previous,
      runtimes: this.#runtimes,
    };
  }

  #wire(): void {
    this.supervisor.on("state", (runner: RunnerStatus) => {
      void this.link.publishStatus();
      this.link.publishEvent({ kind: "runner.state", ts: this.#clock.now(), runner });
      this.#writeState();
    });
    this.supervisor.on("exit", (exit) => {
      if (exit.expected) return;
      this.link.publishEvent({
        kind: "runner.exit",
        ts: this.#clock.now(),
        code: exit.code,
        signal: exit.signal,
        stderrTail: exit.stderrTail,
        restartInMs: exit.restartInMs ?? 0,
      });
    });
    this.link.on("connected", () => void this.#outbox.flush());
    this.link.on("change", () => this.#writeState());
    this.link.on("command", (payload) => void this.#commands.handle(payload));
  }

  async start(): Promise<void> {
    this.#log.info("agent starting", {
      agentVersion: AGENT_VERSION,
      deviceId: this.#opts.enrollment.deviceId,
      name: this.#opts.enrollment.name,
      dataDir: this.#opts.dataDir,
      runner: this.#opts.runner.bin.path,
      runnerSource: this.#opts.runner.bin.source,
      backend: this.#opts.runner.backend,
      telemetryIntervalMs: this.#opts.telemetryIntervalMs,
      chatQueueLimit: this.chat.queueLimit,
    });
    await this.#sampler.prime();
    // A model a rollout activated takes precedence over --model; a rollout a crash interrupted carries on.
    let launch: RunnerLaunch;
    try {
      launch = await this.rollout.init();
    } catch (error) {
      this.#log.error("cannot read the models folder or rollout.json; running the command line's model", { error });
      launch = this.rollout.launch();
    }
    this.supervisor.setLaunch(launch);
    if (canRun(launch)) this.supervisor.start();
    else this.#log.warn("no model to run: --runner executorch or llamacpp without --model waits for a rollout to activate one");
    // Asked until every runner answered: a probe that timed out on a busy machine is asked again later.
    this.#stopAskingCapabilities = askUntilComplete(this.capabilities, {
      onUnion: (caps) => {
        const runtimes = Object.keys(caps.runtimes).sort().slice(0, 16);
        if (this.#runtimes !== null && runtimes.join() === this.#runtimes.join()) return;
        this.#runtimes = runtimes;
        this.#log.info("runner capabilities", { runnerVersion: caps.version, runtimes: this.#runtimes });
        // The server refuses rollouts of runtimes this device cannot load before they start.
        void this.link.publishStatus();
      },
      onError: (error) => this.#log.warn("the runner does not say what it can load; rollouts will be refused", { error: error.message }),
      onRetry: (missing, delayMs) =>
        this.#log.info("asking the runners again for what they can load", { missing, inSeconds: Math.round(delayMs / 1000) }),
    });
    if (!this.#enrollment.artifactPublicKey) {
      void this.#artifactKey().catch((error: unknown) =>
        this.#log.warn("could not fetch the server's artifact key yet; tried again at the next rollout", {
          error: (error as Error).message,
        }),
      );
    }
    this.link.start();
    this.rollout.resume();
    this.#nextTickAt = this.#clock.now() + this.#opts.telemetryIntervalMs;
    this.#scheduleTick();
    this.#writeState();
  }

  /** Broker passwords to try in order: the next one during a rotation, then the current one. */
  #passwords(): string[] {
    const { password, nextPassword } = this.#enrollment.mqtt;
    return nextPassword && nextPassword !== password ? [nextPassword, password] : [password];
  }

  /** The broker accepted `password`: when it is the next one, it becomes the only one (the old one no longer works). */
  async #loggedIn(password: string): Promise<void> {
    if (this.#enrollment.mqtt.nextPassword !== password) return;
    await this.#updateEnrollment((a) =>
      a.mqtt.nextPassword === password ? { ...a, mqtt: { url: a.mqtt.url, username: a.mqtt.username, password } } : a,
    ).then(
      () => this.#log.info("logged in with the new broker password; the old one is forgotten"),
      (error: unknown) => this.#log.warn("could not save agent.json after logging in with the new password; retried next login", { error }),
    );
  }

  /** agent.json changes one at a time (atomic writes, 0600); the in-memory copy follows a successful write. */
  #updateEnrollment(change: (a: AgentFile) => AgentFile): Promise<void> {
    const run = this.#fileWrites.then(async () => {
      const next = change(this.#enrollment);
      if (next === this.#enrollment) return;
      await saveAgentFile(this.#opts.dataDir, next, this.#log);
      this.#enrollment = next;
    });
    this.#fileWrites = run.catch(() => undefined);
    return run;
  }

  /** The server's artifact key: from agent.json, else fetched once and saved there. */
  #artifactKey(): Promise<string> {
    const known = this.#enrollment.artifactPublicKey;
    if (known) return Promise.resolve(known);
    this.#keyFetch ??= (async () => {
      const { serverUrl, deviceId } = this.#enrollment;
      const key = await fetchArtifactKey({
        serverUrl,
        authorization: deviceAuthorization(deviceId, this.#passwords()[0]!),
        fetch: this.#opts.trust?.fetch,
      });
      await this.#updateEnrollment((a) => ({ ...a, artifactPublicKey: key })).catch((error: unknown) =>
        this.#log.warn("could not save the artifact key in agent.json; it is fetched again next start", { error }),
      );
      this.#log.info("fetched the server's artifact key");
      return key;
    })().finally(() => {
      this.#keyFetch = null;
    });
    return this.#keyFetch;
  }

  #scheduleTick(): void {
    if (this.#closing) return;
    const delay = Math.max(0, this.#nextTickAt - this.#clock.now());
    this.#tickTimer = setTimeout(() => void this.#tick(), delay);
  }

  async #tick(): Promise<void> {
    this.#tickTimer = null;
    // Fixed rate: the next tick is due one interval after this one was, however long this one took.
    this.#nextTickAt = Math.max(this.#nextTickAt + this.#opts.telemetryIntervalMs, this.#clock.now());
    try {
      await this.supervisor.pollRss();
      const sample = await this.#sampler.sample();
      if (sample) {
        this.#outbox.add(sample);
        this.#lastSampleAt = sample.ts;
      }
      await this.#outbox.flush();
    } catch (error) {
      this.#log.error("telemetry tick failed", { error });
    } finally {
      this.#writeState();
      this.#scheduleTick();
    }
  }

  stateSnapshot(running = true): AgentStateFile {
    const now = this.#clock.now();
    const connection = this.link.info();
    return {
      version: 1,
      pid: process.pid,
      agentVersion: AGENT_VERSION,
      deviceId: this.#opts.enrollment.deviceId,
      startedAt: this.#startedAt,
      updatedAt: now,
      running,
      connection: { ...connection, url: publicMqttUrl(this.#opts.enrollment.mqtt.url) },
      runner: { ...this.supervisor.status(), badLines: this.supervisor.badLines },
      telemetry: {
        intervalMs: this.#opts.telemetryIntervalMs,
        lastSampleAt: this.#lastSampleAt,
        lastPublishedAt: this.#outbox.lastPublishedAt,
        buffered: this.#outbox.buffered,
        dropped: this.#outbox.dropped,
      },
    };
  }

  #writeState(): void {
    // After the final snapshot, a late event (a tick finishing) must not mark the agent running again.
    if (this.#stateFinal) return;
    this.#stateFile.update(this.stateSnapshot());
  }

  /**
   * Clean shutdown: chats and benchmarks ended (the running one cancelled and its partial
   * answer or results sent, queued ones refused), runner shutdown, retained offline status, disconnect, final state file.
   */
  shutdown(reason = "shutdown"): Promise<void> {
    this.#closing ??= (async () => {
      this.#log.info("agent shutting down", { reason });
      if (this.#tickTimer) clearTimeout(this.#tickTimer);
      this.#tickTimer = null;
      this.#stopAskingCapabilities?.();
      // A download stops at once (its partial file stays for the resume); the rollout's state stays on disk.
      await this.rollout.shutdown();
      // While the link is still up, so every chat's last message reaches the server.
      await Promise.all([this.bench.shutdown(), this.chat.shutdown()]);
      // The runner first, so its last state change is published before `offline`, which must be the final status.
      await this.supervisor.stop();
      // `offline` goes out once the broker acknowledged every chat message and event queued before it
      // (at most a few seconds): the server must never see a device offline before that chat's `done`.
      const announced = await this.link.publishOffline();
      if (!announced) this.#log.info("not connected: the broker's last will reports this device offline");
      await this.link.stop();
      this.#stateFinal = true;
      await this.#stateFile.flush(this.stateSnapshot(false));
      this.#log.info("agent stopped");
    })();
    return this.#closing;
  }
}
