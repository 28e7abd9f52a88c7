"use client";
/**
 * One message as a bubble: the user's on the right (plain text, as typed), the
 * model's on the left (Markdown). An answer in progress shows what has streamed
 * and its live line; a finished one its stats; a failed one what went wrong,
 * with Retry (and, when the conversation no longer fits, a way to start over).
 */
import { CircleStop, MessageSquarePlus, RotateCw, Sprout, TriangleAlert } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import type { ConversationMessageDto } from "@orchard/contracts";
import { Badge } from "@/components/ui/badge";
import { Button, buttonClass } from "@/components/ui/button";
import { useLiveAnswer } from "@/lib/chat-live";
import { cn } from "@/lib/cn";
import { formatDateTime } from "@/lib/format";
import { AnswerStats } from "./answer-stats";
import { LiveStatus } from "./live-status";
import { Markdown } from "./markdown";

/** A heading for each way an answer can fail; the server's own sentence follows it. */
const ERROR_TITLES: Record<string, string> = {
  device_offline: "The device is offline",
  device_silent: "The device stopped responding",
  not_acknowledged: "The device did not pick up the request",
  queue_full: "The device is busy",
  not_ready: "The model is not ready",
  context_full: "This conversation no longer fits in the model's context",
  runner_exited: "The runner stopped during the answer",
  bad_request: "The device refused the request",
  model_error: "The model failed",
  duplicate: "The device already had this request",
};

const ERROR_HINTS: Record<string, string> = {
  device_offline: "Retry once it is back online.",
  device_silent: "It may be overloaded or have lost its connection; retry in a moment.",
  not_acknowledged: "It may be overloaded, or its agent may be too old to chat.",
  queue_full: "It is answering other chats right now; retry in a moment.",
  not_ready: "It is loading or switching models; retry when its runner is ready.",
  context_full: "Start a new conversation on the same device to go on.",
  runner_exited: "The agent restarts the runner; retry in a moment.",
};

export function ChatMessage({
  message,
  deviceName,
  onRetry,
  retryDisabled,
  newConversationHref,
  onStartOver,
}: {
  message: ConversationMessageDto;
  deviceName: string | null;
  /** Resends the question this answer belongs to (absent for user messages). */
  onRetry?: () => void;
  retryDisabled?: boolean;
  /** Where "Start a new conversation" goes (null when the device is gone). */
  newConversationHref: string | null;
  onStartOver?: () => void;
}) {
  if (message.role === "user") return <UserMessage message={message} />;
  return (
    <AssistantMessage
      message={message}
      deviceName={deviceName}
      onRetry={onRetry}
      retryDisabled={retryDisabled}
      newConversationHref={newConversationHref}
      onStartOver={onStartOver}
    />
  );
}

/** A pasted wall of text is folded after this many characters or lines. */
const FOLD_CHARS = 1200;
const FOLD_LINES = 14;

function UserMessage({ message }: { message: ConversationMessageDto }) {
  const long = message.content.length > FOLD_CHARS || message.content.split("\n").length > FOLD_LINES;
  const [open, setOpen] = useState(false);
  return (
    <div className="flex justify-end" data-testid="chat-message" data-role="user" data-status={message.status} data-message-id={message.id}>
      <div
        className="flex max-w-[85%] flex-col items-start gap-1 rounded-2xl rounded-br-md bg-primary px-3.5 py-2 text-sm text-primary-foreground shadow-xs sm:max-w-[75%]"
        title={formatDateTime(message.createdAt)}
      >
        <div className={cn("whitespace-pre-wrap [overflow-wrap:anywhere]", long && !open && "line-clamp-[10]")}>{message.content}</div>
        {long ? (
          <button
            type="button"
            className="cursor-pointer text-xs font-medium underline underline-offset-2 opacity-90 hover:opacity-100"
            onClick={() => setOpen((o) => !o)}
          >
            {open ? "Show less" : `Show all (${message.content.length.toLocaleString("en-US")} characters)`}
          </button>
        ) : null}
      </div>
    </div>
  );
}

function AssistantMessage({
  message,
  deviceName,
  onRetry,
  retryDisabled,
  newConversationHref,
  onStartOver,
}: {
  message: ConversationMessageDto;
  deviceName: string | null;
  onRetry?: () => void;
  retryDisabled?: boolean;
  newConversationHref: string | null;
  onStartOver?: () => void;
}) {
  const streaming = message.status === "streaming";
  const live = useLiveAnswer(streaming ? message.id : null);
  // While streaming, the text is what reached this page; "…" stands for what was streamed before it loaded.
  const text = streaming ? (live ? (live.gap ? `…${live.text}` : live.text) : message.content || "…") : message.content;
  const failed = message.status === "error";
  const stopped = message.status === "cancelled";

  return (
    <div
      className="flex gap-2.5"
      data-testid="chat-message"
      data-role="assistant"
      data-status={message.status}
      data-message-id={message.id}
    >
      <span className="mt-0.5 flex size-7 shrink-0 items-center justify-center rounded-full bg-muted text-primary" aria-hidden>
        <Sprout className="size-4" />
      </span>
      <div className="flex max-w-[calc(100%-2.25rem)] min-w-0 flex-col gap-1.5 sm:max-w-[85%]">
        <div
          className={cn(
            "rounded-2xl rounded-tl-md border bg-card px-3.5 py-2.5 shadow-xs",
            failed && "border-danger/40",
            !text && !streaming && !failed && "text-muted-foreground",
          )}
          title={formatDateTime(message.createdAt)}
        >
          <div data-testid="chat-message-text">
            {text ? (
              <Markdown text={text} />
            ) : streaming ? (
              <TypingDots />
            ) : failed ? null : (
              <span className="text-sm italic">(no text)</span>
            )}
          </div>
          {failed ? (
            <AnswerError
              message={message}
              onRetry={onRetry}
              retryDisabled={retryDisabled}
              newConversationHref={newConversationHref}
              onStartOver={onStartOver}
            />
          ) : null}
        </div>
        {streaming ? <LiveStatus live={live} /> : null}
        {stopped || message.stats?.finishReason === "length" ? (
          <div className="flex flex-wrap items-center gap-1.5">
            {stopped ? (
              <Badge tone="outline" data-testid="chat-stopped">
                <CircleStop aria-hidden />
                stopped
              </Badge>
            ) : (
              <Badge tone="warning" title="Raise “max new tokens” in the settings next to Send for longer answers">
                cut off at the max new tokens limit
              </Badge>
            )}
          </div>
        ) : null}
        {message.stats ? <AnswerStats stats={message.stats} deviceName={deviceName} /> : null}
      </div>
    </div>
  );
}

function TypingDots() {
  return (
    <span className="inline-flex h-5 items-center gap-1" aria-label="Waiting for the first token">
      {[0, 1, 2].map((i) => (
        <span
          key={i}
          className="size-1.5 animate-bounce rounded-full bg-muted-foreground/60"
          style={{ animationDelay: `${i * 150}ms`, animationDuration: "1.2s" }}
        />
      ))}
    </span>
  );
}

function AnswerError({
  message,
  onRetry,
  retryDisabled,
  newConversationHref,
  onStartOver,
}: {
  message: ConversationMessageDto;
  onRetry?: () => void;
  retryDisabled?: boolean;
  newConversationHref: string | null;
  onStartOver?: () => void;
}) {
  const code = message.errorCode ?? "";
  const title = ERROR_TITLES[code] ?? "The answer failed";
  const hint = ERROR_HINTS[code];
  const contextFull = code === "context_full";
  return (
    <div
      className={cn("flex flex-col gap-2 text-sm", message.content ? "mt-2 border-t border-danger/20 pt-2" : undefined)}
      role="alert"
      data-error-code={code || undefined}
    >
      <div className="flex items-start gap-2 text-danger">
        <TriangleAlert className="mt-0.5 size-4 shrink-0" aria-hidden />
        <div className="flex min-w-0 flex-col gap-0.5" data-testid="chat-error">
          <span className="font-medium">{title}</span>
          {message.error ? <span className="break-words text-danger/90">{message.error}</span> : null}
          {hint ? <span className="text-xs text-muted-foreground">{hint}</span> : null}
        </div>
      </div>
      <div className="flex flex-wrap gap-2">
        {contextFull && newConversationHref ? (
          <Link
            href={newConversationHref}
            onClick={onStartOver}
            className={buttonClass("primary", "sm")}
            data-testid="chat-new-conversation"
          >
            <MessageSquarePlus aria-hidden />
            Start a new conversation
          </Link>
        ) : null}
        {onRetry ? (
          <Button variant="outline" size="sm" onClick={onRetry} disabled={retryDisabled} data-testid="chat-retry">
            <RotateCw aria-hidden />
            Retry
          </Button>
        ) : null}
      </div>
    </div>
  );
}
