"use client";
/**
 * The message input: Enter sends, Shift+Enter starts a new line. While an answer
 * is being generated it is disabled and Stop replaces Send. The text is the
 * caller's (a draft that survives navigation), so a refused send loses nothing.
 * Generation settings sit in a small popover next to Send.
 */
import { ArrowUp, Square, SlidersHorizontal } from "lucide-react";
import { useEffect, useId, useRef, useState, type KeyboardEvent } from "react";
import { CHAT_MAX_MESSAGE_CHARS } from "@orchard/contracts";
import { Button } from "@/components/ui/button";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { DEFAULT_CHAT_OPTIONS, MAX_NEW_TOKENS_LIMIT, TEMPERATURE_LIMIT, type ChatOptions } from "@/lib/chat-storage";
import { cn } from "@/lib/cn";

const MAX_HEIGHT_PX = 200;

export function Composer({
  value,
  onChange,
  onSend,
  onStop,
  answering,
  sending,
  stopping,
  disabledReason,
  options,
  onOptionsChange,
  placeholder,
}: {
  value: string;
  onChange: (text: string) => void;
  onSend: () => void;
  onStop: () => void;
  /** An answer is being generated: the input is disabled and Stop is offered. */
  answering: boolean;
  /** The send request is on its way. */
  sending: boolean;
  stopping: boolean;
  /** Why nothing can be sent (or stopped) in this conversation at all: its device was deleted, or the role may only read. */
  disabledReason?: string;
  options: ChatOptions;
  onOptionsChange: (next: ChatOptions) => void;
  placeholder: string;
}) {
  const ref = useRef<HTMLTextAreaElement>(null);
  const tooLong = value.length > CHAT_MAX_MESSAGE_CHARS;
  const canSend = value.trim().length > 0 && !tooLong && !answering && !sending && !disabledReason;
  const wasAnswering = useRef(answering);

  // Grows with its text up to a few lines, then scrolls.
  useEffect(() => {
    const area = ref.current;
    if (!area) return;
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight, MAX_HEIGHT_PX)}px`;
  }, [value]);

  // Ready to type on arrival, where that does not pop up an on-screen keyboard.
  useEffect(() => {
    if (window.matchMedia("(pointer: fine)").matches) ref.current?.focus({ preventScroll: true });
  }, []);

  // Back to the input when an answer ends, ready for the next message.
  useEffect(() => {
    if (wasAnswering.current && !answering) ref.current?.focus({ preventScroll: true });
    wasAnswering.current = answering;
  }, [answering]);

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key !== "Enter" || e.shiftKey || e.nativeEvent.isComposing) return;
    e.preventDefault();
    if (canSend) onSend();
  };

  return (
    <div
      className={cn(
        "flex flex-col gap-1 rounded-xl border border-input bg-card p-2 shadow-xs transition-colors focus-within:border-ring focus-within:ring-2 focus-within:ring-ring/30",
        (answering || disabledReason) && "bg-muted/40",
      )}
    >
      <textarea
        ref={ref}
        rows={1}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        onKeyDown={onKeyDown}
        readOnly={sending}
        disabled={answering || !!disabledReason}
        placeholder={disabledReason ?? (answering ? "Wait for the answer, or stop it…" : placeholder)}
        aria-label="Message"
        aria-invalid={tooLong || undefined}
        data-testid="chat-input"
        className="max-h-[200px] w-full min-w-0 resize-none bg-transparent px-2 py-1.5 text-sm placeholder:text-muted-foreground/70 focus:outline-none disabled:cursor-not-allowed"
      />
      <div className="flex items-center justify-between gap-2">
        <div className="flex min-w-0 items-center gap-1">
          <SettingsPopover options={options} onChange={onOptionsChange} />
          <span className="truncate text-xs text-muted-foreground">
            {tooLong ? (
              <span className="text-danger">
                {value.length.toLocaleString("en-US")} / {CHAT_MAX_MESSAGE_CHARS.toLocaleString("en-US")} characters: too long
              </span>
            ) : (
              <span className="max-sm:hidden">Enter to send · Shift+Enter for a new line</span>
            )}
          </span>
        </div>
        {answering ? (
          <Button
            variant="outline"
            size="sm"
            onClick={onStop}
            disabled={stopping || !!disabledReason}
            data-testid="chat-stop"
            title="Stop the answer (keeps what was written)"
          >
            {stopping ? <Spinner label="Stopping" /> : <Square className="fill-current" aria-hidden />}
            Stop
          </Button>
        ) : (
          <Button size="sm" onClick={onSend} disabled={!canSend} data-testid="chat-send" title="Send (Enter)">
            {sending ? <Spinner className="text-primary-foreground" label="Sending" /> : <ArrowUp aria-hidden />}
            Send
          </Button>
        )}
      </div>
    </div>
  );
}

function SettingsPopover({ options, onChange }: { options: ChatOptions; onChange: (next: ChatOptions) => void }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  const id = useId();
  const [maxText, setMaxText] = useState(String(options.maxNewTokens));
  const [tempText, setTempText] = useState(String(options.temperature));

  useEffect(() => {
    if (!open) return;
    setMaxText(String(options.maxNewTokens));
    setTempText(String(options.temperature));
    const onDown = (e: PointerEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: globalThis.KeyboardEvent) => {
      if (e.key === "Escape") setOpen(false);
    };
    document.addEventListener("pointerdown", onDown);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("pointerdown", onDown);
      document.removeEventListener("keydown", onKey);
    };
    // Reload the fields only when the popover opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);

  const max = Number(maxText);
  const maxValid = Number.isInteger(max) && max >= 1 && max <= MAX_NEW_TOKENS_LIMIT;
  const temp = Number(tempText);
  const tempValid = tempText.trim() !== "" && Number.isFinite(temp) && temp >= 0 && temp <= TEMPERATURE_LIMIT;
  const changed = options.maxNewTokens !== DEFAULT_CHAT_OPTIONS.maxNewTokens || options.temperature !== DEFAULT_CHAT_OPTIONS.temperature;

  return (
    <div ref={box} className="relative">
      <Button
        variant="ghost"
        size="icon"
        className={cn("size-7", changed && "text-primary")}
        aria-label="Generation settings"
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        title={`Max new tokens ${options.maxNewTokens} · temperature ${options.temperature}${options.temperature === 0 ? " (greedy)" : ""}`}
        onClick={() => setOpen((o) => !o)}
        data-testid="chat-settings"
      >
        <SlidersHorizontal />
      </Button>
      {open ? (
        <div
          id={id}
          role="dialog"
          aria-label="Generation settings"
          className="absolute bottom-full left-0 z-30 mb-2 flex w-72 flex-col gap-3 rounded-xl border bg-card p-4 text-card-foreground shadow-lg"
        >
          <p className="text-sm font-semibold">Generation settings</p>
          <Field
            label="Max new tokens"
            htmlFor={`${id}-max`}
            hint={maxValid ? "The longest answer, in tokens." : `1 to ${MAX_NEW_TOKENS_LIMIT}.`}
          >
            <Input
              id={`${id}-max`}
              type="number"
              inputMode="numeric"
              min={1}
              max={MAX_NEW_TOKENS_LIMIT}
              step={1}
              value={maxText}
              aria-invalid={!maxValid || undefined}
              onChange={(e) => {
                setMaxText(e.target.value);
                const v = Number(e.target.value);
                if (Number.isInteger(v) && v >= 1 && v <= MAX_NEW_TOKENS_LIMIT) onChange({ ...options, maxNewTokens: v });
              }}
              data-testid="chat-max-tokens"
            />
          </Field>
          <Field
            label="Temperature"
            htmlFor={`${id}-temp`}
            hint={tempValid ? "0 is greedy: the same question gets the same answer." : `0 to ${TEMPERATURE_LIMIT}.`}
          >
            <Input
              id={`${id}-temp`}
              type="number"
              inputMode="decimal"
              min={0}
              max={TEMPERATURE_LIMIT}
              step={0.1}
              value={tempText}
              aria-invalid={!tempValid || undefined}
              onChange={(e) => {
                setTempText(e.target.value);
                const v = Number(e.target.value);
                if (e.target.value.trim() !== "" && Number.isFinite(v) && v >= 0 && v <= TEMPERATURE_LIMIT)
                  onChange({ ...options, temperature: v });
              }}
              data-testid="chat-temperature"
            />
          </Field>
          <div className="flex justify-between gap-2">
            <Button
              variant="ghost"
              size="sm"
              disabled={!changed}
              onClick={() => {
                onChange(DEFAULT_CHAT_OPTIONS);
                setMaxText(String(DEFAULT_CHAT_OPTIONS.maxNewTokens));
                setTempText(String(DEFAULT_CHAT_OPTIONS.temperature));
              }}
            >
              Reset
            </Button>
            <Button variant="outline" size="sm" onClick={() => setOpen(false)}>
              Done
            </Button>
          </div>
        </div>
      ) : null}
    </div>
  );
}
