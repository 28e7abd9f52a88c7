/**
 * The OpenAI-compatible API: `GET /v1/models` and `POST /v1/chat/completions`
 * (streamed as server-sent events, or whole), authenticated with API keys, so
 * tools that speak OpenAI can chat with any Pi (models: viewer; chat: operator, see access.ts). `model` is `device:<id>`, or a
 * model name, in which case an idle online device running it answers. Errors use
 * OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { z } from "zod";
import { CHAT_MAX_MESSAGE_CHARS, ChatSampling, type ChatMessage, type DeviceSummary, type RelayChatErrorCode } from "@orchard/contracts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { Services } from "../services/index.ts";
import type { Generation, GenerationOutcome } from "../services/chat-relay.ts";
import type { Principal } from "../services/auth.ts";
import { readJsonBody } from "./request.ts";

const DEVICE_MODEL_PREFIX = "device:";
/** What a request that says nothing about sampling gets (greedy, 256 new tokens). */
const SAMPLING_DEFAULTS = ChatSampling.parse({});
const KEEPALIVE_MS = 15_000;

const ContentPart = z.object({ type: z.literal("text"), text: z.string() }).loose();
const RequestMessage = z
  .object({
    role: z.enum(["system", "developer", "user", "assistant"]),
    content: z.union([z.string(), z.array(ContentPart)]).nullable(),
  })
  .loose();

const CompletionRequest = z
  .object({
    model: z.string().min(1).max(200),
    messages: z.array(RequestMessage).min(1, "messages must contain at least one message"),
    stream: z.boolean().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).loose().nullable().optional(),
    max_tokens: z.number().int().positive().max(8192).nullable().optional(),
    max_completion_tokens: z.number().int().positive().max(8192).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().gt(0).max(1).nullable().optional(),
    seed: z
      .number()
      .int()
      .nonnegative()
      .max(2 ** 32 - 1)
      .nullable()
      .optional(),
    n: z.literal(1, "only n = 1 is supported").nullable().optional(),
    stop: z
      .union([z.string(), z.array(z.string())])
      .nullable()
      .optional(),
    tools: z.array(z.unknown()).optional(),
  })
  .loose();
type CompletionRequest = z.infer<typeof CompletionRequest>;

class OpenAiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

function sendOpenAiError(res: ServerResponse, err: OpenAiError): void {
  res.writeHead(err.status, { "content-type": "application/json; charset=utf-8" });
  res.end(JSON.stringify({ error: { message: err.message, type: err.type, param: err.param, code: err.code } }));
}

/** A refusal made in front of the handler (access.ts, same-origin check, body limit), in OpenAI's error shape. */
export function sendOpenAiAppError(res: ServerResponse, err: AppError): void {
  switch (err.code) {
    case "unauthorized":
      return sendOpenAiError(
        res,
        new OpenAiError(
          401,
          "Incorrect API key provided. Create one in the Orchard dashboard (API keys) and send it as `Authorization: Bearer …`.",
          "invalid_request_error",
          "invalid_api_key",
        ),
      );
    case "forbidden":
      return sendOpenAiError(res, new OpenAiError(403, err.message, "permission_error", "insufficient_permissions"));
    case "payload_too_large":
      return sendOpenAiError(res, new OpenAiError(413, err.message, "invalid_request_error", "request_too_large"));
    case "not_found":
      return sendOpenAiError(res, new OpenAiError(404, err.message, "invalid_request_error", "unknown_url"));
    default:
      return sendOpenAiError(res, new OpenAiError(400, err.message, "invalid_request_error", null));
  }
}

/** Status and OpenAI error type for a failed generation. */
function outcomeError(code: RelayChatErrorCode, message: string): OpenAiError {
  switch (code) {
    case "queue_full":
      return new OpenAiError(429, message, "rate_limit_error", code);
    case "context_full":
      return new OpenAiError(400, message, "invalid_request_error", "context_length_exceeded", "messages");
    case "bad_request":
      return new OpenAiError(400, message, "invalid_request_error", code);
    case "model_error":
      return new OpenAiError(500, message, "server_error", code);
    default:
      return new OpenAiError(503, message, "server_error", code);
  }
}

function textOf(content: z.infer<typeof RequestMessage>["content"]): string {
  if (content === null) return "";
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

export function createOpenAiRoutes(deps: { services: Services; log: Logger }) {
  const { services, log } = deps;

  /** Devices that could answer now, keyed by the model names clients may use. */
  function availableDevices(): DeviceSummary[] {
    return services.fleet.list().filter((d) => services.chatRelay.unavailableReason(d) === null);
  }

  function modelNamesOf(d: DeviceSummary): string[] {
    return [...new Set([d.activeModel?.name, d.runner?.model].filter((n): n is string => !!n))];
  }

  function resolveDevice(model: string): DeviceSummary {
    if (model.startsWith(DEVICE_MODEL_PREFIX)) {
      const id = model.slice(DEVICE_MODEL_PREFIX.length);
      const device = services.fleet.get(id);
      if (!device)
        throw new OpenAiError(
          404,
          `The model \`${model}\` does not exist: there is no device ${id}.`,
          "invalid_request_error",
          "model_not_found",
          "model",
        );
      const reason = services.chatRelay.unavailableReason(device);
      if (reason) throw new OpenAiError(503, reason, "server_error", "device_unavailable", "model");
      return device;
    }
    const running = services.fleet.list().filter((d) => modelNamesOf(d).includes(model));
    if (running.length === 0) {
      throw new OpenAiError(
        404,
        `The model \`${model}\` does not exist on any device. GET /v1/models lists what is available.`,
        "invalid_request_error",
        "model_not_found",
        "model",
      );
    }
    const ready = running.filter((d) => services.chatRelay.unavailableReason(d) === null);
    if (ready.length === 0) {
      throw new OpenAiError(
        503,
        `No device running \`${model}\` can answer now (${running.map((d) => services.chatRelay.unavailableReason(d)).join(" ")})`,
        "server_error",
        "device_unavailable",
        "model",
      );
    }
    // The least busy device running the model.
    return ready.reduce((best, d) => (services.chatRelay.inFlight(d.id) < services.chatRelay.inFlight(best.id) ? d : best));
  }

  function toChatMessages(request: CompletionRequest): ChatMessage[] {
    if (request.tools && request.tools.length > 0)
      throw new OpenAiError(
        400,
        "tools are not supported by Orchard's runners.",
        "invalid_request_error",
        "unsupported_parameter",
        "tools",
      );
    const stops = request.stop === undefined || request.stop === null ? [] : [request.stop].flat();
    if (stops.length > 0)
      throw new OpenAiError(
        400,
        "stop sequences are not supported; the model stops at its end-of-turn token.",
        "invalid_request_error",
        "unsupported_parameter",
        "stop",
      );
    const messages = request.messages.map((m) => ({
      role: m.role === "developer" ? ("system" as const) : m.role,
      content: textOf(m.content),
    }));
    const last = messages.at(-1)!;
    if (last.role !== "user")
      throw new OpenAiError(400, "The last message must come from the user.", "invalid_request_error", "invalid_messages", "messages");
    if (last.content.trim().length === 0)
      throw new OpenAiError(400, "The last user message is empty.", "invalid_request_error", "invalid_messages", "messages");
    const longest = Math.max(...messages.map((m) => m.content.length));
    if (longest > CHAT_MAX_MESSAGE_CHARS) {
      throw new OpenAiError(
        400,
        `A message is ${longest} characters long; the limit is ${CHAT_MAX_MESSAGE_CHARS}.`,
        "invalid_request_error",
        "message_too_long",
        "messages",
      );
    }
    return messages;
  }

  async function completions(req: IncomingMessage, res: ServerResponse, username: string): Promise<void> {
    let body: unknown;
    try {
      body = await readJsonBody(req, 4 * 1024 * 1024);
    } catch (err) {
      if (err instanceof AppError && err.code === "payload_too_large") {
        res.setHeader("connection", "close");
        throw new OpenAiError(413, err.message, "invalid_request_error", "request_too_large");
      }
      throw new OpenAiError(400, (err as Error).message, "invalid_request_error", "invalid_json");
    }
    const parsed = CompletionRequest.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new OpenAiError(
        400,
        `Invalid request: ${issue.path.join(".") || "body"}: ${issue.message}`,
        "invalid_request_error",
        "invalid_request",
        issue.path.join(".") || null,
      );
    }
    const request = parsed.data;
    const messages = toChatMessages(request);
    const device = resolveDevice(request.model);
    let generation: Generation;
    try {
      generation = await services.chatRelay.start({
        deviceId: device.id,
        session: `openai:${username}`,
        messages,
        maxNewTokens: request.max_completion_tokens ?? request.max_tokens ?? SAMPLING_DEFAULTS.maxNewTokens,
        temperature: request.temperature ?? SAMPLING_DEFAULTS.temperature,
        topP: request.top_p ?? SAMPLING_DEFAULTS.topP,
        ...(request.seed != null ? { seed: request.seed } : {}),
      });
    } catch (err) {
      if (err instanceof AppError) throw new OpenAiError(503, err.message, "server_error", "device_unavailable");
      throw err;
    }
    const id = `chatcmpl-${generation.requestId}`;
    const created = Math.floor(Date.now() / 1000);
    const model = request.model;

    // A client that goes away stops the generation on the device.
    let finished = false;
    res.on("close", () => {
      if (!finished) void generation.cancel();
    });

    if (!request.stream) {
      const outcome = await generation.outcome;
      finished = true;
      if (!outcome.ok) throw outcomeError(outcome.code, outcome.message);
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model,
          system_fingerprint: `orchard-${device.id}`,
          choices: [
            { index: 0, message: { role: "assistant", content: outcome.text }, finish_reason: finishReason(outcome), logprobs: null },
          ],
          usage: usageOf(outcome),
        }),
      );
      return;
    }

    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      res.write(
        `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, system_fingerprint: `orchard-${device.id}`, choices, ...extra })}\n\n`,
      );
    chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, logprobs: null }]);
    generation.onEvent((event) => {
      // `orchard.ts`: when the device read the chunk's first token from its runner (ms since epoch), for latency measurements.
      if (event.type === "tokens")
        chunk([{ index: 0, delta: { content: event.text }, finish_reason: null, logprobs: null }], { orchard: { ts: event.ts } });
    });
    // Comments keep proxies from closing the stream while a slow Pi reads a long prompt.
    const keepalive = setInterval(() => res.write(": keep-alive\n\n"), KEEPALIVE_MS);
    const outcome = await generation.outcome.finally(() => clearInterval(keepalive));
    finished = true;
    if (outcome.ok) {
      chunk([{ index: 0, delta: {}, finish_reason: finishReason(outcome), logprobs: null }], { usage: usageOf(outcome) });
    } else {
      const err = outcomeError(outcome.code, outcome.message);
      res.write(`data: ${JSON.stringify({ error: { message: err.message, type: err.type, param: err.param, code: err.code } })}\n\n`);
    }
    res.end("data: [DONE]\n\n");
  }

  function models(res: ServerResponse): void {
    const created = Math.floor(Date.now() / 1000);
    const devices = availableDevices();
    const names = [...new Set(devices.flatMap(modelNamesOf))];
    const data = [
      ...devices.map((d) => ({ id: `${DEVICE_MODEL_PREFIX}${d.id}`, object: "model", created, owned_by: `orchard (${d.name})` })),
      ...names.map((name) => ({ id: name, object: "model", created, owned_by: "orchard" })),
    ];
    res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify({ object: "list", data }));
  }

  /** Handles /v1/*; returns false for other paths. */
  return async function handle(req: IncomingMessage, res: ServerResponse, path: string, principal: Principal | null): Promise<boolean> {
    if (!path.startsWith("/v1/")) return false;
    try {
      // routes.ts let the caller through with the role the endpoint needs (access.ts).
      if (!principal)
        throw new OpenAiError(
          401,
          "Incorrect API key provided. Create one in the Orchard dashboard (API keys) and send it as `Authorization: Bearer …`.",
          "invalid_request_error",
          "invalid_api_key",
        );
      if (path === "/v1/models" && req.method === "GET") models(res);
      else if (path === "/v1/chat/completions" && req.method === "POST") await completions(req, res, principal.username);
      else throw new OpenAiError(404, `Unknown endpoint ${req.method} ${path}.`, "invalid_request_error", "unknown_url");
    } catch (err) {
      if (res.headersSent) {
        res.end();
      } else if (err instanceof OpenAiError) {
        sendOpenAiError(res, err);
      } else {
        log.error("OpenAI-compatible request failed", { path, error: (err as Error).message });
        sendOpenAiError(res, new OpenAiError(500, "Internal error; see the server log.", "server_error"));
      }
    }
    return true;
  };
}

function finishReason(outcome: Extract<GenerationOutcome, { ok: true }>): "stop" | "length" {
  return outcome.stats.finishReason === "length" ? "length" : "stop";
}

function usageOf(outcome: Extract<GenerationOutcome, { ok: true }>) {
  const s = outcome.stats;
  return {
    prompt_tokens: s.promptTokens,
    completion_tokens: s.generatedTokens,
    total_tokens: s.promptTokens + s.generatedTokens,
    prompt_tokens_details: { cached_tokens: s.reusedTokens },
  };
}
