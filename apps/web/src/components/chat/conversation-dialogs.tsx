"use client";
/** Rename and delete a conversation (from the list or from its header). */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { saveDraft, draftKey } from "@/lib/chat-storage";
import { errorMessage, useTRPC } from "@/lib/trpc";

export interface ConversationRef {
  id: string;
  title: string;
}

export function RenameConversationDialog({ conversation, onClose }: { conversation: ConversationRef | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [title, setTitle] = useState("");
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
  useEffect(() => {
    if (conversation) {
      setTitle(conversation.title);
      rename.reset();
    }
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [conversation?.id]);

  const trimmed = title.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!conversation) return;
    if (trimmed && trimmed !== conversation.title) rename.mutate({ id: conversation.id, title: trimmed });
    else onClose();
  };

  return (
    <Dialog open={conversation !== null} onClose={onClose} title="Rename conversation">
      <form onSubmit={submit} className="flex flex-col gap-4">
        <Field label="Title" htmlFor="conversation-title">
          <Input id="conversation-title" value={title} maxLength={120} onChange={(e) => setTitle(e.target.value)} autoFocus />
        </Field>
        {rename.isError ? <Alert>{errorMessage(rename.error)}</Alert> : null}
        <div className="flex justify-end gap-2">
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" disabled={!trimmed || rename.isPending} data-testid="conversation-rename-submit">
            {rename.isPending ? <Spinner className="text-primary-foreground" label="Saving" /> : null}
            Save
          </Button>
        </div>
      </form>
    </Dialog>
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
