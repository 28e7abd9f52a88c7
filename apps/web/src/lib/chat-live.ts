"use client";
/**
 * Answers being streamed right now. The stored conversation (chat.get, in the
 * react-query cache) holds finished messages; this store holds, per answer in
 * progress, its phase, the text streamed so far and the token counter. It lives
 * outside React so an answer keeps streaming while the page changes under it
 * (the first send of a new chat moves from /chat/new to /chat/[id]).
 *
 * useChatSync (mounted once, in the shell) feeds both from the socket.io events
 * of every watched conversation.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useSyncExternalStore } from "react";
import type { ChatErrorEvent, ChatPhase, ChatStatusEvent, ChatTokensEvent, ConversationMessageDto } from "@orchard/contracts";
import { useOnReconnect, useSocketEvent } from "./realtime";
import { useTRPC, type RouterOutputs } from "./trpc";

export interface LiveAnswer {
  conversationId: string;
  messageId: string;
  /** null: not known yet (the page was loaded during the answer and nothing arrived since). */
  phase: ChatPhase | null;
  queuePosition: number;
  /** Browser time the current phase began. */
  phaseSince: number;
  /** The text streamed to this page. */
  text: string;
  /** Chunks were missed (streamed before this page loaded, or lost): `text` is only the end of the answer. */
  gap: boolean;
  nextSeq: number;
  /** Tokens generated so far (the server's count, right even when chunks were missed). */
  tokens: number;
  /** Browser time the first chunk seen here arrived, and the token count it brought the total to. */
  firstAt: number | null;
  firstTokens: number;
  /** Browser time the latest chunk arrived. */
  lastAt: number | null;
  /** Browser time of the latest event of any kind (heartbeats included): silence means an event was missed. */
  lastEventAt: number;
  /** Stop was pressed; the device answers with what it has. */
  stopping: boolean;
}

const answers = new Map<string, LiveAnswer>();
const listeners = new Set<() => void>();

function notify(): void {
  for (const l of listeners) l();
}

function put(answer: LiveAnswer): void {
  answers.set(answer.messageId, answer);
  notify();
}

function fresh(conversationId: string, messageId: string, phase: ChatPhase | null): LiveAnswer {
  const now = Date.now();
  return {
    conversationId,
    messageId,
    phase,
    queuePosition: 0,
    phaseSince: now,
    text: "",
    gap: false,
    nextSeq: 0,
    tokens: 0,
    firstAt: null,
    firstTokens: 0,
    lastAt: null,
    lastEventAt: now,
    stopping: false,
  };
}

/** Starts following an answer (no-op when it is already followed): "sent" after our own send, null after a reload. */
export function beginAnswer(conversationId: string, messageId: string, phase: ChatPhase | null): void {
  if (answers.has(messageId)) return;
  put(fresh(conversationId, messageId, phase));
}

export function applyStatus(e: ChatStatusEvent): void {
  const a = answers.get(e.messageId) ?? fresh(e.conversationId, e.messageId, null);
  const now = Date.now();
  // A heartbeat during decoding says "decoding" again: the phase began earlier.
  const same = a.phase === e.phase;
  put({ ...a, phase: e.phase, queuePosition: e.queuePosition, phaseSince: same ? a.phaseSince : now, lastEventAt: now });
}

export function applyTokens(e: ChatTokensEvent): void {
  const a = answers.get(e.messageId) ?? fresh(e.conversationId, e.messageId, null);
  if (e.seq < a.nextSeq) return; // a repeat
  const now = Date.now();
  const first = a.firstAt === null;
  put({
    ...a,
    phase: "decoding",
    phaseSince: a.phase === "decoding" ? a.phaseSince : now,
    text: a.text + e.text,
    gap: a.gap || e.seq > a.nextSeq,
    nextSeq: e.seq + 1,
    tokens: e.tokens,
    firstAt: first ? now : a.firstAt,
    firstTokens: first ? e.tokens : a.firstTokens,
    lastAt: now,
    lastEventAt: now,
  });
}

export function markStopping(messageId: string, stopping: boolean): void {
  const a = answers.get(messageId);
  if (a && a.stopping !== stopping) put({ ...a, stopping });
}

/** Resets the silence timer (after re-reading the conversation because of it). */
export function touchAnswer(messageId: string): void {
  const a = answers.get(messageId);
  if (a) answers.set(messageId, { ...a, lastEventAt: Date.now() });
}

/** Stops following an answer (it ended); returns what was streamed. */
export function endAnswer(messageId: string): LiveAnswer | undefined {
  const a = answers.get(messageId);
  if (a) {
    answers.delete(messageId);
    notify();
  }
  return a;
}

/** The answer's current state, for code outside rendering (timers). */
export function getLiveAnswer(messageId: string): LiveAnswer | undefined {
  return answers.get(messageId);
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useLiveAnswer(messageId: string | null): LiveAnswer | undefined {
  return useSyncExternalStore(
    subscribe,
    () => (messageId ? answers.get(messageId) : undefined),
    () => undefined,
  );
}

/**
 * Decode speed measured in the browser: tokens since the first chunk seen, over the
 * time since it. Between two tokens of a slow device it holds still, and once the
 * wait is longer than a usual gap it starts to drop, so a stall shows. Null until
 * two chunks have arrived.
 */
export function liveTokensPerSecond(a: LiveAnswer, now: number): number | null {
  if (a.firstAt === null || a.lastAt === null) return null;
  const n = a.tokens - a.firstTokens;
  const span = a.lastAt - a.firstAt;
  if (n <= 0 || span <= 0) return null;
  const usualGap = span / n;
  return (n * 1000) / Math.max(span, now - a.firstAt - usualGap);
}

// ------------------------------------------------------------ the react-query side

type Conversation = RouterOutputs["chat"]["get"];

/** The conversation's messages with `message` added or replaced, in order. */
export function upsertMessage(messages: ConversationMessageDto[], message: ConversationMessageDto): ConversationMessageDto[] {
  const i = messages.findIndex((m) => m.id === message.id);
  const next = i < 0 ? [...messages, message] : messages.map((m) => (m.id === message.id ? message : m));
  // The answer row is created 1 ms after its question, so time order is conversation order.
  return i < 0 ? next.sort((a, b) => a.createdAt - b.createdAt) : next;
}

export function withMessage(conversation: Conversation, message: ConversationMessageDto): Conversation {
  const messages = upsertMessage(conversation.messages, message);
  return {
    ...conversation,
    messages,
    messageCount: messages.length,
    answering: messages.some((m) => m.status === "streaming"),
  };
}

/**
 * Merges the chat events of every watched conversation into the cache (chat.get)
 * and the live store. Mounted once, in the shell, so nothing is dropped while a
 * page changes.
 */
export function useChatSync(): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();

  const update = (conversationId: string, fn: (c: Conversation) => Conversation) =>
    queryClient.setQueryData(trpc.chat.get.queryKey({ id: conversationId }), (c) => (c ? fn(c) : c));
  const refresh = (conversationId: string) => {
    void queryClient.invalidateQueries({ queryKey: trpc.chat.get.queryKey({ id: conversationId }) });
    void queryClient.invalidateQueries({ queryKey: trpc.chat.list.queryKey() });
  };

  useSocketEvent("chat:message", ({ conversationId, message }) => {
    if (message.role === "assistant" && message.status === "streaming") beginAnswer(conversationId, message.id, "sent");
    update(conversationId, (c) => withMessage(c, message));
    void queryClient.invalidateQueries({ queryKey: trpc.chat.list.queryKey() });
  });
  useSocketEvent("chat:status", applyStatus);
  useSocketEvent("chat:tokens", applyTokens);
  useSocketEvent("chat:done", ({ conversationId, message }) => {
    update(conversationId, (c) => withMessage(c, message));
    endAnswer(message.id);
    refresh(conversationId);
  });
  useSocketEvent("chat:error", (e: ChatErrorEvent) => {
    const live = endAnswer(e.messageId);
    update(e.conversationId, (c) => {
      const m = c.messages.find((x) => x.id === e.messageId);
      if (!m) return c;
      // What was streamed stays on the answer; the stored copy (refetched below) has all of it.
      return withMessage(c, {
        ...m,
        status: "error",
        errorCode: e.code,
        error: e.message,
        content: live && !live.gap ? live.text : m.content,
      });
    });
    refresh(e.conversationId);
  });

  useOnReconnect(() => void queryClient.invalidateQueries({ queryKey: trpc.chat.pathKey() }));
}
