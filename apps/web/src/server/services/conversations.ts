/**
 * The dashboard's conversations: persisted, multi-turn chats with the model on
 * one device. Sending stores the user's message before anything can fail on the
 * device (nothing typed is lost), starts a generation through the ChatRelay, and
 * stores the answer with its stats when it ends. Live progress is emitted for
 * socket.io; only the start and the end of an answer touch the database.
 */
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CHAT_MAX_MESSAGE_CHARS,
  GenerationStats,
  type ChatErrorEvent,
  type ChatSampling,
  type ChatMessage,
  type ChatStatusEvent,
  type ChatTokensEvent,
  type ConversationMessageDto,
} from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ChatRelay, Generation, GenerationOutcome } from "./chat-relay.ts";
import type { FleetService } from "./fleet.ts";

export interface ConversationEvents {
  message: [{ conversationId: string; message: ConversationMessageDto }];
  status: [ChatStatusEvent];
  tokens: [ChatTokensEvent];
  done: [{ conversationId: string; message: ConversationMessageDto }];
  error: [ChatErrorEvent];
}

export interface ConversationSummary {
  id: string;
  title: string;
  deviceId: string | null;
  deviceName: string | null;
  createdAt: number;
  updatedAt: number;
  messageCount: number;
  /** An answer is being generated right now. */
  answering: boolean;
}

type MessageRow = {
  id: string;
  role: string;
  content: string;
  status: string;
  errorCode: string | null;
  error: string | null;
  stats: unknown;
  createdAt: Date;
};

export function toMessageDto(row: MessageRow): ConversationMessageDto {
  const stats = GenerationStats.safeParse(row.stats);
  return {
    id: row.id,
    role: row.role === "assistant" ? "assistant" : "user",
    content: row.content,
    status: (["complete", "streaming", "cancelled", "error"] as const).find((s) => s === row.status) ?? "error",
    errorCode: row.errorCode,
    error: row.error,
    stats: stats.success ? stats.data : null,
    createdAt: row.createdAt.getTime(),
  };
}

const TITLE_CHARS = 60;

export class ConversationService extends EventEmitter<ConversationEvents> {
  /** Conversation id → the generation answering in it. One answer at a time per conversation. */
  private readonly answering = new Map<string, Generation>();

  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: FleetService,
    private readonly relay: ChatRelay,
    private readonly log: Logger,
    /** How often, and how far apart, storing a finished answer is tried while the database fails. */
    private readonly storeRetry = { attempts: 4, delayMs: 1_000 },
  ) {
    super();
  }

  /** Messages left from a previous server run cannot finish any more: say so. */
  async recoverInterrupted(): Promise<number> {
    const { count } = await this.prisma.conversationMessage.updateMany({
      where: { status: "streaming" },
      data: { status: "error", errorCode: "device_offline", error: "The server restarted during this answer." },
    });
    return count;
  }

  async list(): Promise<ConversationSummary[]> {
    const rows = await this.prisma.conversation.findMany({
      orderBy: { updatedAt: "desc" },
      include: { _count: { select: { messages: true } } },
    });
    return rows.map((c) => ({
      id: c.id,
      title: c.title,
      deviceId: c.deviceId,
      deviceName: c.deviceId ? (this.fleet.get(c.deviceId)?.name ?? null) : null,
      createdAt: c.createdAt.getTime(),
      updatedAt: c.updatedAt.getTime(),
      messageCount: c._count.messages,
      answering: this.answering.has(c.id),
    }));
  }

  async get(id: string): Promise<ConversationSummary & { messages: ConversationMessageDto[] }> {
    const c = await this.prisma.conversation.findUnique({ where: { id }, include: { messages: { orderBy: { createdAt: "asc" } } } });
    if (!c) throw new AppError("not_found", "This conversation does not exist (it may have been deleted).");
    const generation = this.answering.get(c.id);
    return {
      id: c.id,
      title: c.title,
      deviceId: c.deviceId,
      deviceName: c.deviceId ? (this.fleet.get(c.deviceId)?.name ?? null) : null,
      createdAt: c.createdAt.getTime(),
      updatedAt: c.updatedAt.getTime(),
      messageCount: c.messages.length,
      answering: generation !== undefined,
      // The answer in progress is stored at the end; until then its text so far lives in the relay.
      messages: c.messages.map((m) =>
        generation && m.requestId === generation.requestId && m.status === "streaming"
          ? { ...toMessageDto(m), content: generation.partialText() }
          : toMessageDto(m),
      ),
    };
  }

  /**
   * Sends a user message: into an existing conversation, or a new one on `deviceId`.
   * Refuses before storing anything when the device cannot answer now, so the text stays
   * in the sender's input; once stored, failures are recorded on the answer.
   */
  async send(input: { conversationId?: string; deviceId?: string; content: string; options: ChatSampling }): Promise<{
    conversationId: string;
    userMessage: ConversationMessageDto;
    assistantMessageId: string;
  }> {
    const content = input.content.trim();
    if (content.length === 0) throw new AppError("bad_request", "The message is empty.");
    if (content.length > CHAT_MAX_MESSAGE_CHARS) {
      throw new AppError("bad_request", `The message is ${content.length} characters long; the limit is ${CHAT_MAX_MESSAGE_CHARS}.`);
    }

    let conversationId = input.conversationId;
    let deviceId: string;
    let history: ChatMessage[] = [];
    if (conversationId) {
      if (this.answering.has(conversationId)) {
        throw new AppError("conflict", "This conversation is still answering; stop it or wait for the answer.");
      }
      const c = await this.prisma.conversation.findUnique({
        where: { id: conversationId },
        include: { messages: { orderBy: { createdAt: "asc" } } },
      });
      if (!c) throw new AppError("not_found", "This conversation does not exist (it may have been deleted).");
      if (!c.deviceId)
        throw new AppError("gone", "The device of this conversation was deleted; start a new conversation on another device.");
      deviceId = c.deviceId;
      history = historyForModel(c.messages);
    } else {
      if (!input.deviceId) throw new AppError("bad_request", "Choose a device for a new conversation.");
      deviceId = input.deviceId;
    }
    const reason = this.relay.unavailableReason(this.fleet.get(deviceId));
    if (reason) throw new AppError("unavailable", reason);

    const created = await this.prisma.$transaction(async (tx) => {
      const conversation = conversationId
        ? await tx.conversation.update({ where: { id: conversationId }, data: { updatedAt: new Date() } })
        : await tx.conversation.create({ data: { deviceId, title: titleFrom(content) } });
      const user = await tx.conversationMessage.create({
        data: { conversationId: conversation.id, role: "user", content, status: "complete" },
      });
      // The answer row exists from the start so a reload shows it as in progress.
      const assistant = await tx.conversationMessage.create({
        data: {
          conversationId: conversation.id,
          role: "assistant",
          content: "",
          status: "streaming",
          createdAt: new Date(user.createdAt.getTime() + 1),
        },
      });
      return { conversation, user, assistant };
    });
    conversationId = created.conversation.id;
    const userMessage = toMessageDto(created.user);
    this.emit("message", { conversationId, message: userMessage });
    this.emit("message", { conversationId, message: toMessageDto(created.assistant) });

    let generation: Generation;
    try {
      generation = await this.relay.start({
        deviceId,
        session: conversationId,
        messages: [...history, { role: "user", content }],
        ...input.options,
      });
    } catch (err) {
      const message = err instanceof AppError ? err.message : "The request could not be sent to the device.";
      await this.finishWithError(conversationId, created.assistant.id, "device_offline", message, "");
      return { conversationId, userMessage, assistantMessageId: created.assistant.id };
    }
    this.answering.set(conversationId, generation);
    await this.prisma.conversationMessage.update({ where: { id: created.assistant.id }, data: { requestId: generation.requestId } });
    this.follow(conversationId, created.assistant.id, generation);
    return { conversationId, userMessage, assistantMessageId: created.assistant.id };
  }

  /** Stops the answer being generated in this conversation, keeping what was generated so far. */
  async stop(conversationId: string): Promise<void> {
    const generation = this.answering.get(conversationId);
    if (!generation) throw new AppError("not_found", "Nothing is being answered in this conversation.");
    await generation.cancel();
  }

  async rename(id: string, title: string): Promise<void> {
    const { count } = await this.prisma.conversation.updateMany({ where: { id }, data: { title } });
    if (count === 0) throw new AppError("not_found", "This conversation does not exist.");
  }

  async remove(id: string): Promise<void> {
    const generation = this.answering.get(id);
    if (generation) await generation.cancel();
    const { count } = await this.prisma.conversation.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", "This conversation does not exist.");
  }

  private follow(conversationId: string, messageId: string, generation: Generation): void {
    generation.onEvent((event) => {
      if (event.type === "status")
        this.emit("status", { conversationId, messageId, phase: event.phase, queuePosition: event.queuePosition });
      else this.emit("tokens", { conversationId, messageId, seq: event.seq, text: event.text, tokens: event.tokens, ts: event.ts });
    });
    void generation.outcome
      .then((outcome) => this.store(conversationId, messageId, outcome))
      .finally(() => {
        if (this.answering.get(conversationId) === generation) this.answering.delete(conversationId);
      });
  }

  /**
   * Stores how an answer ended, retrying while the database fails (a restart of PostgreSQL,
   * a full disk being cleared). If it still fails the browser is told the answer was not
   * saved, so it does not wait forever; the row stays `streaming` until the next start
   * marks it interrupted.
   */
  private async store(conversationId: string, messageId: string, outcome: GenerationOutcome): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (!outcome.ok) {
          await this.finishWithError(conversationId, messageId, outcome.code, outcome.message, outcome.partialText);
          return;
        }
        // The conversation may have been deleted meanwhile: updateMany does not throw for that.
        const { count } = await this.prisma.conversationMessage.updateMany({
          where: { id: messageId },
          data: {
            content: storableText(outcome.text),
            status: outcome.stats.finishReason === "cancelled" ? "cancelled" : "complete",
            stats: outcome.stats,
          },
        });
        if (count === 0) return;
        const row = await this.prisma.conversationMessage.findUniqueOrThrow({ where: { id: messageId } });
        await this.touch(conversationId);
        this.emit("done", { conversationId, message: toMessageDto(row) });
        return;
      } catch (err) {
        const error = (err as Error).message;
        if (attempt >= this.storeRetry.attempts) {
          this.log.error("storing an answer failed; giving up", { conversationId, attempts: attempt, error });
          this.emit("error", {
            conversationId,
            messageId,
            code: "not_saved",
            message: `The answer arrived but could not be saved (the database failed ${attempt} times: ${error.slice(0, 200)}).`,
          });
          return;
        }
        this.log.warn("storing an answer failed; retrying", { conversationId, attempt, error });
        await sleep(this.storeRetry.delayMs * attempt);
      }
    }
  }

  private async finishWithError(
    conversationId: string,
    messageId: string,
    code: ChatErrorEvent["code"],
    message: string,
    partialText: string,
  ) {
    // The conversation may have been deleted meanwhile: updateMany does not throw for that.
    await this.prisma.conversationMessage.updateMany({
      where: { id: messageId },
      data: { status: "error", errorCode: code, error: message, content: storableText(partialText) },
    });
    await this.touch(conversationId);
    this.emit("error", { conversationId, messageId, code, message });
  }

  private async touch(conversationId: string): Promise<void> {
    await this.prisma.conversation.updateMany({ where: { id: conversationId }, data: { updatedAt: new Date() } });
  }
}

/**
 * Text as the database can store it: PostgreSQL text cannot hold NUL, and a real model
 * can emit the byte 0 (a byte-level vocabulary has it), so it becomes U+FFFD.
 */
export function storableText(text: string): string {
  return text.includes("\u0000") ? text.replaceAll("\u0000", "\uFFFD") : text;
}

/**
 * The turns the model sees: each earlier question with the answer that produced text
 * (a stopped answer counts with what it said). A question whose answer failed is left
 * out with it, so roles keep alternating (the chat template requires it) and a retry
 * is not asked twice.
 */
export function historyForModel(rows: { role: string; content: string; status: string }[]): ChatMessage[] {
  const turns: ChatMessage[] = [];
  for (let i = 0; i < rows.length; i++) {
    const question = rows[i]!;
    const answer = rows[i + 1];
    if (question.role !== "user" || !answer || answer.role !== "assistant") continue;
    if ((answer.status === "complete" || answer.status === "cancelled") && answer.content.length > 0) {
      turns.push({ role: "user", content: question.content }, { role: "assistant", content: answer.content });
    }
    i++;
  }
  return turns;
}

function titleFrom(content: string): string {
  const line =
    content
      .split("\n")
      .find((l) => l.trim().length > 0)
      ?.trim() ?? content;
  return line.length > TITLE_CHARS ? `${line.slice(0, TITLE_CHARS - 1)}…` : line;
}
