/**
 * Slows down password guessing: failed sign-ins are counted per username and per
 * client address over a sliding window; at `maxFailures` in the window further
 * attempts for that username (or from that address) are refused with 429 until the
 * oldest failure leaves the window. A successful sign-in clears the username's count
 * (not the address's: one right password must not unlock guessing at other accounts).
 * Counts live in memory: a restart clears them, and with several server replicas each
 * counts on its own (docs/security.md).
 */
import { AppError } from "../errors.ts";

export interface LoginLimiterOptions {
  maxFailures: number;
  windowMs: number;
  /** Injected so tests move time instead of sleeping. */
  now: () => number;
  /** Keys tracked at most per kind; the stalest are dropped first (a flood of random usernames cannot grow memory without bound). */
  maxKeys?: number;
}

export const LOGIN_WINDOW_MS = 15 * 60_000;
const DEFAULT_MAX_KEYS = 10_000;

export class LoginLockedError extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super("too_many_requests", `Too many failed sign-ins; try again in ${retryAfterSeconds} s.`);
  }
}

export class LoginLimiter {
  /** Failure times, oldest first, per "user:<name>" and "ip:<address>". */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly opts: LoginLimiterOptions) {}

  /** Throws LoginLockedError when the username or the address has used up its failures. */
  check(username: string, ip: string | undefined): void {
    const wait = Math.max(this.waitMs(userKey(username)), ip ? this.waitMs(ipKey(ip)) : 0);
    if (wait > 0) throw new LoginLockedError(Math.max(1, Math.ceil(wait / 1000)));
  }

  /** Counts a failure; true when this failure is the one that locks the username or the address. */
  fail(username: string, ip: string | undefined): boolean {
    const keys = [userKey(username), ...(ip ? [ipKey(ip)] : [])];
    let locked = false;
    for (const key of keys) {
      const times = this.recent(key);
      times.push(this.opts.now());
      this.failures.delete(key); // re-insert: the Map's order is least recently failed first
      this.failures.set(key, times);
      if (times.length === this.opts.maxFailures) locked = true;
    }
    this.prune();
    return locked;
  }

  succeed(username: string): void {
    this.failures.delete(userKey(username));
  }

  private recent(key: string): number[] {
    const since = this.opts.now() - this.opts.windowMs;
    return (this.failures.get(key) ?? []).filter((t) => t > since);
  }

  private waitMs(key: string): number {
    const times = this.recent(key);
    if (times.length < this.opts.maxFailures) return 0;
    // Locked until enough failures age out to bring the count below the limit.
    const unlockAt = times[times.length - this.opts.maxFailures]! + this.opts.windowMs;
    return unlockAt - this.opts.now();
  }

  private prune(): void {
    const max = this.opts.maxKeys ?? DEFAULT_MAX_KEYS;
    for (const key of this.failures.keys()) {
      if (this.failures.size <= max * 2) break;
      this.failures.delete(key);
    }
  }
}

const userKey = (username: string) => `user:${username.toLowerCase()}`;
const ipKey = (ip: string) => `ip:${ip}`;
