/**
 * What a failed chat tells the person waiting for it: the runner's error codes and
 * states mapped to the contract's ChatErrorCode, each with a sentence that says
 * what happened and what to do. Pure.
 */
import type { ChatErrorCode, RunnerStatus } from "@orchard/contracts";
import { RunnerRequestError } from "../runner/generation.js";

export interface ChatFailure {
  code: ChatErrorCode;
  /** For a person (the contract allows 2000 characters). */
  message: string;
}

const MAX_MESSAGE_CHARS = 2000;

function failure(code: ChatErrorCode, message: string): ChatFailure {
  return { code, message: message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS - 1)}…` : message };
}

/** Why the runner cannot take a chat right now, from its state. */
export function notReadyMessage(runner: Pick<RunnerStatus, "state" | "lastError">): string {
  switch (runner.state) {
    case "starting":
      return "the model is still loading; try again in a moment";
    case "crashed":
      return "the runner crashed and is restarting; try again in a moment";
    case "crash_loop":
      return `the runner keeps crashing and is only retried every few minutes${runner.lastError ? ` (${runner.lastError})` : ""}; an operator needs to look at this device`;
    case "stopped":
      return "the runner is not running on this device";
    case "ready":
      return "the runner is not ready; try again in a moment";
  }
}

export function notReady(runner: Pick<RunnerStatus, "state" | "lastError">): ChatFailure {
  return failure("not_ready", notReadyMessage(runner));
}

export function queueFull(deviceName: string, held: number): ChatFailure {
  return failure("queue_full", `${deviceName} is busy: ${held} ${held === 1 ? "chat is" : "chats are"} already queued; try again shortly`);
}

export function shuttingDown(): ChatFailure {
  return failure("not_ready", "the agent is shutting down; send your message again when the device is back online");
}

export function duplicate(requestId: string, state: "held" | "finished"): ChatFailure {
  return failure(
    "duplicate",
    state === "held"
      ? `request ${requestId} is already being answered on this device`
      : `request ${requestId} was already answered on this device`,
  );
}

export function invalidRequest(reason: string): ChatFailure {
  return failure("bad_request", `the device refused the request: ${reason}`);
}

/** A failed generation (thrown by `generate`, from the token loop or from `result`). */
export function chatErrorFor(error: unknown, runner: Pick<RunnerStatus, "state" | "lastError" | "maxContext">): ChatFailure {
  if (!(error instanceof RunnerRequestError)) {
    return failure("model_error", `the agent failed while answering: ${error instanceof Error ? error.message : String(error)}`);
  }
  switch (error.code) {
    case "not_ready":
      return notReady(runner);
    case "runner_exited":
      return failure("runner_exited", "the runner stopped during the answer; it is being restarted — send your message again");
    case "context_full":
      return failure(
        "context_full",
        `this conversation no longer fits in the model's context${runner.maxContext ? ` (${runner.maxContext} tokens)` : ""}; start a new conversation`,
      );
    case "bad_request":
      return invalidRequest(error.message);
    case "model_error":
      return failure("model_error", `the model failed while answering: ${error.message}`);
    case "busy":
      // One generation at a time is the executor's job, so this is a bug, not a busy device.
      return failure("model_error", "the runner was unexpectedly busy with another answer; send your message again");
    case "timeout":
      return failure("model_error", `the runner did not answer in time: ${error.message}`);
    case "not_found":
    case "load_failed":
    case "unsupported":
      return failure("model_error", `the runner failed: ${error.code}: ${error.message}`);
  }
}
