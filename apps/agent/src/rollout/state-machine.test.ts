import { ROLLOUT_DEVICE_STATES, type RolloutDeviceState } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import {
  InvalidRolloutTransitionError,
  POST_SWITCH_STATES,
  PRE_SWITCH_STATES,
  ROLLOUT_TRANSITIONS,
  TERMINAL_STATES,
  assertRolloutTransition,
  canTransition,
  isTerminal,
} from "./state-machine.js";

const FORWARD: RolloutDeviceState[] = [
  "pending",
  "preflight",
  "downloading",
  "verifying",
  "staged",
  "activating",
  "health_check",
  "active",
];

describe("the rollout state table", () => {
  it("covers every state of the contract, each in exactly one phase", () => {
    const phases = [...PRE_SWITCH_STATES, ...POST_SWITCH_STATES, ...TERMINAL_STATES];
    expect([...phases].sort()).toEqual([...ROLLOUT_DEVICE_STATES].sort());
    expect(new Set(phases).size).toBe(phases.length);
    for (const [from, to] of ROLLOUT_TRANSITIONS) {
      expect(ROLLOUT_DEVICE_STATES).toContain(from);
      expect(ROLLOUT_DEVICE_STATES).toContain(to);
    }
  });

  it("allows the way forward one step at a time, and no skipping", () => {
    for (let i = 0; i + 1 < FORWARD.length; i += 1) expect(canTransition(FORWARD[i]!, FORWARD[i + 1]!)).toBe(true);
    expect(canTransition("pending", "downloading")).toBe(false);
    expect(canTransition("downloading", "staged")).toBe(false);
    expect(canTransition("staged", "health_check")).toBe(false);
    expect(canTransition("preflight", "active")).toBe(true); // already the active model
    expect(canTransition("verifying", "downloading")).toBe(true); // a clean retry after a hash mismatch
  });

  it("fails before the switch, rolls back after it, and aborts only before activating", () => {
    for (const s of PRE_SWITCH_STATES) {
      expect(canTransition(s, "failed")).toBe(true);
      expect(canTransition(s, "aborted")).toBe(true);
    }
    for (const s of POST_SWITCH_STATES) {
      expect(canTransition(s, "failed")).toBe(false);
      expect(canTransition(s, "aborted")).toBe(false);
      expect(canTransition(s, "rolled_back")).toBe(true);
    }
    expect(canTransition("active", "rolled_back")).toBe(true); // an operator's rollback
  });

  it("leaves a terminal state only for rolled_back from active; everything else is refused loudly", () => {
    for (const s of TERMINAL_STATES) {
      expect(isTerminal(s)).toBe(true);
      for (const to of ROLLOUT_DEVICE_STATES) expect(canTransition(s, to)).toBe(s === "active" && to === "rolled_back");
    }
    expect(() => assertRolloutTransition("failed", "active")).toThrow(
      new InvalidRolloutTransitionError("a rollout cannot go from failed to active"),
    );
    expect(() => assertRolloutTransition("health_check", "failed")).toThrow(InvalidRolloutTransitionError);
  });
});
