"use client";
/**
 * The saved conversations, newest first: title, device, when it last changed,
 * and whether an answer is being generated; rename and delete on each. "New
 * chat" goes to /chat/new, which asks for the device.
 */
import { useQuery } from "@tanstack/react-query";
import { MessageSquarePlus, MessagesSquare, Pencil, Trash2 } from "lucide-react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button, buttonClass } from "@/components/ui/button";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock, Spinner } from "@/components/ui/spinner";
import { cn } from "@/lib/cn";
import { formatDateTime, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { useCan } from "@/lib/use-role";
import { DeleteConversationDialog, RenameConversationDialog, type ConversationRef } from "./conversation-dialogs";

type Summary = RouterOutputs["chat"]["list"][number];

export function ConversationList({ className }: { className?: string }) {
  const trpc = useTRPC();
  const [renaming, setRenaming] = useState<ConversationRef | null>(null);
  const [deleting, setDeleting] = useState<ConversationRef | null>(null);
  // Conversations this page does not watch report nothing live: while one is answering, look again now and then.
  const list = useQuery(
    trpc.chat.list.queryOptions(undefined, {
      refetchInterval: (q) => (q.state.data?.some((c) => c.answering) ? 5_000 : 60_000),
    }),
  );
  const pathname = usePathname();
  // A viewer reads conversations; starting, renaming and deleting them is not offered (the server refuses it anyway).
  const canChat = useCan("operator");

  return (
    <div className={cn("flex min-h-0 flex-col rounded-xl border bg-card shadow-xs", className)}>
      <div className="flex items-center justify-between gap-2 border-b px-4 py-3">
        <h1 className="text-base font-semibold">Conversations</h1>
        {canChat ? (
          <Link href="/chat/new" className={buttonClass("primary", "sm")} data-testid="chat-new">
            <MessageSquarePlus aria-hidden />
            New chat
          </Link>
        ) : null}
      </div>
      <div className="min-h-0 flex-1 overflow-y-auto">
        {list.isPending ? (
          <LoadingBlock label="Loading conversations…" />
        ) : list.isError ? (
          <div className="p-4">
            <Alert>{errorMessage(list.error)}</Alert>
          </div>
        ) : list.data.length === 0 ? (
          <EmptyState icon={MessagesSquare} title="No conversations yet">
            {canChat ? (
              <>
                Start one with <span className="font-medium">New chat</span>, or with Chat on a device of the fleet.
              </>
            ) : (
              "Operators and admins start conversations; you can read them here."
            )}
          </EmptyState>
        ) : (
          <ul className="flex flex-col gap-0.5 p-2" data-testid="conversation-list">
            {list.data.map((c) => (
              <ConversationItem
                key={c.id}
                conversation={c}
                active={pathname === `/chat/${c.id}`}
                onRename={canChat ? () => setRenaming({ id: c.id, title: c.title }) : undefined}
                onDelete={canChat ? () => setDeleting({ id: c.id, title: c.title }) : undefined}
              />
            ))}
          </ul>
        )}
      </div>
      <RenameConversationDialog conversation={renaming} onClose={() => setRenaming(null)} />
      <DeleteConversationDialog conversation={deleting} onClose={() => setDeleting(null)} />
    </div>
  );
}

function ConversationItem({
  conversation: c,
  active,
  onRename,
  onDelete,
}: {
  conversation: Summary;
  active: boolean;
  /** Absent (with onDelete) when the signed-in role may only read. */
  onRename?: () => void;
  onDelete?: () => void;
}) {
  const now = useNow();
  return (
    <li
      className={cn("group relative rounded-lg transition-colors", active ? "bg-muted" : "hover:bg-muted/60")}
      data-testid="conversation-item"
      data-conversation-id={c.id}
      data-answering={c.answering}
    >
      <Link
        href={`/chat/${c.id}`}
        aria-current={active ? "page" : undefined}
        className="flex flex-col gap-0.5 rounded-lg py-2 pr-18 pl-3 focus-visible:ring-2 focus-visible:ring-ring focus-visible:outline-none"
      >
        <span className="truncate text-sm font-medium" data-testid="conversation-title">
          {c.title}
        </span>
        <span className="flex min-w-0 items-center gap-1.5 text-xs text-muted-foreground">
          {c.answering ? (
            <span className="inline-flex shrink-0 items-center gap-1 text-primary" title="An answer is being generated">
              <Spinner className="size-3 text-primary" label="Answering" />
              answering
            </span>
          ) : null}
          <span className="truncate">{c.deviceName ?? (c.deviceId ? c.deviceId : "device deleted")}</span>
          <span aria-hidden>·</span>
          <time className="shrink-0 whitespace-nowrap" dateTime={new Date(c.updatedAt).toISOString()} title={formatDateTime(c.updatedAt)}>
            {now === 0 ? "" : formatRelative(c.updatedAt, Math.max(now, c.updatedAt))}
          </time>
        </span>
      </Link>
      {onRename && onDelete ? (
        <div className="absolute top-1/2 right-1.5 flex -translate-y-1/2 gap-0.5 transition-opacity sm:opacity-0 sm:group-focus-within:opacity-100 sm:group-hover:opacity-100">
          <Button
            variant="ghost"
            size="icon"
            className="size-7"
            aria-label={`Rename “${c.title}”`}
            title="Rename"
            onClick={onRename}
            data-testid="conversation-rename"
          >
            <Pencil className="size-3.5" />
          </Button>
          <Button
            variant="ghost"
            size="icon"
            className="size-7 text-danger hover:bg-danger/10"
            aria-label={`Delete “${c.title}”`}
            title="Delete"
            onClick={onDelete}
            data-testid="conversation-delete"
          >
            <Trash2 className="size-3.5" />
          </Button>
        </div>
      ) : null}
    </li>
  );
}
