import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { RestartPolicy } from "./restart-policy.js";
import { InvalidTransitionError, RUNNER_TRANSITIONS, nextRunnerState } from "./state-machine.js";

/** Runs the runner through crashes: each run lasts `runMs`, then waits the delay the policy chose. */
function crashes(policy: RestartPolicy, clock: ManualClock, count: number, runMs = 100) {
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const startedAt = clock.now();
    clock.advance(runMs);
    const decision = policy.onCrash(clock.now(), startedAt);
    out.push(decision);
    clock.advance(decision.delayMs);
  }
  return out;
}

describe("RestartPolicy", () => {
  it("backs off 1 s, 2 s, 4 s, 8 s, then calls 5 crashes within 2 minutes a crash loop retried every 5 minutes", () => {
    const clock = new ManualClock();
    const decisions = crashes(new RestartPolicy(), clock, 7);
    expect(decisions.map((d) => d.delayMs)).toEqual([1_000, 2_000, 4_000, 8_000, 300_000, 300_000, 300_000]);
    expect(decisions.map((d) => d.crashLoop)).toEqual([false, false, false, false, true, true, true]);
    expect(decisions[4]!.recentCrashes).toBe(5);
  });

  it("caps the backoff at 60 s when crashes are too far apart to be a loop", () => {
    const clock = new ManualClock();
    // Each run lasts 50 s: 5 crashes never fall within 2 minutes once the delays grow.
    const decisions = crashes(new RestartPolicy(), clock, 9, 50_000);
    expect(decisions.map((d) => d.delayMs)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(decisions.some((d) => d.crashLoop)).toBe(false);
  });

  it("starts over at 1 s after a run of 60 s", () => {
    const clock = new ManualClock();
    const policy = new RestartPolicy();
    crashes(policy, clock, 3); // 1 s, 2 s, 4 s
    const [afterStableRun] = crashes(policy, clock, 1, 60_000);
    expect(afterStableRun!.delayMs).toBe(1_000);
  });

  it("stays in the crash loop until a run is stable, however slowly it crashes", () => {
    const clock = new ManualClock();
    const policy = new RestartPolicy();
    crashes(policy, clock, 5);
    expect(policy.inCrashLoop).toBe(true);
    // 5 minutes apart, only one crash falls in any 2-minute window, yet it is still a loop.
    expect(crashes(policy, clock, 3).every((d) => d.crashLoop && d.delayMs === 300_000)).toBe(true);
    const [stable] = crashes(policy, clock, 1, 61_000);
    expect(stable!.crashLoop).toBe(false);
    expect(stable!.delayMs).toBe(1_000);
  });

  it("reset() (an operator's restart) forgets past crashes", () => {
    const clock = new ManualClock();
    const policy = new RestartPolicy();
    crashes(policy, clock, 5);
    policy.reset();
    expect(policy.inCrashLoop).toBe(false);
    expect(crashes(policy, clock, 1)[0]!.delayMs).toBe(1_000);
  });

  it("takes its limits from options (tests run it fast)", () => {
    const clock = new ManualClock();
    const policy = new RestartPolicy({ initialMs: 10, maxMs: 40, crashLoopCount: 3, crashLoopWindowMs: 1_000, crashLoopRetryMs: 500 });
    expect(crashes(policy, clock, 4, 1).map((d) => d.delayMs)).toEqual([10, 20, 500, 500]);
  });
});

describe("runner state machine", () => {
  it("walks start → ready → crash → restart → crash loop → stop", () => {
    const events = ["spawn", "ready", "crash", "spawn", "crash", "spawn", "crash_loop", "spawn", "ready", "stopped"] as const;
    const states = [];
    let state = "stopped" as Parameters<typeof nextRunnerState>[0];
    for (const e of events) {
      state = nextRunnerState(state, e);
      states.push(state);
    }
    expect(states).toEqual([
      "starting",
      "ready",
      "crashed",
      "starting",
      "crashed",
      "starting",
      "crash_loop",
      "starting",
      "ready",
      "stopped",
    ]);
  });

  it("refuses moves that are not in the table", () => {
    expect(() => nextRunnerState("stopped", "ready")).toThrow(InvalidTransitionError);
    expect(() => nextRunnerState("ready", "spawn")).toThrow(InvalidTransitionError);
    expect(() => nextRunnerState("crashed", "crash")).toThrow(InvalidTransitionError);
  });

  it("has exactly one row per (state, event)", () => {
    const keys = RUNNER_TRANSITIONS.map(([from, event]) => `${from}/${event}`);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
