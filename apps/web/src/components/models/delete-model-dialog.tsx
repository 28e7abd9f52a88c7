"use client";
/** Deleting a model after a confirmation; the server refuses while a device runs it or a rollout uses it, and says why. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { errorMessage, useTRPC } from "@/lib/trpc";

export interface ModelRef {
  id: string;
  name: string;
  version: string;
}

export function DeleteModelDialog({ model, onClose }: { model: ModelRef | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const remove = useMutation(
    trpc.artifacts.remove.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.artifacts.list.queryKey(), (rows) => rows?.filter((r) => r.id !== input.id));
        queryClient.removeQueries({ queryKey: trpc.artifacts.get.queryKey({ id: input.id }) });
        onClose();
      },
    }),
  );
  useEffect(() => {
    if (model) remove.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [model?.id]);

  return (
    <ConfirmDialog
      open={model !== null}
      onClose={onClose}
      title="Delete this model?"
      description={
        <>
          <span className="font-medium text-foreground">
            {model?.name} {model?.version}
          </span>{" "}
          and its files are deleted from the server (files another model shares stay). Devices that downloaded it keep their copy until
          their next rollout.
        </>
      }
      confirmLabel="Delete model"
      pendingLabel="Deleting"
      pending={remove.isPending}
      error={remove.isError ? errorMessage(remove.error) : null}
      onConfirm={() => model && remove.mutate({ id: model.id })}
      confirmTestId="model-delete-confirm"
    />
  );
}
