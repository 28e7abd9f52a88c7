/**
 * The runner protocol: NDJSON between the agent and `orchard-runner` (native/).
 * The agent writes requests to the runner's stdin, one JSON object per line; the
 * runner answers on its stdout, which it reserves for protocol lines (it moves its
 * own fd 1 to stderr at start, so nothing an engine prints can corrupt the stream).
 * Logs go to stderr. native/src/protocol.cpp implements the other side of this file;
 * docs/runner.md describes the protocol in detail.
 */
import { z } from "zod";

/** Longest protocol line either side accepts (a long multi-turn conversation fits well within it). */
export const RUNNER_MAX_LINE_BYTES = 1024 * 1024;

const id = z.string().min(1).max(64);
const nonneg = z.number().nonnegative();
const count = z.number().int().nonnegative();

export const ChatRole = z.enum(["system", "user", "assistant"]);
export type ChatRole = z.infer<typeof ChatRole>;

export const ChatMessage = z.object({
  role: ChatRole,
  content: z.string().max(256 * 1024),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

// ---------------------------------------------------------------- agent → runner

export const GenerateRequest = z
  .object({
    type: z.literal("generate"),
    id,
    /** Conversation the request continues; the runner reuses its KV cache when the tokens extend it. */
    session: z.string().min(1).max(128).optional(),
    /** A chat, rendered with the model's chat template by the runner… */
    messages: z.array(ChatMessage).min(1).optional(),
    /**
     * …or raw text fed as-is after BOS, without the chat template. Note: the reference
     * check ("The capital of France is" → [818, …, 106]) is a one-user-message chat, not a raw prompt.
     */
    prompt: z
      .string()
      .max(256 * 1024)
      .optional(),
    /**
     * …or the whole prompt as the model's own chat template rendered it (the agent renders the
     * model folder's chat_template.jinja): encoded as is, special tokens by name, nothing added.
     */
    rendered: z
      .string()
      .min(1)
      .max(256 * 1024)
      .optional(),
    max_new_tokens: z.number().int().positive().max(100_000).default(256),
    /** 0 = greedy (the default, and what reference checks use). */
    temperature: z.number().min(0).max(10).default(0),
    top_p: z.number().gt(0).max(1).default(1),
    seed: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 32 - 1)
      .optional(),
  })
  .refine((r) => [r.messages, r.prompt, r.rendered].filter((v) => v !== undefined).length === 1, {
    message: "exactly one of messages, prompt or rendered is required",
  });
export type GenerateRequest = z.input<typeof GenerateRequest>;

export const RunnerRequest = z.union([
  GenerateRequest,
  z.object({ type: z.literal("cancel"), id }),
  z.object({ type: z.literal("reset"), session: z.string().min(1).max(128).optional() }),
  z.object({ type: z.literal("stats") }),
  z.object({ type: z.literal("shutdown") }),
]);
export type RunnerRequest = z.input<typeof RunnerRequest>;

// ---------------------------------------------------------------- runner → agent

export const RunnerReady = z.object({
  type: z.literal("ready"),
  backend: z.enum(["sim", "executorch", "llamacpp"]),
  /** What is loaded; the sim backend says so in the name. */
  model: z.string(),
  max_context: z.number().int().positive(),
  load_ms: nonneg,
  rss_bytes: count,
  /** The runner's own version (orchard-runner), not the engine's. */
  version: z.string(),
});
export type RunnerReady = z.infer<typeof RunnerReady>;

export const RunnerToken = z.object({
  type: z.literal("token"),
  id,
  /** Complete UTF-8 text; bytes of an unfinished character are held back until it completes. */
  text: z.string(),
  token_id: z.number().int(),
});
export type RunnerToken = z.infer<typeof RunnerToken>;

export const FINISH_REASONS = ["stop", "length", "cancelled"] as const;

export const RunnerDone = z.object({
  type: z.literal("done"),
  id,
  finish_reason: z.enum(FINISH_REASONS),
  prompt_tokens: count,
  /** Prompt tokens that were already in the KV cache and not fed again. */
  reused_tokens: count,
  generated_tokens: count,
  ttft_ms: nonneg,
  prefill_ms: nonneg,
  decode_ms: nonneg,
  prefill_tok_s: nonneg,
  decode_tok_s: nonneg,
  peak_rss_bytes: count,
  /** Every generated token id in order (the health gate compares them with a reference). */
  token_ids: z.array(z.number().int()),
  /** Of decode_ms, the time inside the runtime's own execute call (executorch: Module::execute); absent elsewhere. */
  decode_execute_ms: nonneg.optional(),
});
export type RunnerDone = z.infer<typeof RunnerDone>;

export const RunnerStats = z.object({
  type: z.literal("stats"),
  rss_bytes: count,
  peak_rss_bytes: count,
  busy: z.boolean(),
  session: z.string().nullable(),
  /** Token ids currently in the KV cache (what the next turn of the session can reuse). */
  resident_tokens: count,
  max_context: z.number().int().positive(),
});
export type RunnerStats = z.infer<typeof RunnerStats>;

export const RunnerResetDone = z.object({
  type: z.literal("reset_done"),
  session: z.string().nullable(),
});

export const RUNNER_ERROR_CODES = [
  "bad_request", // a line that is not valid JSON or not a known request
  "busy", // a generate or reset arrived while a generation is running
  "context_full", // the request cannot fit in the model's context
  "not_found", // cancel for an id that is not running
  "model_error", // the engine failed while running
  "load_failed", // the model could not be loaded (the runner exits after this)
  "unsupported", // e.g. the executorch backend in a build without ExecuTorch
] as const;
export const RunnerErrorCode = z.enum(RUNNER_ERROR_CODES);

export const RunnerError = z.object({
  type: z.literal("error"),
  /** The request the error belongs to, when there is one. */
  id: id.optional(),
  code: RunnerErrorCode,
  message: z.string(),
});
export type RunnerError = z.infer<typeof RunnerError>;

export const RunnerMessage = z.discriminatedUnion("type", [
  RunnerReady,
  RunnerToken,
  RunnerDone,
  RunnerStats,
  RunnerResetDone,
  RunnerError,
]);
export type RunnerMessage = z.infer<typeof RunnerMessage>;

/** Parses one line from the runner; throws with the line quoted when it is not a protocol message. */
export function parseRunnerLine(line: string): RunnerMessage {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`runner wrote a line that is not JSON: ${line.slice(0, 200)}`);
  }
  const result = RunnerMessage.safeParse(json);
  if (!result.success) {
    throw new Error(`runner wrote an unknown message (${result.error.issues[0]?.message}): ${line.slice(0, 200)}`);
  }
  return result.data;
}

export function encodeRunnerRequest(request: RunnerRequest): string {
  return `${JSON.stringify(RunnerRequest.parse(request))}\n`;
}
