/**
 * The runner's lifecycle as one declared transition table (states from the
 * contracts' RunnerState). The supervisor moves only through `nextRunnerState`,
 * so an impossible move is a bug that shows up at once, not a confusing report.
 */
import type { RunnerState } from "@orchard/contracts";

export type RunnerLifecycleEvent =
  | "spawn" // a runner process was started
  | "ready" // it printed its `ready` line
  | "crash" // it exited unexpectedly; a restart is scheduled
  | "crash_loop" // it exited unexpectedly once too often; restarts are slowed right down
  | "stopped"; // it exited because the agent asked it to (shutdown, restart)

export const RUNNER_TRANSITIONS: readonly (readonly [from: RunnerState, event: RunnerLifecycleEvent, to: RunnerState])[] = [
  ["stopped", "spawn", "starting"],
  ["crashed", "spawn", "starting"],
  ["crash_loop", "spawn", "starting"],
  ["starting", "ready", "ready"],
  ["starting", "crash", "crashed"],
  ["ready", "crash", "crashed"],
  ["starting", "crash_loop", "crash_loop"],
  ["ready", "crash_loop", "crash_loop"],
  ["starting", "stopped", "stopped"],
  ["ready", "stopped", "stopped"],
  ["crashed", "stopped", "stopped"],
  ["crash_loop", "stopped", "stopped"],
  ["stopped", "stopped", "stopped"],
];

export class InvalidTransitionError extends Error {
  override readonly name = "InvalidTransitionError";
}

export function nextRunnerState(from: RunnerState, event: RunnerLifecycleEvent): RunnerState {
  const row = RUNNER_TRANSITIONS.find(([f, e]) => f === from && e === event);
  if (!row) throw new InvalidTransitionError(`runner cannot go from ${from} on ${event}`);
  return row[2];
}
