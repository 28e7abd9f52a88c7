import { describe, expect, it } from "vitest";
import { LoginLimiter, LoginLockedError, SPREAD_FACTOR } from "./login-limiter.ts";

const WINDOW = 15 * 60_000;

function limiter(max = 3) {
  const clock = { now: 1_000_000 };
  return { clock, limiter: new LoginLimiter({ maxFailures: max, windowMs: WINDOW, now: () => clock.now }) };
}

function lockedFor(l: LoginLimiter, username: string, ip: string | undefined): LoginLockedError | null {
  try {
    l.check(username, ip);
    return null;
  } catch (err) {
    if (err instanceof LoginLockedError) return err;
    throw err;
  }
}

describe("LoginLimiter", () => {
  it("locks a username at one address after maxFailures in the window and says how long to wait", () => {
    const { clock, limiter: l } = limiter(3);
    expect(l.fail("alice", "10.0.0.1")).toBe(false);
    clock.now += 60_000;
    expect(l.fail("alice", "10.0.0.1")).toBe(false);
    clock.now += 60_000;
    expect(l.fail("alice", "10.0.0.1")).toBe(true); // the third failure locks
    clock.now += 1000;
    const err = lockedFor(l, "alice", "10.0.0.1");
    expect(err).toBeInstanceOf(LoginLockedError);
    // Unlocks when the first failure (2 min 1 s ago) leaves the 15-minute window.
    expect(err!.retryAfterSeconds).toBe(WINDOW / 1000 - 121);
    expect(err!.message).toBe(`Too many failed sign-ins; try again in ${WINDOW / 1000 - 121} s.`);
    expect(err!.code).toBe("too_many_requests");
    clock.now += (WINDOW / 1000 - 121) * 1000;
    expect(lockedFor(l, "alice", "10.0.0.1")).toBeNull();
  });

  it("does not lock other users at that address, nor the same user at another address", () => {
    const { limiter: l } = limiter(3);
    for (let i = 0; i < 3; i++) l.fail("vicky", "10.0.0.1");
    expect(lockedFor(l, "vicky", "10.0.0.1")).toBeInstanceOf(LoginLockedError);
    expect(lockedFor(l, "admin", "10.0.0.1")).toBeNull();
    expect(lockedFor(l, "vicky", "10.0.0.2")).toBeNull();
  });

  it(`locks an address that guesses at many usernames after ${SPREAD_FACTOR}× maxFailures`, () => {
    const { limiter: l } = limiter(3);
    const cap = 3 * SPREAD_FACTOR;
    for (let i = 1; i < cap; i++) expect(l.fail(`user${i}`, "10.0.0.1"), `failure ${i}`).toBe(false);
    expect(lockedFor(l, "admin", "10.0.0.1")).toBeNull();
    expect(l.fail(`user${cap}`, "10.0.0.1")).toBe(true);
    expect(lockedFor(l, "admin", "10.0.0.1")).toBeInstanceOf(LoginLockedError);
    expect(lockedFor(l, "admin", "10.0.0.2")).toBeNull();
  });

  it(`locks a username guessed at from many addresses after ${SPREAD_FACTOR}× maxFailures`, () => {
    const { limiter: l } = limiter(3);
    const cap = 3 * SPREAD_FACTOR;
    for (let i = 1; i < cap; i++) expect(l.fail("alice", `10.0.${i}.1`), `failure ${i}`).toBe(false);
    expect(lockedFor(l, "alice", "10.9.9.9")).toBeNull();
    expect(l.fail("alice", `10.0.${cap}.1`)).toBe(true);
    expect(lockedFor(l, "alice", "10.9.9.9")).toBeInstanceOf(LoginLockedError);
    expect(lockedFor(l, "bob", "10.9.9.9")).toBeNull();
  });

  it("clears the username's counts on success but not the address's", () => {
    const { limiter: l } = limiter(3);
    l.fail("alice", "10.0.0.1");
    l.fail("alice", "10.0.0.1");
    l.succeed("alice", "10.0.0.1");
    expect(l.fail("alice", "10.0.0.1")).toBe(false);
    expect(l.fail("alice", "10.0.0.1")).toBe(false);
    expect(lockedFor(l, "alice", "10.0.0.1")).toBeNull();
    // 10.0.0.1 keeps its four failures toward the address's cap.
    const cap = 3 * SPREAD_FACTOR;
    for (let i = 5; i < cap; i++) l.fail(`user${i}`, "10.0.0.1");
    expect(l.fail("mallory", "10.0.0.1")).toBe(true);
    expect(lockedFor(l, "carol", "10.0.0.1")).toBeInstanceOf(LoginLockedError);
  });

  it("counts usernames case-insensitively and keeps memory bounded", () => {
    const { limiter: l } = limiter(2);
    l.fail("Alice", undefined);
    expect(l.fail("alice", undefined)).toBe(true);
    expect(lockedFor(l, "ALICE", undefined)).toBeInstanceOf(LoginLockedError);
    const bounded = new LoginLimiter({ maxFailures: 5, windowMs: WINDOW, now: () => 0, maxKeys: 10 });
    for (let i = 0; i < 1000; i++) bounded.fail(`user${i}`, `10.0.${i % 250}.${Math.floor(i / 250)}`);
    expect((bounded as unknown as { failures: Map<string, number[]> }).failures.size).toBeLessThanOrEqual(30);
  });
});
