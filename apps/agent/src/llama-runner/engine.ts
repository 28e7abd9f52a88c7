/**
 * The llama.cpp engine behind the runner protocol, on node-llama-cpp: one model, one
 * context with one sequence (one resident session, as orchard-runner keeps it: the
 * memory of a Pi holds one KV cache), chat rendering through the model's own chat
 * template, streaming generation with KV reuse, cancel and stats.
 */
import { readFile } from "node:fs/promises";
import type { ChatMessage, RunnerDone } from "@orchard/contracts";
import {
  getLlama,
  LlamaLogLevel,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import { doneStats, parseProcStatus, plannedKeep, TextHoldback, type GenerationTiming } from "./plan.ts";

/** The longest context the runner allocates when --context is not given (memory on a Pi). */
export const DEFAULT_MAX_CONTEXT = 4096;

export type Log = (message: string) => void;

/** Loads node-llama-cpp's CPU build with an explicit thread count (its default oversubscribes small machines). */
export async function loadLlama(threads: number, log: Log): Promise<Llama> {
  return getLlama({
    gpu: false,
    maxThreads: threads,
    build: "never",
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => log(`llama.cpp ${level}: ${message.trimEnd()}`),
  });
}

/** The llama.cpp release node-llama-cpp ships: an artifact manifest's runtimeVersion for runtime "llama.cpp". */
export function llamaCppVersion(llama: Llama): string {
  return llama.llamaCppRelease.release;
}

export async function readMemory(): Promise<{ rss: number; peak: number }> {
  const rss = process.memoryUsage.rss();
  try {
    const parsed = parseProcStatus(await readFile("/proc/self/status", "utf8"));
    return { rss: parsed.rss ?? rss, peak: Math.max(parsed.peak ?? rss, rss) };
  } catch {
    return { rss, peak: rss };
  }
}

export class RequestError extends Error {
  constructor(
    readonly code: "bad_request" | "context_full" | "model_error",
    message: string,
  ) {
    super(message);
  }
}

export type GenerateInput = {
  id: string;
  session?: string | undefined;
  messages?: ChatMessage[] | undefined;
  prompt?: string | undefined;
  rendered?: string | undefined;
  max_new_tokens: number;
  temperature: number;
  top_p: number;
  seed?: number | undefined;
};

export type TokenEvent = { token_id: number; text: string };

export class LlamaEngine {
  #session: string | null = null;

  private constructor(
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly sequence: LlamaContextSequence,
    readonly chatWrapper: ChatWrapper,
    readonly modelName: string,
    readonly maxContext: number,
    private readonly log: Log,
  ) {}

  static async load(options: {
    llama: Llama;
    modelPath: string;
    threads: number;
    context: number | null;
    modelName: string | null;
    log: Log;
  }): Promise<LlamaEngine> {
    const { llama, threads, log } = options;
    const model = await llama.loadModel({ modelPath: options.modelPath, gpuLayers: 0 });
    try {
      const wanted = options.context ?? Math.min(model.trainContextSize, DEFAULT_MAX_CONTEXT);
      const context = await model.createContext({ contextSize: wanted, sequences: 1, threads, batchSize: Math.min(wanted, 512) });
      const maxContext = Math.min(wanted, context.contextSize);
      const chatWrapper = resolveChatWrapper(model);
      if (!chatWrapper) throw new Error("no chat wrapper could be resolved for this model");
      const name = options.modelName ?? model.fileInfo.metadata.general.name ?? "llama.cpp model";
      log(`loaded ${options.modelPath} (${name}), context ${maxContext}, ${threads} thread(s), chat template ${chatWrapper.wrapperName}`);
      return new LlamaEngine(llama, model, context, context.getSequence(), chatWrapper, name, maxContext, log);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  get session(): string | null {
    return this.#session;
  }

  get residentTokens(): number {
    return this.sequence.contextTokens.length;
  }

  /** Drops the resident session and clears the KV cache. */
  async reset(): Promise<void> {
    this.#session = null;
    await this.sequence.clearHistory();
  }

  /**
   * The prompt's token ids: the chat rendered with the model's template, BOS + raw text, or a
   * prompt already rendered by a template (special tokens by name, nothing added).
   */
  tokenize(input: Pick<GenerateInput, "messages" | "prompt" | "rendered">): Token[] {
    if (input.rendered !== undefined) return this.model.tokenize(input.rendered, true);
    const bos = this.model.tokens.bos;
    if (input.prompt !== undefined) {
      const text = this.model.tokenize(input.prompt, false);
      return bos !== null ? [bos, ...text] : text;
    }
    const history: ChatHistoryItem[] = (input.messages ?? []).map((m): ChatHistoryItem => {
      if (m.role === "system") return { type: "system", text: m.content };
      if (m.role === "user") return { type: "user", text: m.content };
      return { type: "model", response: [m.content] };
    });
    history.push({ type: "model", response: [] });
    let tokens: Token[];
    try {
      tokens = this.chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(this.model.tokenizer);
    } catch (error) {
      throw new RequestError("bad_request", `the chat template refused the conversation: ${(error as Error).message}`);
    }
    if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  /**
   * Runs one generation; `onToken` is called per token in order. Ends with the done
   * fields, or throws RequestError (the session is dropped after an engine failure).
   */
  async generate(
    input: GenerateInput,
    signal: AbortSignal,
    onToken: (event: TokenEvent) => void,
  ): Promise<Omit<RunnerDone, "type" | "id">> {
    const timing: GenerationTiming = { start: performance.now(), prefillStart: 0, firstToken: null, lastToken: null, end: 0 };
    const prompt = this.tokenize(input);
    if (prompt.length + input.max_new_tokens > this.maxContext) {
      throw new RequestError(
        "context_full",
        `prompt (${prompt.length} tokens) + max_new_tokens (${input.max_new_tokens}) exceeds the context of ${this.maxContext} tokens`,
      );
    }
    const sameSession = input.session !== undefined && input.session === this.#session;
    const token_ids: number[] = [];
    let finish: RunnerDone["finish_reason"] = "stop";
    let reused = 0;
    try {
      const keep = plannedKeep(this.sequence.contextTokens, prompt, sameSession);
      const resident = this.sequence.contextTokens.length;
      if (keep === 0 && resident > 0) await this.sequence.clearHistory();
      else if (keep < resident) await this.sequence.eraseContextTokenRanges([{ start: keep, end: resident }]);
      // What the engine actually kept: the sequence's own token list, checked against the prompt.
      const kept = this.sequence.contextTokens;
      reused = kept.length <= prompt.length - 1 && kept.every((t, i) => t === prompt[i]) ? kept.length : 0;
      if (reused === 0 && kept.length > 0) await this.sequence.clearHistory();
      this.#session = input.session ?? null;

      const holdback = new TextHoldback((tokens, lastTokens) => this.model.detokenize(tokens as Token[], false, lastTokens as Token[]));
      const greedy = input.temperature === 0;
      timing.prefillStart = performance.now();
      if (!signal.aborted) {
        const iterator = this.sequence.evaluate(prompt.slice(reused), {
          temperature: input.temperature,
          ...(greedy ? {} : { topP: input.top_p, seed: input.seed ?? Math.floor(Math.random() * 2 ** 32) }),
          yieldEogToken: true,
        });
        finish = "stop";
        for await (const token of iterator) {
          if (signal.aborted) {
            finish = "cancelled";
            break;
          }
          const now = performance.now();
          timing.firstToken ??= now;
          timing.lastToken = now;
          token_ids.push(token);
          onToken({ token_id: token, text: holdback.push(token) });
          if (this.model.isEogToken(token)) {
            finish = "stop";
            break;
          }
          if (token_ids.length >= input.max_new_tokens) {
            finish = "length";
            break;
          }
          if (signal.aborted) {
            finish = "cancelled";
            break;
          }
        }
      } else {
        finish = "cancelled";
      }
      if (holdback.heldTokens > 0)
        this.log(`dropped ${holdback.heldTokens} token(s) of an unfinished UTF-8 character at the end of ${input.id}`);
    } catch (error) {
      if (error instanceof RequestError) throw error;
      this.#session = null;
      await this.sequence.clearHistory().catch(() => undefined);
      throw new RequestError("model_error", `llama.cpp failed: ${(error as Error).message}`);
    }
    timing.end = performance.now();
    const memory = await readMemory();
    return {
      finish_reason: finish,
      prompt_tokens: prompt.length,
      reused_tokens: reused,
      generated_tokens: token_ids.length,
      ...doneStats(timing, prompt.length - reused, token_ids.length),
      peak_rss_bytes: memory.peak,
      token_ids,
    };
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
