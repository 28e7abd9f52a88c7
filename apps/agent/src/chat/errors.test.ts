import type { RunnerStatus } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { RunnerRequestError } from "../runner/generation.js";
import { chatErrorFor, duplicate, notReady, queueFull, shuttingDown } from "./errors.js";
import { fitAnswer } from "./executor.js";

const runner = (patch: Partial<RunnerStatus> = {}) => ({ state: "ready" as const, lastError: null, maxContext: 511, ...patch });
const error = (code: ConstructorParameters<typeof RunnerRequestError>[0], message = "details") => new RunnerRequestError(code, message);

describe("chat error mapping", () => {
  it("maps the runner's refusals to the contract's codes with a sentence for a person", () => {
    expect(chatErrorFor(error("context_full", "prompt (300 tokens) + max_new_tokens (256) exceeds 511"), runner())).toEqual({
      code: "context_full",
      message: "this conversation no longer fits in the model's context (511 tokens); start a new conversation",
    });
    expect(chatErrorFor(error("bad_request", "roles must alternate"), runner())).toEqual({
      code: "bad_request",
      message: "the device refused the request: roles must alternate",
    });
    expect(chatErrorFor(error("model_error", "forward failed"), runner())).toEqual({
      code: "model_error",
      message: "the model failed while answering: forward failed",
    });
    expect(chatErrorFor(error("busy"), runner())).toMatchObject({
      code: "model_error",
      message: expect.stringMatching(/unexpectedly busy/),
    });
    expect(chatErrorFor(error("timeout"), runner())).toMatchObject({ code: "model_error" });
    expect(chatErrorFor(new Error("boom"), runner())).toEqual({ code: "model_error", message: "the agent failed while answering: boom" });
  });

  it("a runner that died mid-answer says it is restarting and to send again", () => {
    expect(chatErrorFor(error("runner_exited", "the runner exited (SIGKILL)"), runner({ state: "crashed" }))).toEqual({
      code: "runner_exited",
      message: "the runner stopped during the answer; it is being restarted — send your message again",
    });
  });

  it("not_ready says what the runner is doing", () => {
    expect(notReady(runner({ state: "starting" })).message).toBe("the model is still loading; try again in a moment");
    expect(notReady(runner({ state: "crashed" })).message).toBe("the runner crashed and is restarting; try again in a moment");
    expect(notReady(runner({ state: "crash_loop", lastError: "exited with code 1: load_failed: no such file" })).message).toMatch(
      /keeps crashing .*\(exited with code 1: load_failed: no such file\); an operator/,
    );
    expect(chatErrorFor(error("not_ready"), runner({ state: "starting" }))).toMatchObject({ code: "not_ready" });
    expect(shuttingDown()).toMatchObject({ code: "not_ready", message: expect.stringMatching(/^the agent is shutting down/) });
  });

  it("queue_full and duplicate", () => {
    expect(queueFull("pi-kitchen", 4)).toEqual({
      code: "queue_full",
      message: "pi-kitchen is busy: 4 chats are already queued; try again shortly",
    });
    expect(queueFull("this device", 1).message).toBe("this device is busy: 1 chat is already queued; try again shortly");
    expect(duplicate("r1", "held")).toEqual({ code: "duplicate", message: "request r1 is already being answered on this device" });
    expect(duplicate("r1", "finished").message).toBe("request r1 was already answered on this device");
  });

  it("messages stay within the contract's 2000 characters", () => {
    expect(chatErrorFor(error("model_error", "x".repeat(5000)), runner()).message).toHaveLength(2000);
  });
});

describe("fitAnswer", () => {
  it("keeps an answer that fits, and cuts one that does not without splitting a character", () => {
    expect(fitAnswer("hello")).toBe("hello");
    expect(fitAnswer("abcdefghij", 4)).toBe("abcd");
    const apples = "🍎".repeat(100); // two UTF-16 units each
    const cut = fitAnswer(apples, 51);
    expect(cut).toBe("🍎".repeat(25));
    // JSON bytes: quotes and escapes count.
    const quoted = '"'.repeat(100);
    const fitted = fitAnswer(quoted, 1000, 50);
    expect(Buffer.byteLength(JSON.stringify(fitted))).toBeLessThanOrEqual(50);
    expect(fitted.length).toBeGreaterThan(15);
  });
});
