/**
 * `orchard rollout create|list|status|pause|resume|abort|rollback`: rollouts from a
 * terminal. `--wait` follows a rollout by polling the API, printing a line on stderr
 * whenever a device moves on, and tells the caller how it ended (the exit code is
 * non-zero unless it completed).
 */
import type { DeviceSummary, RolloutDeviceDto, RolloutDto, RolloutStrategy, RolloutSummaryDto } from "@orchard/contracts";
import { resolveDevice } from "./chat.ts";
import type { OrchardClient } from "./client.ts";
import { ago, bytes, formatByteRate, table } from "./format.ts";

export interface RolloutIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** "3h", "90m", "45s", "1h30m", "1d" or plain milliseconds → ms. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 } as const;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * unit[m[2] as keyof typeof unit];
    end = re.lastIndex;
  }
  if (end === 0 || end !== t.length || total <= 0) throw new Error(`"${text}" is not a duration (e.g. 3h, 90m, 1h30m, 45s)`);
  return Math.round(total);
}

function count(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw new Error(`--${flag} must be a whole number from ${min} to ${max}`);
  }
  return Number(value);
}

export interface CreateFlags {
  artifact: string | undefined;
  devices: string[];
  tags: string[];
  name?: string;
  canary?: string;
  batch?: string;
  maxDownloads?: string;
  failureThreshold?: string;
  timeout?: string;
  retries?: string;
}

/** The `rollouts.create` input from the command line; throws with a sentence for a person when a flag is wrong. */
export function createInput(flags: CreateFlags, fleet: DeviceSummary[]) {
  if (!flags.artifact) throw new Error("--artifact ID is required (orchard artifact list shows the models)");
  if (flags.devices.length === 0 && flags.tags.length === 0)
    throw new Error("choose devices with --device ID-or-name and/or --tag T (both repeatable)");
  const strategy: Partial<RolloutStrategy> = {};
  const set = <K extends keyof RolloutStrategy>(key: K, value: RolloutStrategy[K] | undefined) => {
    if (value !== undefined) strategy[key] = value;
  };
  set("canary", count("canary", flags.canary, 0, 1000));
  set("batchSize", count("batch", flags.batch, 1, 1000));
  set("maxConcurrentDownloads", count("max-downloads", flags.maxDownloads, 1, 1000));
  set("failureThreshold", count("failure-threshold", flags.failureThreshold, 1, 1000));
  set("retries", count("retries", flags.retries, 0, 10));
  if (flags.timeout !== undefined) set("deviceTimeoutMs", parseDuration(flags.timeout));
  return {
    artifactId: flags.artifact,
    deviceIds: [...new Set(flags.devices.map((d) => resolveDevice(fleet, d).id))],
    tags: [...new Set(flags.tags)],
    strategy,
    ...(flags.name ? { name: flags.name } : {}),
  };
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ""}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** One line per device: its state, progress and, for a failure, why. */
export function deviceLine(d: RolloutDeviceDto): string {
  const name = `${d.deviceName}${d.canary ? " (canary)" : ""}`;
  const tries = d.attempt > 1 ? ` [try ${d.attempt}]` : "";
  switch (d.state) {
    case "pending":
      return `${name}: ${!d.sent ? "waiting for its turn" : d.online ? "sent, not started yet" : "offline, gets it when it connects"}${tries}`;
    case "downloading": {
      const pct = d.bytesTotal > 0 ? ` (${Math.floor((d.bytesDone / d.bytesTotal) * 100)}%)` : "";
      const rate = d.rateBps !== null ? `, ${formatByteRate(d.rateBps)}` : "";
      const eta = d.etaSeconds !== null ? `, ${duration(d.etaSeconds)} left` : "";
      return `${name}: downloading ${bytes(d.bytesDone)} of ${bytes(d.bytesTotal)}${pct}${rate}${eta}${tries}`;
    }
    case "failed":
    case "rolled_back": {
      const why = d.error ? `: ${d.error.message} (${d.error.code})` : "";
      return `${name}: ${d.state.replace("_", " ")}${why}${d.willRetry ? ", will retry" : ""}${tries}`;
    }
    case "aborted":
      return `${name}: aborted${d.error ? `: ${d.error.message}` : ""}`;
    default:
      return `${name}: ${d.state.replace("_", " ")}${tries}`;
  }
}

function countsText(c: RolloutSummaryDto["counts"]): string {
  const parts = [`${c.active}/${c.total} active`];
  if (c.inFlight) parts.push(`${c.inFlight} working`);
  if (c.waiting) parts.push(`${c.waiting} waiting`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.rolledBack) parts.push(`${c.rolledBack} rolled back`);
  if (c.aborted) parts.push(`${c.aborted} aborted`);
  return parts.join(", ");
}

export function render(r: RolloutDto, now = Date.now()): string {
  const s = r.strategy;
  const lines = [
    `${r.name} (${r.id}), created ${ago(r.createdAt, now)}, ${r.state}`,
    `model ${r.artifactName} ${r.artifactVersion}${r.artifactRuntime === "sim" ? " (simulated)" : ""} ${r.artifactId}`,
    `strategy: ${s.canary} canary, batches of ${s.batchSize}, ${s.maxConcurrentDownloads} downloads at once, pause after ${s.failureThreshold} failed, ${duration(s.deviceTimeoutMs / 1000)} per device, ${s.retries} retries`,
    `devices: ${countsText(r.counts)}`,
  ];
  if (r.state === "paused" && r.pausedReason) lines.push(`paused: ${r.pausedReason}`);
  return `${[...lines, ...r.devices.map((d) => `  ${deviceLine(d)}`)].join("\n")}\n`;
}

export function listTable(rollouts: RolloutSummaryDto[], now = Date.now()): string {
  if (rollouts.length === 0) return "no rollouts yet (orchard rollout create --artifact ID --device NAME starts one)";
  return table(
    ["NAME", "ID", "MODEL", "STATE", "DEVICES", "CREATED"],
    rollouts.map((r) => [r.name, r.id, `${r.artifactName} ${r.artifactVersion}`, r.state, countsText(r.counts), ago(r.createdAt, now)]),
  );
}

/** States `--wait` stops at. */
const SETTLED = new Set(["completed", "failed", "aborted", "paused"]);

/**
 * Follows a rollout until it is completed, failed, aborted or paused, printing a line
 * on stderr whenever a device's line changes. Polls the API (the CLI has no socket.io client).
 */
export async function waitForRollout(
  client: OrchardClient,
  id: string,
  io: RolloutIo,
  opts: { pollMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<RolloutDto> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const seen = new Map<string, string>();
  let lastState = "";
  for (;;) {
    const r = await client.rollouts.get.query({ id });
    for (const d of r.devices) {
      const line = deviceLine(d);
      if (seen.get(d.deviceId) === line) continue;
      seen.set(d.deviceId, line);
      io.err(`${line}\n`);
    }
    if (r.state !== lastState) {
      lastState = r.state;
      if (SETTLED.has(r.state)) io.err(`rollout ${r.state}${r.state === "paused" && r.pausedReason ? `: ${r.pausedReason}` : ""}\n`);
    }
    if (SETTLED.has(r.state) && !(r.state === "aborted" && r.counts.inFlight > 0)) return r;
    await sleep(opts.pollMs ?? 1000);
  }
}

/** The exit code for a rollout `--wait` followed: 0 only when it completed. */
export function exitCodeFor(r: Pick<RolloutDto, "state">): number {
  return r.state === "completed" ? 0 : 1;
}
