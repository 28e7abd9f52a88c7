/**
 * Exponential backoff schedules (MQTT reconnects, runner restarts) as a pure
 * function of the attempt number, so the schedule is unit-tested without timers.
 */

export interface BackoffOptions {
  /** Delay of the first retry (attempt 0). */
  initialMs: number;
  /** The delay never exceeds this. */
  maxMs: number;
  /** Growth per attempt; 2 doubles. */
  factor?: number;
  /**
   * Fraction of the delay that is randomised away (0 = none, 0.3 = anywhere in
   * [70 %, 100 %] of it), so a fleet that lost its broker at the same instant
   * does not come back at the same instant.
   */
  jitter?: number;
}

/** Reconnecting to the broker: 1 s, 2 s, 4 s … capped at 30 s, with jitter. */
export const MQTT_RECONNECT_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000, factor: 2, jitter: 0.3 };

/** Delay before retry number `attempt` (0-based). `random` returns a value in [0, 1). */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt must be a non-negative integer, got ${attempt}`);
  const factor = options.factor ?? 2;
  const jitter = Math.min(Math.max(options.jitter ?? 0, 0), 1);
  const exponential = Math.min(options.maxMs, options.initialMs * factor ** attempt);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(exponential * (1 - jitter * r));
}
