"use client";
/**
 * What the chat remembers in the browser: the unsent draft of each conversation
 * (sessionStorage, so it survives navigation and reloads in this tab) and the
 * generation settings (localStorage, the same for every conversation).
 */
import { useCallback, useEffect, useState } from "react";

const DRAFT_PREFIX = "orchard.chat.draft:";
const OPTIONS_KEY = "orchard.chat.options";

/** The draft key of a conversation, or of the one about to be started on a device. */
export function draftKey(target: { conversationId: string } | { deviceId: string }): string {
  return "conversationId" in target ? `c:${target.conversationId}` : `new:${target.deviceId}`;
}

function readStorage(storage: () => Storage, key: string): string | null {
  try {
    return storage().getItem(key);
  } catch {
    return null; // storage disabled (private mode, policy): the draft simply lives in memory
  }
}

function writeStorage(storage: () => Storage, key: string, value: string | null): void {
  try {
    if (value === null) storage().removeItem(key);
    else storage().setItem(key, value);
  } catch {
    // full or disabled: nothing to do
  }
}

const session = () => window.sessionStorage;
const local = () => window.localStorage;

export function saveDraft(key: string, text: string): void {
  writeStorage(session, DRAFT_PREFIX + key, text.length > 0 ? text : null);
}

/** The draft of `key`, loaded after mount (storage does not exist during the server render) and saved on every change. */
export function useDraft(key: string): [string, (text: string) => void] {
  const [state, setState] = useState<{ key: string; text: string }>({ key, text: "" });
  useEffect(() => {
    setState({ key, text: readStorage(session, DRAFT_PREFIX + key) ?? "" });
  }, [key]);
  const setText = useCallback(
    (text: string) => {
      setState({ key, text });
      saveDraft(key, text);
    },
    [key],
  );
  return [state.key === key ? state.text : "", setText];
}

export interface ChatOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
}

export const DEFAULT_CHAT_OPTIONS: ChatOptions = { maxNewTokens: 256, temperature: 0 };
export const MAX_NEW_TOKENS_LIMIT = 4096;
export const TEMPERATURE_LIMIT = 2;

function validOptions(value: unknown): ChatOptions {
  const v = (value ?? {}) as Partial<ChatOptions>;
  const max = Number(v.maxNewTokens);
  const temp = Number(v.temperature);
  return {
    maxNewTokens: Number.isInteger(max) && max >= 1 && max <= MAX_NEW_TOKENS_LIMIT ? max : DEFAULT_CHAT_OPTIONS.maxNewTokens,
    temperature: Number.isFinite(temp) && temp >= 0 && temp <= TEMPERATURE_LIMIT ? temp : DEFAULT_CHAT_OPTIONS.temperature,
  };
}

export function useChatOptions(): [ChatOptions, (next: ChatOptions) => void] {
  const [options, setOptions] = useState<ChatOptions>(DEFAULT_CHAT_OPTIONS);
  useEffect(() => {
    const raw = readStorage(local, OPTIONS_KEY);
    if (!raw) return;
    try {
      setOptions(validOptions(JSON.parse(raw)));
    } catch {
      // a corrupt entry: keep the defaults
    }
  }, []);
  const update = useCallback((next: ChatOptions) => {
    const valid = validOptions(next);
    setOptions(valid);
    writeStorage(local, OPTIONS_KEY, JSON.stringify(valid));
  }, []);
  return [options, update];
}
