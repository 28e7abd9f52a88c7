/**
 * Slows down password guessing. Failed sign-ins are counted over a sliding window three ways:
 * - per username at one address: `maxFailures` locks that username from that address (the
 *   ordinary case: someone guessing at one account);
 * - per address, over all usernames: SPREAD_FACTOR × `maxFailures` locks the address (someone
 *   spraying passwords over many usernames);
 * - per username, over all addresses: SPREAD_FACTOR × `maxFailures` locks the username
 *   everywhere (someone guessing at one account from many addresses).
 * So failures at one account do not lock the other accounts from that address (an admin signs
 * in from the address where a colleague mistyped), and a lockout of one account from
 * everywhere takes many addresses. While locked, attempts are refused with 429 until the
 * oldest failure leaves the window. A successful sign-in clears the username's counts (not
 * the address's: one right password must not unlock guessing at other accounts).
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
/** The address-wide and username-wide caps are this many times `maxFailures`. */
export const SPREAD_FACTOR = 10;
const DEFAULT_MAX_KEYS = 10_000;
/** Kinds of key: username at address, address, username. */
const KINDS = 3;

export class LoginLockedError extends AppError {
  constructor(readonly retryAfterSeconds: number) {
    super("too_many_requests", `Too many failed sign-ins; try again in ${retryAfterSeconds} s.`);
  }
}

export class LoginLimiter {
  /** Failure times, oldest first, per key (see keysOf). */
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly opts: LoginLimiterOptions) {}

  /** Throws LoginLockedError while the username at this address, the address or the username has used up its failures. */
  check(username: string, ip: string | undefined): void {
    const wait = Math.max(...this.keysOf(username, ip).map(({ key, max }) => this.waitMs(key, max)));
    if (wait > 0) throw new LoginLockedError(Math.max(1, Math.ceil(wait / 1000)));
  }

  /** Counts a failure; true when this failure is the one that locks (the username at the address, the address or the username). */
  fail(username: string, ip: string | undefined): boolean {
    let locked = false;
    for (const { key, max } of this.keysOf(username, ip)) {
      const times = this.recent(key);
      times.push(this.opts.now());
      this.failures.delete(key); // re-insert: the Map's order is least recently failed first
      this.failures.set(key, times);
      if (times.length === max) locked = true;
    }
    this.prune();
    return locked;
  }

  /** A right password: the username's counts go (at this address and everywhere); the address's stays. */
  succeed(username: string, ip: string | undefined): void {
    for (const { key, kind } of this.keysOf(username, ip)) if (kind !== "ip") this.failures.delete(key);
  }

  private keysOf(username: string, ip: string | undefined): { key: string; max: number; kind: "pair" | "ip" | "user" }[] {
    const name = username.toLowerCase();
    const spread = this.opts.maxFailures * SPREAD_FACTOR;
    return [
      { key: `pair:${ip ?? ""}\u0000${name}`, max: this.opts.maxFailures, kind: "pair" },
      ...(ip ? [{ key: `ip:${ip}`, max: spread, kind: "ip" as const }] : []),
      { key: `user:${name}`, max: spread, kind: "user" },
    ];
  }

  private recent(key: string): number[] {
    const since = this.opts.now() - this.opts.windowMs;
    return (this.failures.get(key) ?? []).filter((t) => t > since);
  }

  private waitMs(key: string, max: number): number {
    const times = this.recent(key);
    if (times.length < max) return 0;
    // Locked until enough failures age out to bring the count below the limit.
    const unlockAt = times[times.length - max]! + this.opts.windowMs;
    return unlockAt - this.opts.now();
  }

  private prune(): void {
    const max = this.opts.maxKeys ?? DEFAULT_MAX_KEYS;
    for (const key of this.failures.keys()) {
      if (this.failures.size <= max * KINDS) break;
      this.failures.delete(key);
    }
  }
}
