import { describe, expect, it } from "vitest";
import { LoginLimiter, LoginLockedError } from "./login-limiter.ts";

const WINDOW = 15 * 60_000;

function limiter(max = 3) {
  const clock = { now: 1_000_000 };
  return { clock, limiter: new LoginLimiter({ maxFailures: max, windowMs: WINDOW, now: () => clock.now }) };
}

describe("LoginLimiter", () => {
  it("locks a username after maxFailures in the window and says how long to wait", () => {
    const { clock, limiter: l } = limiter(3);
    expect(l.fail("alice", "10.0.0.1")).toBe(false);
    clock.now += 60_000;
    expect(l.fail("alice", "10.0.0.2")).toBe(false);
    clock.now += 60_000;
    expect(l.fail("alice", "10.0.0.3")).toBe(true); // the third failure locks
    clock.now += 1000;
    let err: unknown;
    try {
      l.check("alice", "10.0.0.9");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LoginLockedError);
    // Unlocks when the first failure (2 min 1 s ago) leaves the 15-minute window.
    expect((err as LoginLockedError).retryAfterSeconds).toBe(WINDOW / 1000 - 121);
    expect((err as LoginLockedError).message).toBe(`Too many failed sign-ins; try again in ${WINDOW / 1000 - 121} s.`);
    expect((err as LoginLockedError).code).toBe("too_many_requests");
    // Other usernames from other addresses are not affected.
    expect(() => l.check("bob", "10.0.0.9")).not.toThrow();
    clock.now += (WINDOW / 1000 - 121) * 1000;
    expect(() => l.check("alice", "10.0.0.9")).not.toThrow();
  });

  it("locks an address that guesses at many usernames", () => {
    const { limiter: l } = limiter(3);
    l.fail("a", "10.0.0.1");
    l.fail("b", "10.0.0.1");
    expect(l.fail("c", "10.0.0.1")).toBe(true);
    expect(() => l.check("d", "10.0.0.1")).toThrow(LoginLockedError);
    expect(() => l.check("d", "10.0.0.2")).not.toThrow();
  });

  it("clears the username's count on success but not the address's", () => {
    const { limiter: l } = limiter(3);
    l.fail("alice", "10.0.0.1");
    l.fail("alice", "10.0.0.1");
    l.succeed("alice");
    expect(l.fail("alice", "10.0.0.2")).toBe(false);
    expect(() => l.check("alice", "10.0.0.2")).not.toThrow();
    // 10.0.0.1 still has its two failures: one more locks it.
    expect(l.fail("mallory", "10.0.0.1")).toBe(true);
    expect(() => l.check("carol", "10.0.0.1")).toThrow(LoginLockedError);
  });

  it("counts usernames case-insensitively and keeps memory bounded", () => {
    const { limiter: l } = limiter(2);
    l.fail("Alice", undefined);
    expect(l.fail("alice", undefined)).toBe(true);
    expect(() => l.check("ALICE", undefined)).toThrow(LoginLockedError);
    const bounded = new LoginLimiter({ maxFailures: 5, windowMs: WINDOW, now: () => 0, maxKeys: 10 });
    for (let i = 0; i < 1000; i++) bounded.fail(`user${i}`, undefined);
    expect((bounded as unknown as { failures: Map<string, number[]> }).failures.size).toBeLessThanOrEqual(20);
  });
});
