"use client";
/** Deleting a benchmark run (from the list or its page), after a confirmation. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { usePathname, useRouter } from "next/navigation";
import { useEffect } from "react";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { errorMessage, useTRPC } from "@/lib/trpc";

export interface RunRef {
  id: string;
  name: string;
}

export function DeleteRunDialog({ run, onClose }: { run: RunRef | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const pathname = usePathname();
  const remove = useMutation(
    trpc.bench.remove.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.bench.list.queryKey(), (rows) => rows?.filter((r) => r.id !== input.id));
        onClose();
        if (pathname === `/benchmarks/${input.id}`) router.replace("/benchmarks");
        queryClient.removeQueries({ queryKey: trpc.bench.get.queryKey({ id: input.id }) });
      },
    }),
  );
  useEffect(() => {
    if (run) remove.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [run?.id]);

  return (
    <ConfirmDialog
      open={run !== null}
      onClose={onClose}
      title="Delete this benchmark run?"
      description={
        <>
          <span className="font-medium text-foreground">{run?.name}</span> and its results are deleted. Devices still running it finish
          their prompts, but their results are no longer recorded.
        </>
      }
      confirmLabel="Delete run"
      pendingLabel="Deleting"
      pending={remove.isPending}
      error={remove.isError ? errorMessage(remove.error) : null}
      onConfirm={() => run && remove.mutate({ id: run.id })}
      confirmTestId="bench-delete-confirm"
    />
  );
}
