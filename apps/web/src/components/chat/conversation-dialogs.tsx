"use client";
/** Rename and delete a conversation (from the list or from its header). */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { usePathname, useRouter } from "next/navigation";
import { useEffect } from "react";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { RenameDialog } from "@/components/ui/rename-dialog";
import { saveDraft, draftKey } from "@/lib/chat-storage";
import { errorMessage, useTRPC } from "@/lib/trpc";

export interface ConversationRef {
  id: string;
  title: string;
}

export function RenameConversationDialog({ conversation, onClose }: { conversation: ConversationRef | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const rename = useMutation(
    trpc.chat.rename.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.chat.list.queryKey(), (rows) =>
          rows?.map((r) => (r.id === input.id ? { ...r, title: input.title } : r)),
        );
        queryClient.setQueryData(trpc.chat.get.queryKey({ id: input.id }), (c) => (c ? { ...c, title: input.title } : c));
        onClose();
      },
    }),
  );

  return (
    <RenameDialog
      open={conversation !== null}
      onClose={onClose}
      onOpen={() => rename.reset()}
      title="Rename conversation"
      label="Title"
      inputId="conversation-title"
      maxLength={120}
      current={conversation?.title ?? ""}
      pending={rename.isPending}
      error={rename.isError ? errorMessage(rename.error) : null}
      onSave={(title) => conversation && rename.mutate({ id: conversation.id, title })}
      submitTestId="conversation-rename-submit"
    />
  );
}

export function DeleteConversationDialog({ conversation, onClose }: { conversation: ConversationRef | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const pathname = usePathname();
  const remove = useMutation(
    trpc.chat.remove.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.chat.list.queryKey(), (rows) => rows?.filter((r) => r.id !== input.id));
        saveDraft(draftKey({ conversationId: input.id }), "");
        onClose();
        if (pathname === `/chat/${input.id}`) router.replace("/chat");
        queryClient.removeQueries({ queryKey: trpc.chat.get.queryKey({ id: input.id }) });
      },
    }),
  );
  useEffect(() => {
    if (conversation) remove.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conversation?.id]);

  return (
    <ConfirmDialog
      open={conversation !== null}
      onClose={onClose}
      title="Delete this conversation?"
      description={
        <>
          <span className="font-medium text-foreground">{conversation?.title}</span> and all its messages are deleted. An answer still being
          generated is stopped.
        </>
      }
      confirmLabel="Delete conversation"
      pendingLabel="Deleting"
      pending={remove.isPending}
      error={remove.isError ? errorMessage(remove.error) : null}
      onConfirm={() => conversation && remove.mutate({ id: conversation.id })}
      confirmTestId="conversation-delete-confirm"
    />
  );
}
