/**
 * A device's rollout as one declared table of states (the contracts'
 * RolloutDeviceState) and the moves allowed between them. The rollout runner moves
 * only through `assertRolloutTransition`, so a move the table does not hold is a bug
 * that shows at once instead of a confusing report.
 *
 *   pending → preflight → downloading → verifying → staged → activating → health_check → active
 *                │            │  ↑          │          │          │             │
 *                │            │  └──────────┘ (hash mismatch: clean retry)     │
 *                ├── failed ←─┴─────────────┴──────────┘ (before the switch: the old model never stopped)
 *                │                                        activating / health_check / active
 *                │                                              └──→ rolled_back (the previous model is back)
 *                └── active (the artifact is the active model already)
 *
 * An operator's abort stops any state before activating (→ aborted); an operator's
 * rollback ends any state in rolled_back (before the switch the old model simply
 * never stopped). Terminal states are left only by a new rollout.apply (a retry),
 * which starts a new run at pending.
 */
import type { RolloutDeviceState } from "@orchard/contracts";

/** States before the `current` pointer can have switched: failing here leaves the old model running untouched. */
export const PRE_SWITCH_STATES: readonly RolloutDeviceState[] = ["pending", "preflight", "downloading", "verifying", "staged"];

/** States after the runner may have been stopped for the new model: failing here switches back. */
export const POST_SWITCH_STATES: readonly RolloutDeviceState[] = ["activating", "health_check"];

export const TERMINAL_STATES: readonly RolloutDeviceState[] = ["active", "failed", "rolled_back", "aborted"];

export const ROLLOUT_TRANSITIONS: readonly (readonly [from: RolloutDeviceState, to: RolloutDeviceState])[] = [
  // the way forward
  ["pending", "preflight"],
  ["preflight", "downloading"],
  ["downloading", "verifying"],
  ["verifying", "staged"],
  ["staged", "activating"],
  ["activating", "health_check"],
  ["health_check", "active"],
  // the artifact is already the active model: nothing to fetch or switch
  ["preflight", "active"],
  // a hash mismatch retries the download from a clean state
  ["verifying", "downloading"],
  // failing before the switch
  ["pending", "failed"],
  ["preflight", "failed"],
  ["downloading", "failed"],
  ["verifying", "failed"],
  ["staged", "failed"],
  // failing after it, or an operator's rollback at any point
  ["pending", "rolled_back"],
  ["preflight", "rolled_back"],
  ["downloading", "rolled_back"],
  ["verifying", "rolled_back"],
  ["staged", "rolled_back"],
  ["activating", "rolled_back"],
  ["health_check", "rolled_back"],
  ["active", "rolled_back"],
  // an operator's abort, before activating
  ["pending", "aborted"],
  ["preflight", "aborted"],
  ["downloading", "aborted"],
  ["verifying", "aborted"],
  ["staged", "aborted"],
];

export class InvalidRolloutTransitionError extends Error {
  override readonly name = "InvalidRolloutTransitionError";
}

export function canTransition(from: RolloutDeviceState, to: RolloutDeviceState): boolean {
  return ROLLOUT_TRANSITIONS.some(([f, t]) => f === from && t === to);
}

export function assertRolloutTransition(from: RolloutDeviceState, to: RolloutDeviceState): void {
  if (!canTransition(from, to)) throw new InvalidRolloutTransitionError(`a rollout cannot go from ${from} to ${to}`);
}

export function isTerminal(state: RolloutDeviceState): boolean {
  return TERMINAL_STATES.includes(state);
}
