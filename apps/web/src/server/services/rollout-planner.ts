/**
 * The rollout planner: given a rollout's strategy and where each of its devices is,
 * decides what happens next. A pure function (no clock, no I/O): the rollout service
 * calls it on a timer and after every device event, and applies its decisions.
 *
 * - Devices a try was sent to and that have not reached a terminal state within
 *   `deviceTimeoutMs` of the send time out (`device_offline` when the device is offline
 *   now, else `timeout`). Timeouts are final: the device is not answering, a retry
 *   would not reach it either.
 * - A failure the device reported is retried (a new `rollout.apply` with the next
 *   attempt) while `attempt <= retries`, when retrying can help (a download, a hash, a
 *   load, a too-slow run); a full disk, missing RAM, an unsupported runtime, a bad
 *   signature or manifest and a wrong reference answer fail the same way every time.
 * - Canaries go first, alone; the other devices wait until every canary is active
 *   (or stopped by an operator, or its failure was acknowledged by resuming). After
 *   that at most `batchSize` devices are in flight at once. Never more than
 *   `maxConcurrentDownloads` devices are sent-but-not-started, in preflight or
 *   downloading. Retries go before first tries; online devices before offline ones.
 * - A running rollout pauses when a canary fails, or when its unacknowledged failed
 *   devices reach `failureThreshold`. Resuming acknowledges the failures so far.
 * - The rollout is finished when no device waits, works, or has a retry coming:
 *   completed when no device failed, failed otherwise. Operator stops (aborted,
 *   rolled back by an operator) are not failures.
 */
import {
  ROLLOUT_ACTIVE_STATES,
  type RolloutDeviceState,
  type RolloutErrorCode,
  type RolloutState,
  type RolloutStrategy,
} from "@orchard/contracts";

/** Failures a new try can fix; the others fail the same way again. */
export const RETRYABLE_ERROR_CODES: ReadonlySet<RolloutErrorCode> = new Set<RolloutErrorCode>([
  "download_failed",
  "hash_mismatch",
  "load_failed",
  "too_slow",
  "internal",
]);

/** Error codes of an operator's decision: the device stopped, it did not fail. */
const OPERATOR_CODES: ReadonlySet<RolloutErrorCode> = new Set<RolloutErrorCode>(["aborted", "rolled_back"]);

export interface PlannerDevice {
  deviceId: string;
  /** Planning order (canaries have the lowest positions). */
  position: number;
  canary: boolean;
  state: RolloutDeviceState;
  /** Tries sent so far (0 before the first). */
  attempt: number;
  /** When the current try was sent; null while the device waits for its turn. */
  sentAt: number | null;
  online: boolean;
  /** The last error; `acknowledged` once an operator resumed past it. */
  error: { code: RolloutErrorCode; acknowledged?: boolean } | null;
}

export interface PlannerInput {
  state: RolloutState;
  strategy: RolloutStrategy;
  devices: readonly PlannerDevice[];
  now: number;
  /** false right after a server restart, while devices are still reporting where they are. */
  checkTimeouts?: boolean;
}

export type PauseDecision =
  { kind: "canary_failed"; deviceIds: string[] } | { kind: "threshold"; deviceIds: string[]; failed: number; threshold: number };

export interface Plan {
  /** Devices whose try ran out of time; they fail with this code. */
  timedOut: { deviceId: string; code: "timeout" | "device_offline" }[];
  /** Devices to send their first try to, in order. */
  send: string[];
  /** Failed devices to send a new try to, in order. */
  retry: string[];
  /** Set when a running rollout must pause now. */
  pause: PauseDecision | null;
  /** Set when a running or paused rollout is finished now. */
  finish: "completed" | "failed" | null;
  /** canary: only canaries may be sent now; batches: everyone. */
  phase: "canary" | "batches";
}

/** Where a device stands, for planning and for counting. */
export type DeviceOutcome =
  | "waiting" // not sent yet
  | "in_flight" // sent, not finished
  | "active"
  | "stopped" // aborted or rolled back by an operator
  | "retry" // failed, and a new try is due
  | "failed"; // failed for good

const ACTIVE = new Set<RolloutDeviceState>(ROLLOUT_ACTIVE_STATES);

export function isInFlight(d: Pick<PlannerDevice, "state" | "sentAt">): boolean {
  return (d.state === "pending" && d.sentAt !== null) || ACTIVE.has(d.state);
}

/** Devices that count against maxConcurrentDownloads: sent but not started, in preflight, downloading. */
function isDownloadPhase(d: Pick<PlannerDevice, "state" | "sentAt">): boolean {
  return (d.state === "pending" && d.sentAt !== null) || d.state === "preflight" || d.state === "downloading";
}

export function deviceOutcome(d: PlannerDevice, strategy: Pick<RolloutStrategy, "retries">): DeviceOutcome {
  switch (d.state) {
    case "pending":
      return d.sentAt === null ? "waiting" : "in_flight";
    case "active":
      return "active";
    case "aborted":
      return "stopped";
    case "failed":
    case "rolled_back": {
      const code = d.error?.code ?? "internal";
      if (OPERATOR_CODES.has(code)) return "stopped";
      return RETRYABLE_ERROR_CODES.has(code) && d.attempt <= strategy.retries ? "retry" : "failed";
    }
    default:
      return "in_flight";
  }
}

export function planRollout(input: PlannerInput): Plan {
  const { strategy, now } = input;
  const plan: Plan = { timedOut: [], send: [], retry: [], pause: null, finish: null, phase: "batches" };

  // Timeouts, in any rollout state (an aborted rollout still waits for devices that were working).
  const devices = input.devices.map((d): PlannerDevice => {
    if (input.checkTimeouts === false || !isInFlight(d) || d.sentAt === null || now - d.sentAt < strategy.deviceTimeoutMs) return d;
    const code = d.online ? "timeout" : "device_offline";
    plan.timedOut.push({ deviceId: d.deviceId, code });
    return { ...d, state: "failed", error: { code } };
  });
  if (input.state !== "running" && input.state !== "paused") return plan;

  const rows = devices.map((d) => ({ d, outcome: deviceOutcome(d, strategy) })).sort((a, b) => a.d.position - b.d.position);
  const canaries = rows.filter((r) => r.d.canary);
  plan.phase = canaries.every((r) => r.outcome === "active" || r.outcome === "stopped" || r.outcome === "failed") ? "batches" : "canary";

  const open = rows.some((r) => r.outcome === "waiting" || r.outcome === "in_flight" || r.outcome === "retry");
  if (!open) {
    plan.finish = rows.some((r) => r.outcome === "failed") ? "failed" : "completed";
    return plan;
  }
  if (input.state !== "running") return plan;

  const unacknowledged = rows.filter((r) => r.outcome === "failed" && !r.d.error?.acknowledged);
  const failedCanaries = unacknowledged.filter((r) => r.d.canary);
  if (failedCanaries.length > 0) {
    plan.pause = { kind: "canary_failed", deviceIds: failedCanaries.map((r) => r.d.deviceId) };
    return plan;
  }
  if (unacknowledged.length >= strategy.failureThreshold) {
    plan.pause = {
      kind: "threshold",
      deviceIds: unacknowledged.map((r) => r.d.deviceId),
      failed: unacknowledged.length,
      threshold: strategy.failureThreshold,
    };
    return plan;
  }

  const inFlight = rows.filter((r) => r.outcome === "in_flight").length;
  const downloading = rows.filter((r) => r.outcome === "in_flight" && isDownloadPhase(r.d)).length;
  const downloadSlots = Math.max(0, strategy.maxConcurrentDownloads - downloading);
  const slots = plan.phase === "canary" ? downloadSlots : Math.min(downloadSlots, Math.max(0, strategy.batchSize - inFlight));
  if (slots === 0) return plan;

  const candidates = rows
    .filter((r) => (r.outcome === "waiting" || r.outcome === "retry") && (plan.phase === "batches" || r.d.canary))
    .sort(
      (a, b) =>
        Number(b.d.online) - Number(a.d.online) ||
        Number(b.outcome === "retry") - Number(a.outcome === "retry") ||
        a.d.position - b.d.position,
    )
    .slice(0, slots);
  for (const r of candidates) (r.outcome === "retry" ? plan.retry : plan.send).push(r.d.deviceId);
  return plan;
}
