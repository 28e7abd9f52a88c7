"use client";
/**
 * A conversation: its messages, the answer streaming into it, and the input.
 * `/chat/[id]` shows a stored one; `/chat/new?device=ID` an empty one on a device,
 * which the first send creates (the page then moves to /chat/[id]; the answer
 * keeps streaming, since the live store and the room watch outlive the page).
 *
 * Nothing typed is lost: the input is a per-conversation draft in sessionStorage,
 * cleared only once the server has stored the message; a refused send keeps it
 * and shows the server's reason.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ArrowDown, ArrowLeft, MessageSquarePlus, MessagesSquare, Pencil, Sprout, Trash2 } from "lucide-react";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useRef, useState, type ReactNode } from "react";
import type { ConversationMessageDto, DeviceSummary } from "@orchard/contracts";
import { SIM_HELP } from "@/components/fleet/runner-status";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button, buttonClass } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { chatAvailability, newChatHref, type ChatAvailability } from "@/lib/chat-device";
import { beginAnswer, endAnswer, getLiveAnswer, markStopping, touchAnswer, useLiveAnswer, withMessage } from "@/lib/chat-live";
import { draftKey, saveDraft, useChatOptions, useDraft } from "@/lib/chat-storage";
import { cn } from "@/lib/cn";
import { useConversationWatch, useLinkState, watchConversation } from "@/lib/realtime";
import { errorCode, errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useCan, useMe } from "@/lib/use-role";
import { ChatMessage } from "./chat-message";
import { Composer } from "./composer";
import { DeleteConversationDialog, RenameConversationDialog, type ConversationRef } from "./conversation-dialogs";
import { DevicePicker } from "./device-picker";

type Conversation = RouterOutputs["chat"]["get"];
const NO_MESSAGES: ConversationMessageDto[] = [];

/** No event about an answer for this long (the device heartbeats every 5 s): read the conversation again. */
const SILENCE_REFETCH_MS = 15_000;
/** How long the watch taken at the first send is held while the page moves to the new conversation. */
const HANDOVER_WATCH_MS = 15_000;

export function ConversationView({ id }: { id: string }) {
  const trpc = useTRPC();
  // Read afresh on every visit: what happened while this page was away was not pushed to it.
  const conversation = useQuery(trpc.chat.get.queryOptions({ id }, { refetchOnMount: "always" }));
  useConversationWatch(id);

  const title = conversation.data?.title;
  useEffect(() => {
    if (title) document.title = `${title} · Orchard`;
  }, [title]);

  if (conversation.isError && errorCode(conversation.error) === "NOT_FOUND") {
    return (
      <Card className="flex-1" data-testid="conversation-missing">
        <EmptyState
          icon={MessagesSquare}
          title="This conversation does not exist"
          action={
            <Link href="/chat" className={buttonClass("outline")}>
              Back to the conversations
            </Link>
          }
        >
          It may have been deleted, possibly from another browser.
        </EmptyState>
      </Card>
    );
  }
  if (conversation.isPending) return <LoadingBlock label="Loading conversation…" />;
  if (conversation.isError && !conversation.data) {
    return (
      <div className="flex flex-col gap-3">
        <BackToList />
        <Alert>{errorMessage(conversation.error)}</Alert>
      </div>
    );
  }
  return <ChatPane conversation={conversation.data} deviceId={conversation.data.deviceId} />;
}

export function NewConversationView({ deviceId }: { deviceId: string | null }) {
  const router = useRouter();
  const trpc = useTRPC();
  const devices = useQuery(trpc.devices.list.queryOptions());
  const known = deviceId === null || !devices.data || devices.data.some((d) => d.id === deviceId);

  if (deviceId === null || !known) {
    return (
      <Card className="flex min-h-0 flex-1 flex-col overflow-hidden">
        <div className="flex items-center gap-2 border-b px-4 py-3">
          <BackToList />
          <h2 className="text-base font-semibold">New chat</h2>
        </div>
        <div className="min-h-0 flex-1 overflow-y-auto p-4">
          <div className="mx-auto flex max-w-lg flex-col gap-3">
            {!known ? (
              <Alert tone="warning">There is no device with id {deviceId}; it may have been deleted. Choose another one.</Alert>
            ) : null}
            <p className="text-sm text-muted-foreground">Choose the device whose model answers.</p>
            <DevicePicker onPick={(id) => router.replace(newChatHref(id))} />
          </div>
        </div>
      </Card>
    );
  }
  return <ChatPane conversation={null} deviceId={deviceId} />;
}

function BackToList() {
  return (
    <Link
      href="/chat"
      className="inline-flex size-8 shrink-0 items-center justify-center rounded-md text-muted-foreground hover:bg-muted hover:text-foreground lg:hidden"
      aria-label="All conversations"
      title="All conversations"
    >
      <ArrowLeft className="size-4" aria-hidden />
    </Link>
  );
}

/** The server's title for a new conversation (services/conversations.ts), until it is read back. */
function titleFrom(content: string): string {
  const line =
    content
      .split("\n")
      .find((l) => l.trim().length > 0)
      ?.trim() ?? content;
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}

function ChatPane({ conversation: stored, deviceId }: { conversation: Conversation | null; deviceId: string | null }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const link = useLinkState();
  const devices = useQuery(trpc.devices.list.queryOptions());
  const device = deviceId ? devices.data?.find((d) => d.id === deviceId) : undefined;
  const availability: ChatAvailability | null = deviceId && devices.data ? chatAvailability(device) : null;

  // A new chat's first send creates the conversation: show it here at once, while the page moves to its address.
  const [createdId, setCreatedId] = useState<string | null>(null);
  const created = useQuery({ ...trpc.chat.get.queryOptions({ id: createdId ?? "" }), enabled: stored === null && createdId !== null });
  const conversation = stored ?? (createdId ? (created.data ?? null) : null);
  const conversationId = conversation?.id ?? createdId;
  const messages = conversation?.messages ?? NO_MESSAGES;
  const streaming = messages.findLast((m) => m.role === "assistant" && m.status === "streaming") ?? null;
  const live = useLiveAnswer(streaming?.id ?? null);

  const key = conversationId ? draftKey({ conversationId }) : draftKey({ deviceId: deviceId ?? "" });
  const [draft, setDraft] = useDraft(key);
  const [options, setOptions] = useChatOptions();
  const fromInput = useRef(false);
  const [dialog, setDialog] = useState<{ kind: "rename" | "delete"; ref: ConversationRef } | null>(null);
  // A viewer reads the conversation; sending, stopping, renaming and deleting are not offered (the server refuses them anyway).
  const canChat = useCan("operator");
  const role = useMe().data?.role;
  const readOnly = role !== undefined && !canChat;

  const send = useMutation(
    trpc.chat.send.mutationOptions({
      onSuccess: (res, input) => {
        const placeholder: ConversationMessageDto = {
          id: res.assistantMessageId,
          role: "assistant",
          content: "",
          status: "streaming",
          errorCode: null,
          error: null,
          stats: null,
          createdAt: res.userMessage.createdAt + 1,
        };
        const queryKey = trpc.chat.get.queryKey({ id: res.conversationId });
        // Socket events may have got here first (even the end of a fast answer): never overwrite them.
        const prior = queryClient.getQueryData(queryKey)?.messages.find((m) => m.id === res.assistantMessageId);
        queryClient.setQueryData(queryKey, (c) => {
          if (!c) {
            return {
              id: res.conversationId,
              title: titleFrom(input.content),
              deviceId,
              deviceName: device?.name ?? null,
              createdAt: res.userMessage.createdAt,
              updatedAt: res.userMessage.createdAt,
              messageCount: 2,
              answering: true,
              messages: [res.userMessage, placeholder],
            };
          }
          let next = c.messages.some((m) => m.id === res.userMessage.id) ? c : withMessage(c, res.userMessage);
          if (!prior) next = withMessage(next, placeholder);
          return next;
        });
        if (!prior || prior.status === "streaming") beginAnswer(res.conversationId, res.assistantMessageId, "sent");
        if (fromInput.current) {
          saveDraft(key, "");
          setDraft("");
        }
        void queryClient.invalidateQueries({ queryKey: trpc.chat.list.queryKey() });
        if (!conversationId) {
          setCreatedId(res.conversationId);
          // Join the new conversation's room now; the page that takes over holds its own watch.
          const release = watchConversation(res.conversationId);
          setTimeout(release, HANDOVER_WATCH_MS);
          // Whatever happened before the room was joined (a refusal by the device, say) is in the stored copy.
          void queryClient.invalidateQueries({ queryKey });
          router.replace(`/chat/${res.conversationId}`);
        }
      },
    }),
  );

  const stop = useMutation(
    trpc.chat.stop.mutationOptions({
      onError: (err) => {
        if (streaming) markStopping(streaming.id, false);
        // Nothing to stop: the answer ended meanwhile.
        if (errorCode(err) === "NOT_FOUND" && conversationId) {
          void queryClient.invalidateQueries({ queryKey: trpc.chat.get.queryKey({ id: conversationId }) });
        }
      },
    }),
  );

  const answering = streaming !== null;
  const deviceGone = conversation !== null && conversation.deviceId === null;

  // Keep the live store in step with the stored messages: follow answers in progress (after a reload too), drop ended ones.
  useEffect(() => {
    if (!conversationId) return;
    for (const m of messages) {
      if (m.role !== "assistant") continue;
      if (m.status === "streaming") beginAnswer(conversationId, m.id, null);
      else endAnswer(m.id);
    }
  }, [conversationId, messages]);

  // A missed event must not leave an answer "streaming" for ever: after a silence, read the conversation again.
  const streamingId = streaming?.id ?? null;
  useEffect(() => {
    if (!streamingId || !conversationId) return;
    const t = setInterval(() => {
      const a = getLiveAnswer(streamingId);
      if (a && Date.now() - a.lastEventAt > SILENCE_REFETCH_MS) {
        touchAnswer(streamingId);
        void queryClient.invalidateQueries({ queryKey: trpc.chat.get.queryKey({ id: conversationId }) });
      }
    }, 2_000);
    return () => clearInterval(t);
  }, [streamingId, conversationId, queryClient, trpc]);

  const doSend = (content: string, viaInput: boolean) => {
    if (send.isPending) return;
    fromInput.current = viaInput;
    stick.current = true;
    stop.reset();
    send.mutate({
      ...(conversationId ? { conversationId } : { deviceId: deviceId ?? "" }),
      content,
      maxNewTokens: options.maxNewTokens,
      temperature: options.temperature,
    });
  };

  // ------------------------------------------------------------ scrolling: follow the answer unless the reader scrolled up
  const scroller = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [atBottom, setAtBottom] = useState(true);
  useEffect(() => {
    const el = scroller.current;
    const inner = content.current;
    if (!el || !inner) return;
    const onScroll = () => {
      const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      stick.current = bottom;
      setAtBottom(bottom);
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    const ro = new ResizeObserver(() => {
      if (stick.current) el.scrollTop = el.scrollHeight;
    });
    ro.observe(inner);
    el.scrollTop = el.scrollHeight;
    return () => {
      el.removeEventListener("scroll", onScroll);
      ro.disconnect();
    };
  }, []);
  const toBottom = () => {
    stick.current = true;
    scroller.current?.scrollTo({ top: scroller.current.scrollHeight, behavior: "smooth" });
  };

  const title = conversation?.title ?? "New chat";
  const deviceName = device?.name ?? conversation?.deviceName ?? null;
  const newHere = deviceId && !deviceGone ? newChatHref(deviceId) : null;

  return (
    <Card
      className="relative flex min-h-0 flex-1 flex-col overflow-hidden"
      data-testid="conversation"
      data-conversation-id={conversationId ?? ""}
    >
      {/* Header: title, device, actions. */}
      <div className="flex items-center gap-2 border-b px-3 py-2.5 sm:px-4">
        <BackToList />
        <div className="flex min-w-0 flex-1 flex-col">
          <h2 className="truncate text-base font-semibold" data-testid="conversation-heading" title={title}>
            {title}
          </h2>
          <DeviceLine device={device} deviceId={deviceId} deviceName={deviceName} availability={availability} gone={deviceGone} />
        </div>
        <div className="flex shrink-0 items-center gap-0.5">
          {newHere && conversationId && canChat ? (
            <Link
              href={newHere}
              className={buttonClass("ghost", "icon")}
              aria-label="New chat on this device"
              title="New chat on this device"
            >
              <MessageSquarePlus />
            </Link>
          ) : null}
          {conversation && canChat ? (
            <>
              <Button
                variant="ghost"
                size="icon"
                aria-label="Rename conversation"
                title="Rename"
                onClick={() => setDialog({ kind: "rename", ref: { id: conversation.id, title: conversation.title } })}
              >
                <Pencil />
              </Button>
              <Button
                variant="ghost"
                size="icon"
                className="text-danger hover:bg-danger/10"
                aria-label="Delete conversation"
                title="Delete"
                onClick={() => setDialog({ kind: "delete", ref: { id: conversation.id, title: conversation.title } })}
              >
                <Trash2 />
              </Button>
            </>
          ) : null}
        </div>
      </div>

      {/* Messages. */}
      <div className="relative min-h-0 flex-1">
        <div ref={scroller} className="absolute inset-0 overflow-y-auto" data-testid="chat-messages">
          <div ref={content} className="mx-auto flex w-full max-w-3xl flex-col gap-5 px-3 py-5 sm:px-5">
            {messages.length === 0 ? (
              <NewChatIntro device={device} deviceName={deviceName} />
            ) : (
              messages.map((m, i) => {
                const question = m.role === "assistant" && m.status === "error" ? previousUserText(messages, i) : null;
                return (
                  <ChatMessage
                    key={m.id}
                    message={m}
                    deviceName={deviceName}
                    onRetry={question !== null && !deviceGone && canChat ? () => doSend(question, false) : undefined}
                    retryDisabled={answering || send.isPending}
                    newConversationHref={canChat ? newHere : null}
                    onStartOver={() => {
                      // The question that no longer fitted becomes the new conversation's draft.
                      if (question && deviceId) saveDraft(draftKey({ deviceId }), question);
                    }}
                  />
                );
              })
            )}
          </div>
        </div>
        {!atBottom ? (
          <Button
            variant="outline"
            size="sm"
            className="absolute bottom-3 left-1/2 z-10 -translate-x-1/2 rounded-full shadow-md"
            onClick={toBottom}
          >
            <ArrowDown aria-hidden />
            {answering ? "Follow the answer" : "Latest"}
          </Button>
        ) : null}
      </div>

      {/* Input, with what stands in its way. */}
      <div className="border-t bg-background/40 px-3 pt-2 pb-3 sm:px-4">
        <div className="mx-auto flex w-full max-w-3xl flex-col gap-2">
          {link === "reconnecting" ? (
            <Notice tone="warning">
              Live updates paused: reconnecting to the server. The device keeps answering; the text catches up.
            </Notice>
          ) : null}
          {deviceGone ? (
            <Notice tone="warning">
              The device of this conversation was deleted, so it cannot go on.{" "}
              <Link href="/chat/new" className="font-medium underline underline-offset-2">
                Start a new chat
              </Link>{" "}
              on another device.
            </Notice>
          ) : availability && !availability.ok ? (
            <Notice tone="warning" testId="chat-device-unavailable">
              {availability.reason} {answering ? "" : "What you type is kept until it can be sent."}
            </Notice>
          ) : null}
          {send.isError ? (
            <Alert className="py-1.5">
              <span data-testid="chat-error" data-source="send">
                {errorMessage(send.error)}
              </span>
            </Alert>
          ) : null}
          {stop.isError && errorCode(stop.error) !== "NOT_FOUND" ? <Alert className="py-1.5">{errorMessage(stop.error)}</Alert> : null}
          <Composer
            value={draft}
            onChange={(text) => {
              setDraft(text);
              if (send.isError) send.reset();
            }}
            onSend={() => doSend(draft, true)}
            onStop={() => {
              if (!conversationId || !streaming) return;
              markStopping(streaming.id, true);
              stop.mutate({ id: conversationId });
            }}
            answering={answering}
            sending={send.isPending}
            stopping={!!live?.stopping || stop.isPending}
            disabledReason={
              deviceGone
                ? "The device of this conversation was deleted."
                : readOnly
                  ? `Chatting needs the operator role; you are signed in as ${role}.`
                  : undefined
            }
            options={options}
            onOptionsChange={setOptions}
            placeholder={deviceName ? `Message ${deviceName}…` : "Message…"}
          />
        </div>
      </div>

      <RenameConversationDialog conversation={dialog?.kind === "rename" ? dialog.ref : null} onClose={() => setDialog(null)} />
      <DeleteConversationDialog conversation={dialog?.kind === "delete" ? dialog.ref : null} onClose={() => setDialog(null)} />
    </Card>
  );
}

function previousUserText(messages: ConversationMessageDto[], index: number): string | null {
  for (let i = index - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === "user") return m.content;
  }
  return null;
}

function Notice({ tone, children, testId }: { tone: "warning" | "info"; children: ReactNode; testId?: string }) {
  return (
    <div
      role="status"
      data-testid={testId}
      className={cn(
        "rounded-md border px-3 py-1.5 text-xs",
        tone === "warning" ? "border-warning/30 bg-warning/10 text-warning" : "border-info/30 bg-info/10 text-info",
      )}
    >
      {children}
    </div>
  );
}

function DeviceLine({
  device,
  deviceId,
  deviceName,
  availability,
  gone,
}: {
  device: DeviceSummary | undefined;
  deviceId: string | null;
  deviceName: string | null;
  availability: ChatAvailability | null;
  gone: boolean;
}) {
  if (gone || !deviceId) return <span className="text-xs text-muted-foreground">device deleted</span>;
  const model = device?.activeModel?.name ?? device?.runner?.model ?? null;
  return (
    <span className="flex min-w-0 items-center gap-1.5 text-xs text-muted-foreground">
      <span
        className={cn("size-1.5 shrink-0 rounded-full", availability?.ok ? "bg-success" : "bg-muted-foreground/50")}
        title={availability ? (availability.ok ? "Ready to answer" : availability.reason) : undefined}
        aria-hidden
      />
      <Link
        href={`/devices/${encodeURIComponent(deviceId)}`}
        className="truncate hover:text-foreground hover:underline"
        data-testid="conversation-device"
      >
        {deviceName ?? deviceId}
      </Link>
      {availability && !availability.ok ? <span className="shrink-0">({availability.label})</span> : null}
      {model ? (
        <>
          <span aria-hidden className="max-sm:hidden">
            ·
          </span>
          <span className="truncate max-sm:hidden">{model}</span>
        </>
      ) : null}
      {device?.runner?.backend === "sim" ? (
        <Badge tone="sim" title={SIM_HELP} className="px-1.5 py-0 text-[0.65rem]">
          sim
        </Badge>
      ) : null}
    </span>
  );
}

function NewChatIntro({ device, deviceName }: { device: DeviceSummary | undefined; deviceName: string | null }) {
  const model = device?.activeModel?.name ?? device?.runner?.model ?? null;
  const sim = device?.runner?.backend === "sim";
  return (
    <div className="flex flex-col items-center gap-3 py-10 text-center" data-testid="chat-intro">
      <span className="flex size-12 items-center justify-center rounded-full bg-muted text-primary">
        <Sprout className="size-6" aria-hidden />
      </span>
      <h3 className="text-base font-semibold">{deviceName ? `Chat with ${deviceName}` : "New chat"}</h3>
      <p className="max-w-md text-sm text-muted-foreground">
        {model ? (
          <>
            Answers come from <span className="font-medium text-foreground">{model}</span> running on the device, token by token.
          </>
        ) : (
          "Answers come from the model running on the device, token by token."
        )}{" "}
        A Raspberry Pi can be slow (under a token per second is normal): the counter under the answer shows it is working.
      </p>
      {sim ? (
        <Badge tone="sim" title={SIM_HELP}>
          simulated backend: not a real model
        </Badge>
      ) : null}
    </div>
  );
}
