/**
 * Runs a device's rollout through the declared state machine (state-machine.ts):
 *
 *   preflight     manifest valid and its id right, signature verifies with the server's key,
 *                 runtime / version / profile supported by this runner, RAM, free disk for the
 *                 new files while the active and previous models are kept — refused before a byte
 *   downloading   each file to `.partial/<sha256>`, Range-resumed, hashed in the same pass
 *   verifying     signature again, size and sha256 of every file; a mismatch deletes the partial
 *                 and downloads again from a clean state while the attempt budget lasts
 *   staged        fsync, rename into models/<artifactId>/, fsync the folder
 *   activating    (holding the runner) stop it, switch current.json (previous = the old active),
 *                 start it on the new model
 *   health_check  loaded within the gate's timeout; the reference prompt's token ids; the tokens/s floor
 *   active        older models beyond active + previous are deleted
 *
 * Each transition is written to rollout.json before it is taken, and each state's work
 * can be done again, so the agent resumes from whatever state a SIGKILL or power cut
 * left. The pointer only switches in `activating`, after staging; any failure after that
 * switches it back and restarts the old model (`rolled_back`); a failure before it leaves
 * the old model running untouched (`failed`).
 *
 * Commands: rollout.apply (idempotent per rollout id: a rollout in hand or finished is
 * answered with its state; one that ended badly and comes with a higher `attempt` is a
 * retry; another rollout while one runs is refused), rollout.abort (before activating),
 * rollout.rollback (back to the previous model, at any point).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import {
  type ActiveModel,
  type DeviceEvent,
  type RolloutAbortCommand,
  RolloutApplyCommand,
  ArtifactId,
  type RolloutDeviceState,
  type RolloutError,
  type RolloutErrorCode,
  RolloutId,
  type RolloutRollbackCommand,
  type ArtifactFile,
  SignedBlobChunkList,
  canonicalJson,
  manifestBytes,
  MODEL_RAM_HEADROOM_BYTES,
} from "@orchard/contracts";
import { formatBytes } from "@orchard/format";
import type { RunnerConfig } from "../config/cli.js";
import type { BackoffOptions } from "../lib/backoff.js";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { RunnerRequestError } from "../runner/generation.js";
import type { RunnerLaunch } from "../runner/supervisor.js";
import { readMemory } from "../telemetry/memory.js";
import { type RunnerCapabilities, unsupportedReason } from "./capabilities.js";
import { type DownloadChunks, DownloadError, downloadFile } from "./download.js";
import { HEALTH_DEFAULT_TOKENS, HEALTH_PROMPT, healthProblem } from "./health.js";
import type { ModelHost } from "./model-host.js";
import {
  type CurrentModels,
  type ModelEntry,
  type ModelStore,
  NO_MODELS,
  UnsafeFileNameError,
  describeModel,
  fileSize,
} from "./model-store.js";
import { ProgressMeter } from "./progress.js";
import {
  EMPTY_ROLLOUT_FILE,
  ROLLOUT_HISTORY,
  type RolloutFile,
  type RolloutRecord,
  type RolloutSummary,
  loadRolloutFile,
  saveRolloutFile,
  summarize,
} from "./rollout-file.js";
import { chunkListProblem, signatureProblem } from "./signature.js";
import { POST_SWITCH_STATES, assertRolloutTransition, isTerminal } from "./state-machine.js";

export type RolloutEvent = Extract<DeviceEvent, { kind: "rollout.state" | "rollout.progress" }>;

/** What apply, abort and rollback answer with (becomes the command.result). */
export interface RolloutReply {
  ok: boolean;
  message: string;
}

export interface RolloutRunnerOptions {
  store: ModelStore;
  host: ModelHost;
  /** The command line's runner settings: what runs when no rolled-out model is active. */
  cli: RunnerConfig;
  /** ${dataDir}/rollout.json */
  stateFile: string;
  /** The server the agent enrolled with; a downloadUrl that is a path is resolved against it. */
  serverUrl: string;
  /** The Authorization header for downloads (Basic device id : broker password). */
  authorization: () => string;
  /** fetch for downloads, with the CAs the agent trusts (lib/trust.ts); the global one by default. */
  fetch?: typeof fetch;
  /** The server's artifact public key (base64 SPKI), fetched when the agent has none; throws with why not. */
  artifactKey: () => Promise<string>;
  capabilities: () => Promise<RunnerCapabilities>;
  publish: (event: RolloutEvent) => void;
  /** The pointer changed (the device's status reports the active and previous model). */
  onModelsChanged?: (current: CurrentModels) => void;
  logger: Logger;
  clock?: Clock;
  /** Root for /proc (the RAM check). */
  systemRoot?: string;
  /** Downloads from a clean state per run (the first one included) before `hash_mismatch`. */
  downloadAttempts?: number;
  /** At most this many transient HTTP failures in a row are retried (resuming); none by default: DOWNLOAD_RETRY_BUDGET_MS decides. */
  httpRetries?: number;
  downloadBackoff?: BackoffOptions;
  idleTimeoutMs?: number;
  progressIntervalMs?: number;
  progressMinIntervalMs?: number;
  /**
   * Fault injection for tests: called at each step ("state:<state>" before a state's work,
   * "activating:stopped", "activating:switched", "rolled_back:stopped", "rolled_back:switched",
   * "downloading:file", "health_check:ready"). Throwing fails that step; throwing a
   * SimulatedCrash stops the runner on the spot, as a SIGKILL would.
   */
  fault?: (point: string) => void | Promise<void>;
}

/** Thrown by a test's fault hook: the runner stops dead, writing and reporting nothing more. */
export class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
}

class StepFailure extends Error {
  override readonly name = "StepFailure";
  constructor(
    readonly code: RolloutErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type StopReason = { kind: "shutdown" } | { kind: "abort"; message: string } | { kind: "rollback"; message: string };

/** MemTotal must hold the mmapped model and this much more (executorch, llama.cpp); the server's rollout preflight uses the same figure. */
export const RAM_HEADROOM_BYTES = MODEL_RAM_HEADROOM_BYTES;
/** Start-ups in activating / health_check after which the new model is given up on. */
export const MAX_POST_SWITCH_RESUMES = 2;
const SHUTDOWN_WAIT_MS = 10_000;
/** A chunk list (a few hundred KiB at most) that takes longer than this is done without. */
const CHUNK_LIST_TIMEOUT_MS = 60_000;
const CHUNK_LIST_MAX_BYTES = 1024 * 1024;
const MESSAGE_MAX = 2000;

function clip(message: string): string {
  return message.length > MESSAGE_MAX ? `${message.slice(0, MESSAGE_MAX - 1)}…` : message;
}

function stopReasonOf(signal: AbortSignal | null): StopReason | null {
  if (!signal?.aborted) return null;
  const reason = signal.reason as StopReason | undefined;
  return reason && typeof reason === "object" && "kind" in reason ? reason : null;
}

function isEnospc(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

function failureOf(error: unknown): RolloutError {
  if (error instanceof StepFailure) return { code: error.code, message: clip(error.message) };
  if (error instanceof UnsafeFileNameError) return { code: "bad_manifest", message: clip(error.message) };
  if (isEnospc(error)) return { code: "disk_full", message: clip(`the disk is full: ${(error as Error).message}`) };
  return { code: "internal", message: clip(`the agent failed: ${error instanceof Error ? error.message : String(error)}`) };
}

async function hashFile(file: string, signal: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024, signal })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export class RolloutRunner {
  readonly #opts: RolloutRunnerOptions;
  readonly #store: ModelStore;
  readonly #host: ModelHost;
  readonly #log: Logger;
  readonly #clock: Clock;
  #file: RolloutFile = EMPTY_ROLLOUT_FILE;
  #current: CurrentModels = NO_MODELS;
  /** sha256 computed while downloading, by `${artifactId}/${file sha256}` (lost with the process: verifying re-reads then). */
  readonly #digests = new Map<string, string>();
  #ctl: AbortController | null = null;
  #driving: Promise<void> | null = null;
  #mutex: Promise<void> = Promise.resolve();
  #closing = false;
  #halted = false;

  constructor(options: RolloutRunnerOptions) {
    this.#opts = options;
    this.#store = options.store;
    this.#host = options.host;
    this.#log = options.logger.child({ component: "rollout" });
    this.#clock = options.clock ?? systemClock;
  }

  // ---------------------------------------------------------------- start-up

  /**
   * Reads the pointer and the rollout in hand, finishes a switch back that a crash
   * interrupted, and says what the runner should start with (before resume()).
   */
  async init(): Promise<RunnerLaunch> {
    await this.#store.ensureDir();
    this.#file = await loadRolloutFile(this.#opts.stateFile, this.#log);
    this.#current = await this.#store.readCurrent();

    const active = this.#current.active;
    if (active && !(await this.#store.isInstalled(active))) {
      this.#log.error("the active model's files are missing or damaged; running the command line's model", {
        artifactId: active.artifactId,
      });
      const previous = this.#current.previous && (await this.#store.isInstalled(this.#current.previous)) ? this.#current.previous : null;
      await this.#writeCurrent({ active: null, previous });
    }

    const r = this.#file.current;
    if (r && POST_SWITCH_STATES.includes(r.state)) {
      if (r.resumes >= MAX_POST_SWITCH_RESUMES) {
        this.#log.error("the agent restarted during this rollout's activation too often; switching back", {
          rolloutId: r.rolloutId,
          resumes: r.resumes,
        });
        await this.#to(
          "rolled_back",
          {
            error: {
              code: "load_failed",
              message: `the agent restarted ${r.resumes + 1} times while activating this model (the device may run out of memory loading it); switched back to the previous model`,
            },
          },
          null,
          true,
        );
      } else {
        await this.#persist({ ...r, resumes: r.resumes + 1 }, false);
      }
    }
    const now = this.#file.current;
    // A switch back that a crash interrupted: the failed model must not be what the runner starts with.
    if (now && now.state === "rolled_back" && !now.finished && this.#current.active?.artifactId === now.artifactId) {
      await this.#writeCurrent(await this.#restoreTarget(now.artifactId, now.before));
    }
    return this.launch();
  }

  /** Carries on with the rollout in hand (after the runner was started with init()'s launch). */
  resume(): void {
    const r = this.#file.current;
    if (!r || this.#closing) return;
    if (isTerminal(r.state) && r.finished) return;
    this.#log.info("resuming the rollout in hand", { rolloutId: r.rolloutId, state: r.state, attempt: r.attempt });
    this.#startDrive();
  }

  /** What the runner runs now: the active rolled-out model, else the command line's. */
  launch(): RunnerLaunch {
    return this.#store.launchFor(this.#current.active, this.#opts.cli);
  }

  /** The active and previous models as the device reports them. */
  models(): { active: ActiveModel | null; previous: ActiveModel | null } {
    return {
      active: this.#current.active ? describeModel(this.#current.active) : null,
      previous: this.#current.previous ? describeModel(this.#current.previous) : null,
    };
  }

  /** The rollout in hand (or the last one), for status output and tests. */
  record(): RolloutRecord | null {
    return this.#file.current;
  }

  history(): readonly RolloutSummary[] {
    return this.#file.history;
  }

  /** Resolves when the rollout in hand has stopped moving (ended, or waits for a command). */
  async idle(): Promise<void> {
    while (this.#driving) await this.#driving;
  }

  /** Publishes the state of the rollout in hand again (after reconnecting). */
  resendState(): void {
    const r = this.#file.current;
    if (r) this.#publishState(r);
  }

  /** Stops working (downloads end at once; partial files stay for the resume); the state on disk stays where it is. */
  async shutdown(): Promise<void> {
    this.#closing = true;
    this.#ctl?.abort({ kind: "shutdown" } satisfies StopReason);
    const driving = this.#driving;
    if (!driving) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([driving, new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_WAIT_MS)))]);
    clearTimeout(timer);
  }

  // ---------------------------------------------------------------- commands

  apply(command: RolloutApplyCommand): Promise<void> {
    return this.#serial(async () => {
      const parsed = RolloutApplyCommand.safeParse(command);
      if (!parsed.success) {
        const reason = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
        if (!this.refuseInvalid(command, `invalid command: ${reason}`)) this.#log.warn("invalid rollout.apply ignored", { reason });
        return;
      }
      const c = parsed.data;
      const serverAttempt = c.attempt ?? 1;
      const r = this.#file.current;
      // A retry: the same rollout, a higher server attempt, after it ended badly. Anything else with its id is a re-delivery.
      const isRetry = (s: Pick<RolloutRecord, "state" | "serverAttempt">) =>
        (s.state === "failed" || s.state === "rolled_back" || s.state === "aborted") && serverAttempt > s.serverAttempt;
      if (r && r.rolloutId === c.rolloutId) {
        if (!isRetry(r) || !r.finished || this.#driving) {
          this.#log.info("rollout.apply for the rollout in hand; answering with its state", { rolloutId: r.rolloutId, state: r.state });
          this.#publishState(r);
          return;
        }
        this.#log.info("rollout.apply with a higher attempt after it ended badly: a retry", {
          rolloutId: r.rolloutId,
          was: r.state,
          attempt: serverAttempt,
        });
      } else {
        const old = this.#file.history.find((h) => h.rolloutId === c.rolloutId);
        if (old && !isRetry(old)) {
          this.#publishState(old);
          return;
        }
        if ((r && !(isTerminal(r.state) && r.finished)) || this.#driving) {
          const busy = r ?? null;
          this.#log.warn("rollout.apply refused: another rollout is in hand", { rolloutId: c.rolloutId, busyWith: busy?.rolloutId });
          this.#publish({
            kind: "rollout.state",
            ts: this.#clock.now(),
            rolloutId: c.rolloutId,
            artifactId: c.artifactId,
            state: "failed",
            attempt: 0,
            serverAttempt,
            error: {
              code: "internal",
              message: clip(
                `this device is busy with rollout ${busy?.rolloutId ?? "?"} (${busy?.state ?? "finishing"}); it runs one rollout at a time: send this one again once that one has ended, or abort it`,
              ),
            },
          });
          return;
        }
      }
      const history =
        r && r.rolloutId !== c.rolloutId
          ? [summarize(r), ...this.#file.history.filter((h) => h.rolloutId !== r.rolloutId && h.rolloutId !== c.rolloutId)]
          : this.#file.history.filter((h) => h.rolloutId !== c.rolloutId);
      const now = this.#clock.now();
      const record: RolloutRecord = {
        rolloutId: c.rolloutId,
        commandId: c.id,
        serverAttempt,
        artifactId: c.artifactId,
        signed: c.signed,
        downloadUrl: c.downloadUrl,
        health: c.health,
        state: "pending",
        attempt: 0,
        error: null,
        before: null,
        finished: false,
        resumes: 0,
        startedAt: now,
        updatedAt: now,
      };
      this.#file = { version: 1, current: record, history: history.slice(0, ROLLOUT_HISTORY) };
      try {
        await saveRolloutFile(this.#opts.stateFile, this.#file);
      } catch (error) {
        this.#log.error("could not write rollout.json; the rollout runs but will not survive a restart", { error });
      }
      this.#log.info("rollout received", {
        rolloutId: c.rolloutId,
        artifactId: c.artifactId,
        name: c.signed.manifest.name,
        version: c.signed.manifest.version,
        bytes: manifestBytes(c.signed.manifest),
      });
      this.#publishState(record);
      if (!this.#closing) this.#startDrive();
    });
  }

  /**
   * A rollout.apply that failed the contract (e.g. a file name with "../"): answered with
   * `failed`/`bad_manifest` when its rollout and artifact ids are usable; false otherwise.
   */
  refuseInvalid(json: unknown, reason: string): boolean {
    const c = json as { type?: unknown; rolloutId?: unknown; artifactId?: unknown; attempt?: unknown } | null;
    if (typeof c !== "object" || c === null || c.type !== "rollout.apply") return false;
    const rolloutId = RolloutId.safeParse(c.rolloutId);
    const artifactId = ArtifactId.safeParse(c.artifactId);
    if (!rolloutId.success || !artifactId.success) return false;
    const attempt = RolloutApplyCommand.shape.attempt.safeParse(c.attempt);
    this.#log.warn("rollout.apply refused: not a valid command", { rolloutId: rolloutId.data, reason });
    this.#publish({
      kind: "rollout.state",
      ts: this.#clock.now(),
      rolloutId: rolloutId.data,
      artifactId: artifactId.data,
      state: "failed",
      attempt: 0,
      serverAttempt: attempt.success ? (attempt.data ?? 1) : 1,
      error: { code: "bad_manifest", message: clip(`the device refused the rollout: ${reason}`) },
    });
    return true;
  }

  abort(command: Pick<RolloutAbortCommand, "rolloutId">): Promise<RolloutReply> {
    return this.#serial(async () => {
      const id = command.rolloutId;
      const r = this.#file.current;
      if (!r || r.rolloutId !== id) {
        const old = this.#file.history.find((h) => h.rolloutId === id);
        if (old) {
          this.#publishState(old);
          return { ok: true, message: `rollout ${id} already ended on this device (${old.state})` };
        }
        return { ok: true, message: `rollout ${id} is not on this device: nothing to abort` };
      }
      if (isTerminal(r.state)) {
        if (this.#driving) await this.#driving;
        this.#publishState(this.#record());
        return { ok: true, message: `rollout ${id} already ended on this device (${r.state})` };
      }
      if (POST_SWITCH_STATES.includes(r.state)) {
        return {
          ok: false,
          message: `too late to abort rollout ${id}: the device has switched to the new model and is ${r.state === "activating" ? "starting it" : "checking its health"}; it finishes that (switching back if it fails). Roll it back instead.`,
        };
      }
      const reason: StopReason = { kind: "abort", message: "aborted by an operator before activation; the previous model kept running" };
      if (this.#ctl) {
        this.#ctl.abort(reason);
        await this.idle();
      } else {
        await this.#to("aborted", { error: { code: "aborted", message: reason.message } }, null, true);
        await this.#finish();
      }
      const after = this.#record();
      return after.state === "aborted"
        ? {
            ok: true,
            message: `rollout ${id} aborted before activation; its partial downloads were deleted and the previous model kept running`,
          }
        : { ok: false, message: `rollout ${id} was not aborted: it is ${after.state}` };
    });
  }

  rollback(command: Pick<RolloutRollbackCommand, "rolloutId">): Promise<RolloutReply> {
    return this.#serial(async () => {
      const id = command.rolloutId;
      const message = "rolled back by an operator";
      let r = this.#file.current;
      if (!r || r.rolloutId !== id) return this.#rollbackOlder(id);
      const wasTerminal = isTerminal(r.state);
      if (!isTerminal(r.state) && this.#ctl) {
        this.#ctl.abort({ kind: "rollback", message } satisfies StopReason);
      } else if (!isTerminal(r.state)) {
        await this.#to("rolled_back", { error: { code: "rolled_back", message } }, null, true);
      }
      await this.idle();
      r = this.#record();
      if (r.state === "active") {
        await this.#host.exclusive(
          `rollout:${id}`,
          async () => {
            await this.#to("rolled_back", { error: { code: "rolled_back", message } }, null, true);
            await this.#switchBack(this.#record(), true);
          },
          new AbortController().signal,
        );
        await this.#finish();
      } else if (r.state === "rolled_back" && !r.finished) {
        await this.#finish();
      } else if (wasTerminal) {
        this.#publishState(r); // nothing changed: say where it is
      }
      r = this.#record();
      if (r.state === "rolled_back") return { ok: true, message: this.#rolledBackMessage(id) };
      return { ok: true, message: `nothing to roll back: rollout ${id} ${r.state} before switching models; the previous model is active` };
    });
  }

  /** Rolls back a rollout that a later one superseded, when its model is still the active one. */
  async #rollbackOlder(id: string): Promise<RolloutReply> {
    const index = this.#file.history.findIndex((h) => h.rolloutId === id);
    const old = this.#file.history[index];
    if (!old) return { ok: false, message: `rollout ${id} is not on this device` };
    if (old.state !== "active" || this.#current.active?.artifactId !== old.artifactId) {
      this.#publishState(old);
      return { ok: true, message: `nothing to roll back: rollout ${id}'s model is not the active one here` };
    }
    if (this.#driving) return { ok: false, message: `rollout ${this.#file.current?.rolloutId} is in progress here; abort it first` };
    await this.#host.exclusive(
      `rollout:${id}`,
      () => this.#switchBack({ artifactId: old.artifactId, before: null }, true),
      new AbortController().signal,
    );
    const updated: RolloutSummary = {
      ...old,
      state: "rolled_back",
      error: { code: "rolled_back", message: "rolled back by an operator" },
      updatedAt: this.#clock.now(),
    };
    const history = [...this.#file.history];
    history[index] = updated;
    await this.#saveFile({ ...this.#file, history }, true);
    await this.#prune(null);
    this.#publishState(updated);
    return { ok: true, message: this.#rolledBackMessage(id) };
  }

  #rolledBackMessage(rolloutId: string): string {
    const active = this.#current.active;
    const runs = active ? `${active.signed.manifest.name} ${active.signed.manifest.version}` : "its command-line model";
    return `rollout ${rolloutId} rolled back; the device runs ${runs}`;
  }

  // ---------------------------------------------------------------- the drive

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#mutex.then(fn, fn);
    this.#mutex = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #record(): RolloutRecord {
    const r = this.#file.current;
    if (!r) throw new Error("no rollout in hand");
    return r;
  }

  #startDrive(): void {
    if (this.#driving) return;
    const ctl = new AbortController();
    this.#ctl = ctl;
    this.#driving = this.#drive(ctl.signal)
      .catch((error: unknown) => this.#log.error("the rollout stopped on an unexpected error", { error }))
      .finally(() => {
        if (this.#ctl === ctl) this.#ctl = null;
        this.#driving = null;
      });
  }

  async #drive(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.#halted) return;
      const r = this.#record();
      if (isTerminal(r.state)) {
        if (!r.finished) await this.#finish();
        return;
      }
      try {
        await this.#fault(`state:${r.state}`);
        await this.#step(r, signal);
      } catch (error) {
        if (error instanceof SimulatedCrash) {
          this.#halted = true;
          return;
        }
        const reason = stopReasonOf(signal);
        if (reason?.kind === "shutdown" || this.#closing) return;
        const cur = this.#record();
        if (isTerminal(cur.state)) continue;
        if (reason?.kind === "abort") {
          await this.#to("aborted", { error: { code: "aborted", message: reason.message } }, null, true);
          continue;
        }
        if (reason?.kind === "rollback") {
          await this.#to("rolled_back", { error: { code: "rolled_back", message: reason.message } }, null, true);
          continue;
        }
        const failure = failureOf(error);
        this.#log.warn("rollout step failed", { rolloutId: cur.rolloutId, state: cur.state, code: failure.code, message: failure.message });
        await this.#to(POST_SWITCH_STATES.includes(cur.state) ? "rolled_back" : "failed", { error: failure }, null, true);
      }
    }
  }

  async #step(r: RolloutRecord, signal: AbortSignal): Promise<void> {
    switch (r.state) {
      case "pending":
        return this.#to("preflight", {}, signal);
      case "preflight": {
        const already = await this.#preflight(r, signal);
        if (already) return this.#to("active", {}, signal);
        return this.#to("downloading", { attempt: r.attempt + 1 }, signal);
      }
      case "downloading":
        await this.#download(r, signal);
        return this.#to("verifying", {}, signal);
      case "verifying": {
        const problem = await this.#verify(r, signal);
        if (problem === null) return this.#to("staged", {}, signal);
        if (r.attempt < (this.#opts.downloadAttempts ?? 2)) {
          this.#log.warn("downloaded files do not match the manifest; downloading them again from a clean state", {
            rolloutId: r.rolloutId,
            attempt: r.attempt,
            problem,
          });
          return this.#to("downloading", { attempt: r.attempt + 1 }, signal);
        }
        throw new StepFailure("hash_mismatch", `${problem} (after ${r.attempt} download attempts)`);
      }
      case "staged":
        await this.#stage(r);
        return this.#to("activating", {}, signal);
      case "activating":
      case "health_check":
        return this.#activateAndCheck(signal);
      default:
        return;
    }
  }

  // ---------------------------------------------------------------- steps

  /** True when the artifact is the active model already (nothing to do). Throws StepFailure when refused. */
  async #preflight(r: RolloutRecord, signal: AbortSignal): Promise<boolean> {
    const { manifest } = r.signed;
    const id = createHash("sha256").update(canonicalJson(manifest)).digest("hex");
    if (id !== r.artifactId) {
      throw new StepFailure("bad_manifest", `the artifact id ${r.artifactId} is not the sha256 of its manifest (${id})`);
    }
    for (const file of manifest.files) this.#store.filePath(r.artifactId, file.name); // throws UnsafeFileNameError → bad_manifest
    this.#blobUrl(r.downloadUrl, manifest.files[0]!.sha256);

    let key: string;
    try {
      key = await this.#opts.artifactKey();
    } catch (error) {
      throw new StepFailure("bad_signature", `cannot check the manifest's signature: ${(error as Error).message}`);
    }
    const bad = signatureProblem(r.signed, key);
    if (bad) throw new StepFailure("bad_signature", bad);

    let caps: RunnerCapabilities;
    try {
      caps = await this.#opts.capabilities();
    } catch (error) {
      throw new StepFailure("unsupported_runtime", (error as Error).message);
    }
    const unsupported = unsupportedReason(manifest, caps);
    if (unsupported) throw new StepFailure("unsupported_runtime", unsupported);

    if (this.#current.active?.artifactId === r.artifactId && (await this.#store.isInstalled(this.#current.active))) {
      this.#log.info("the artifact is the active model already", { rolloutId: r.rolloutId, artifactId: r.artifactId });
      return true;
    }

    const model = manifest.files.find((f) => f.role === "model")!;
    if (manifest.runtime === "executorch" || manifest.runtime === "llama.cpp") {
      const memory = await readMemory(this.#opts.systemRoot);
      const need = model.size + RAM_HEADROOM_BYTES;
      if (memory && memory.memTotalBytes < need) {
        throw new StepFailure(
          "insufficient_memory",
          `the model needs ${formatBytes(need)} of RAM (${formatBytes(model.size)} mapped + ${formatBytes(RAM_HEADROOM_BYTES)}), this device has ${formatBytes(memory.memTotalBytes)}`,
        );
      }
    }

    signal.throwIfAborted();
    // Room: delete what is neither active nor previous first, never those two.
    const keep = new Set([r.artifactId]);
    if (this.#current.active) keep.add(this.#current.active.artifactId);
    if (this.#current.previous) keep.add(this.#current.previous.artifactId);
    await this.#store.prune(keep);
    const total = manifestBytes(manifest);
    const present = await this.#store.presentBytes(r.artifactId, manifest);
    const need = total - present;
    const room = await this.#store.freeBytes();
    if (need > room.free) {
      const limit =
        room.quotaLeft !== null && room.quotaLeft < room.diskFree
          ? `the models quota (--models-quota ${formatBytes(this.#store.quotaBytes ?? 0)}) leaves ${formatBytes(room.quotaLeft)}`
          : `${formatBytes(room.diskFree)} free on the disk`;
      throw new StepFailure(
        "disk_full",
        `not enough room for the model: it needs ${formatBytes(need)} more (${formatBytes(total)} in all, ${formatBytes(present)} already here) while keeping the active and previous models, and ${limit}`,
      );
    }
    return false;
  }

  #blobUrl(downloadUrl: string, sha256: string): string {
    let base: URL;
    try {
      base = new URL(downloadUrl, `${this.#opts.serverUrl.replace(/\/+$/, "")}/`);
    } catch {
      throw new StepFailure("download_failed", `the download URL ${downloadUrl.slice(0, 200)} is not a URL`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new StepFailure("download_failed", `the download URL ${base.origin} is not http(s)`);
    }
    return `${base.href.replace(/\/+$/, "")}/${sha256}`;
  }

  async #download(r: RolloutRecord, signal: AbortSignal): Promise<void> {
    const { manifest } = r.signed;
    const meter = new ProgressMeter({
      total: manifestBytes(manifest),
      done: await this.#store.presentBytes(r.artifactId, manifest),
      clock: this.#clock,
      intervalMs: this.#opts.progressIntervalMs,
      minIntervalMs: this.#opts.progressMinIntervalMs,
      emit: (p) =>
        this.#publish({
          kind: "rollout.progress",
          ts: this.#clock.now(),
          rolloutId: r.rolloutId,
          artifactId: r.artifactId,
          state: "downloading",
          ...p,
          serverAttempt: r.serverAttempt,
        }),
    });
    for (const file of manifest.files) {
      if ((await fileSize(this.#store.filePath(r.artifactId, file.name))) === file.size) continue; // staged before
      try {
        const url = this.#blobUrl(r.downloadUrl, file.sha256);
        // The device's credentials go only to the server it enrolled with, never to another host a URL names.
        const authorization = new URL(url).origin === new URL(this.#opts.serverUrl).origin ? this.#opts.authorization() : undefined;
        const result = await downloadFile({
          url,
          fetch: this.#opts.fetch,
          authorization,
          chunks: await this.#chunkList(url, authorization, file, signal),
          partialPath: this.#store.partialPath(r.artifactId, file.sha256),
          expectedSize: file.size,
          signal,
          onBytes: (delta) => meter.add(delta),
          logger: this.#log,
          retries: this.#opts.httpRetries,
          backoff: this.#opts.downloadBackoff,
          idleTimeoutMs: this.#opts.idleTimeoutMs,
        });
        this.#digests.set(`${r.artifactId}/${file.sha256}`, result.sha256);
        this.#log.info("file downloaded", { rolloutId: r.rolloutId, file: file.name, bytes: result.size, fetched: result.fetchedBytes });
      } catch (error) {
        if (error instanceof DownloadError) throw new StepFailure(error.code, `${file.name}: ${error.message}`);
        throw error;
      }
      await this.#fault("downloading:file");
    }
    meter.finish();
  }

  /**
   * The server's signed chunk hashes of a file (`{blob url}/chunks`), to check the download
   * chunk by chunk; null (the whole-file sha256 alone, as before) when the server has none
   * (an older server: 404), cannot say now, or sends one that does not verify with the
   * server's key or is for another file.
   */
  async #chunkList(
    url: string,
    authorization: string | undefined,
    file: ArtifactFile,
    signal: AbortSignal,
  ): Promise<DownloadChunks | null> {
    const without = (why: string, level: "debug" | "warn" = "warn") => {
      this.#log[level]("downloading without chunk hashes (the whole file's sha256 is checked at the end)", { file: file.name, why });
      return null;
    };
    let signed: SignedBlobChunkList;
    try {
      const response = await (this.#opts.fetch ?? fetch)(`${url}/chunks`, {
        headers: authorization === undefined ? {} : { authorization },
        signal: AbortSignal.any([signal, AbortSignal.timeout(CHUNK_LIST_TIMEOUT_MS)]),
        redirect: "error",
      });
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        return without(`the server answered ${response.status}`, response.status === 404 ? "debug" : "warn");
      }
      const text = await response.text();
      if (text.length > CHUNK_LIST_MAX_BYTES) return without(`the chunk list is ${text.length} bytes`);
      const parsed = SignedBlobChunkList.safeParse(JSON.parse(text));
      if (!parsed.success) return without(`the chunk list is malformed: ${parsed.error.issues[0]?.message ?? "?"}`);
      signed = parsed.data;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      return without(`the chunk list could not be fetched: ${(error as Error).message}`);
    }
    let key: string;
    try {
      key = await this.#opts.artifactKey();
    } catch (error) {
      return without(`no key to check the chunk list with: ${(error as Error).message}`);
    }
    const bad = chunkListProblem(signed, key);
    if (bad) return without(bad);
    if (signed.list.sha256 !== file.sha256 || signed.list.size !== file.size) {
      return without(`the chunk list is for ${signed.list.sha256} (${signed.list.size} bytes), not this file`);
    }
    return { chunkSize: signed.list.chunkSize, sha256: signed.list.chunks };
  }

  /** Null when every file is what the manifest says; else what is wrong (the bad partials are deleted). */
  async #verify(r: RolloutRecord, signal: AbortSignal): Promise<string | null> {
    let key: string;
    try {
      key = await this.#opts.artifactKey();
    } catch (error) {
      throw new StepFailure("bad_signature", `cannot check the manifest's signature: ${(error as Error).message}`);
    }
    const bad = signatureProblem(r.signed, key);
    if (bad) throw new StepFailure("bad_signature", bad);

    const problems: string[] = [];
    for (const file of r.signed.manifest.files) {
      if ((await fileSize(this.#store.filePath(r.artifactId, file.name))) === file.size) continue; // staged (verified) before
      const partial = this.#store.partialPath(r.artifactId, file.sha256);
      const digestKey = `${r.artifactId}/${file.sha256}`;
      const size = await fileSize(partial);
      if (size !== file.size) {
        problems.push(`${file.name} has ${size ?? 0} bytes, the manifest says ${file.size}`);
        this.#digests.delete(digestKey);
        await rm(partial, { force: true });
        continue;
      }
      const digest = this.#digests.get(digestKey) ?? (await hashFile(partial, signal));
      this.#digests.delete(digestKey);
      if (digest !== file.sha256) {
        problems.push(`${file.name} has sha256 ${digest}, the manifest says ${file.sha256}`);
        await rm(partial, { force: true });
      }
    }
    return problems.length === 0 ? null : `the downloaded files do not match the manifest: ${problems.join("; ")}`;
  }

  async #stage(r: RolloutRecord): Promise<void> {
    for (const file of r.signed.manifest.files) await this.#store.stageFile(r.artifactId, file);
    await this.#store.removePartials(r.artifactId);
  }

  /** activating and health_check, holding the runner; any failure switches back before it lets go. */
  async #activateAndCheck(signal: AbortSignal): Promise<void> {
    const key = `rollout:${this.#record().rolloutId}`;
    await this.#host.exclusive(
      key,
      async () => {
        try {
          const r = this.#record();
          const entry: ModelEntry = { artifactId: r.artifactId, signed: r.signed };
          if (r.state === "activating") {
            const current = await this.#store.readCurrent();
            this.#log.info("activating: stopping the runner", { rolloutId: r.rolloutId, artifactId: r.artifactId });
            await this.#host.stop();
            await this.#fault("activating:stopped");
            if (current.active?.artifactId !== r.artifactId) {
              // What to switch back to, on disk before the switch.
              await this.#persist(
                { ...r, before: { active: current.active, previous: current.previous }, updatedAt: this.#clock.now() },
                false,
              );
              await this.#writeCurrent({ active: entry, previous: current.active });
              await this.#fault("activating:switched");
            }
            await this.#host.start(this.#store.launchFor(entry, this.#opts.cli));
            await this.#to("health_check", {}, signal);
            await this.#fault("state:health_check");
          }
          await this.#healthCheck(this.#record(), signal);
          await this.#to("active", {}, signal);
        } catch (error) {
          if (error instanceof SimulatedCrash) throw error;
          const reason = stopReasonOf(signal);
          if (reason?.kind === "shutdown" || this.#closing) throw error;
          const failure: RolloutError = reason?.kind === "rollback" ? { code: "rolled_back", message: reason.message } : failureOf(error);
          const r = this.#record();
          this.#log.warn("the new model failed after the switch; switching back", {
            rolloutId: r.rolloutId,
            state: r.state,
            code: failure.code,
            message: failure.message,
          });
          await this.#to("rolled_back", { error: failure }, null, true);
          await this.#switchBack(this.#record(), true);
        }
      },
      signal,
    );
  }

  async #healthCheck(r: RolloutRecord, signal: AbortSignal): Promise<void> {
    const gate = r.health;
    const deadline = this.#clock.now() + gate.timeoutMs;
    const ready = await this.#host.waitReady(gate.timeoutMs, signal);
    if (!ready.ok) throw new StepFailure("load_failed", ready.message);
    await this.#fault("health_check:ready");
    const reference = r.signed.manifest.reference;
    const checkReference = gate.referenceCheck && reference !== null;
    if (!checkReference && gate.minDecodeTokS === null) return;
    const expected = checkReference ? reference.expectedTokenIds : null;
    const id = `rollout-health-${r.rolloutId}`.slice(0, 64);
    let generation;
    try {
      generation = this.#host.generate({
        id,
        messages: [{ role: "user", content: reference?.prompt ?? HEALTH_PROMPT }],
        max_new_tokens: expected?.length ?? HEALTH_DEFAULT_TOKENS,
        temperature: 0,
      });
    } catch (error) {
      throw new StepFailure("load_failed", `the reference prompt could not start: ${(error as Error).message}`);
    }
    const left = Math.max(1, deadline - this.#clock.now());
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => generation.cancel();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const done = await Promise.race([
        generation.result,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            generation.cancel();
            reject(
              new StepFailure(
                "too_slow",
                `the reference prompt did not finish within the health gate's ${Math.round(gate.timeoutMs / 1000)} s`,
              ),
            );
          }, left);
        }),
      ]);
      signal.throwIfAborted();
      const problem = healthProblem({ done, expectedTokenIds: expected, minDecodeTokS: gate.minDecodeTokS });
      if (problem) throw new StepFailure(problem.code, problem.message);
      this.#log.info("health gate passed", { rolloutId: r.rolloutId, tokens: done.generated_tokens, decodeTokS: done.decode_tok_s });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof RunnerRequestError) {
        throw new StepFailure("load_failed", `the reference prompt failed: ${error.code}: ${error.message}`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Terminal work (once): switch back when still switched, delete what is no longer kept, report. */
  async #finish(): Promise<void> {
    const r = this.#record();
    if (r.state === "rolled_back" && this.#current.active?.artifactId === r.artifactId) {
      await this.#host.exclusive(`rollout:${r.rolloutId}`, () => this.#switchBack(this.#record(), true), new AbortController().signal);
    }
    await this.#prune(r.state === "failed" ? r.artifactId : null);
    const done: RolloutRecord = { ...this.#record(), finished: true };
    await this.#persist(done, true);
    this.#log.info("rollout ended", { rolloutId: done.rolloutId, state: done.state, code: done.error?.code, message: done.error?.message });
    this.#publishState(done);
  }

  /** Deletes every model folder but the active and previous ones (and `alsoKeep`: a failed download a retry resumes). */
  async #prune(alsoKeep: string | null): Promise<void> {
    const keep = new Set<string>();
    if (this.#current.active) keep.add(this.#current.active.artifactId);
    if (this.#current.previous) keep.add(this.#current.previous.artifactId);
    if (alsoKeep) keep.add(alsoKeep);
    await this.#store.prune(keep).catch((error: unknown) => this.#log.warn("could not delete old models", { error }));
  }

  /**
   * Switches the pointer back from `artifactId` (when it is still the active one) to what
   * was active before, and (with `restart`) starts the runner on it. Idempotent.
   */
  async #switchBack(r: { artifactId: string; before: RolloutRecord["before"] }, restart: boolean): Promise<void> {
    const current = await this.#store.readCurrent();
    if (current.active?.artifactId === r.artifactId) {
      await this.#host.stop();
      await this.#fault("rolled_back:stopped");
      await this.#writeCurrent(await this.#restoreTarget(r.artifactId, r.before));
      await this.#fault("rolled_back:switched");
    }
    if (restart) await this.#host.start(this.launch());
  }

  /** The pointer to go back to: what was there before the switch, as far as its files are still here. */
  async #restoreTarget(artifactId: string, before: RolloutRecord["before"]): Promise<Omit<CurrentModels, "version" | "updatedAt">> {
    const usable = async (entry: ModelEntry | null | undefined) =>
      entry && entry.artifactId !== artifactId && (await this.#store.isInstalled(entry)) ? entry : null;
    if (before) return { active: await usable(before.active), previous: await usable(before.previous) };
    return { active: await usable(this.#current.previous), previous: null };
  }

  async #writeCurrent(next: Omit<CurrentModels, "version" | "updatedAt">): Promise<void> {
    const current: CurrentModels = { version: 1, active: next.active, previous: next.previous, updatedAt: this.#clock.now() };
    await this.#store.writeCurrent(current);
    this.#current = current;
    this.#log.info("current model switched", {
      active: current.active?.artifactId ?? "(command line)",
      previous: current.previous?.artifactId ?? null,
    });
    this.#opts.onModelsChanged?.(current);
  }

  // ---------------------------------------------------------------- persistence and events

  /**
   * Takes a transition: checks it against the table, writes it to rollout.json, then
   * reports it (terminal states are reported by #finish, once their work is done). With
   * `force` (a failure being recorded) a failed write is logged and the run goes on in memory.
   */
  async #to(next: RolloutDeviceState, patch: Partial<RolloutRecord>, signal: AbortSignal | null, force = false): Promise<void> {
    const r = this.#record();
    assertRolloutTransition(r.state, next);
    signal?.throwIfAborted();
    const updated: RolloutRecord = { ...r, ...patch, state: next, finished: false, updatedAt: this.#clock.now() };
    await this.#persist(updated, force);
    this.#log.info("rollout state", { rolloutId: updated.rolloutId, from: r.state, to: next, attempt: updated.attempt });
    if (!isTerminal(next)) this.#publishState(updated);
  }

  async #persist(record: RolloutRecord, force: boolean): Promise<void> {
    await this.#saveFile({ ...this.#file, current: record }, force);
  }

  async #saveFile(file: RolloutFile, force: boolean): Promise<void> {
    const previous = this.#file;
    this.#file = file;
    try {
      await saveRolloutFile(this.#opts.stateFile, file);
    } catch (error) {
      if (force) {
        this.#log.error("could not write rollout.json; going on without it", { error });
        return;
      }
      this.#file = previous;
      throw new StepFailure(
        isEnospc(error) ? "disk_full" : "internal",
        `cannot write the rollout's state file: ${(error as Error).message}`,
      );
    }
  }

  /** Reports a rollout's state, naming the server's try it belongs to (the server ignores reports of earlier tries). */
  #publishState(r: Pick<RolloutRecord, "rolloutId" | "artifactId" | "state" | "attempt" | "error" | "serverAttempt">): void {
    this.#publish({
      kind: "rollout.state",
      ts: this.#clock.now(),
      rolloutId: r.rolloutId,
      artifactId: r.artifactId,
      state: r.state,
      attempt: r.attempt,
      error: r.error,
      serverAttempt: r.serverAttempt,
    });
  }

  #publish(event: RolloutEvent): void {
    try {
      this.#opts.publish(event);
    } catch (error) {
      this.#log.error("rollout event could not be published", { kind: event.kind, error });
    }
  }

  async #fault(point: string): Promise<void> {
    await this.#opts.fault?.(point);
  }
}
