"use client";
/** Chat, rename, restart the runner, delete (after a confirmation). Errors from the server are shown as they come. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Pencil, RotateCw, Trash2 } from "lucide-react";
import { useRouter } from "next/navigation";
import { useEffect, useState, type FormEvent } from "react";
import type { DeviceSummary } from "@orchard/contracts";
import { ChatButton } from "@/components/chat/chat-button";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";

export function DeviceActions({ device, onDeleting }: { device: DeviceSummary; onDeleting: () => void }) {
  const [dialog, setDialog] = useState<"rename" | "delete" | null>(null);
  return (
    <div className="flex flex-col items-start gap-2 sm:items-end">
      <div className="flex flex-wrap gap-2">
        <ChatButton device={device} testId="device-page-chat" />
        <RestartRunnerButton device={device} />
        <Button variant="outline" size="sm" onClick={() => setDialog("rename")} data-testid="rename-device">
          <Pencil aria-hidden />
          Rename
        </Button>
        <Button
          variant="outline"
          size="sm"
          className="text-danger hover:bg-danger/10"
          onClick={() => setDialog("delete")}
          data-testid="delete-device"
        >
          <Trash2 aria-hidden />
          Delete
        </Button>
      </div>
      <RenameDialog device={device} open={dialog === "rename"} onClose={() => setDialog(null)} />
      <DeleteDialog device={device} open={dialog === "delete"} onClose={() => setDialog(null)} onDeleting={onDeleting} />
    </div>
  );
}

function RestartRunnerButton({ device }: { device: DeviceSummary }) {
  const trpc = useTRPC();
  const restart = useMutation(
    // The agent reports the outcome as a command.result event, which arrives live in the events list.
    trpc.devices.restartRunner.mutationOptions(),
  );
  useEffect(() => {
    if (!restart.isSuccess) return;
    const t = setTimeout(() => restart.reset(), 8000);
    return () => clearTimeout(t);
  }, [restart]);

  return (
    <div className="flex flex-col items-start gap-1 sm:items-end">
      <Button
        variant="outline"
        size="sm"
        onClick={() => restart.mutate({ id: device.id })}
        disabled={!device.online || restart.isPending}
        title={device.online ? "Ask the agent to restart the runner process" : "The device is offline: the command would not reach it"}
        data-testid="restart-runner"
      >
        {restart.isPending ? <Spinner label="Sending" /> : <RotateCw aria-hidden />}
        Restart runner
      </Button>
      {restart.isError ? (
        <p className="max-w-64 text-xs text-danger" role="alert">
          {errorMessage(restart.error)}
        </p>
      ) : null}
      {restart.isSuccess ? (
        <p className="text-xs text-muted-foreground" role="status">
          Restart requested; the result appears under Recent events.
        </p>
      ) : null}
    </div>
  );
}

function RenameDialog({ device, open, onClose }: { device: DeviceSummary; open: boolean; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [name, setName] = useState(device.name);
  const rename = useMutation(
    trpc.devices.rename.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.devices.pathKey() });
        onClose();
      },
    }),
  );
  useEffect(() => {
    if (open) {
      setName(device.name);
      rename.reset();
    }
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);

  const trimmed = name.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (trimmed && trimmed !== device.name) rename.mutate({ id: device.id, name: trimmed });
    else onClose();
  };

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Rename device"
      description="The name is shown in the dashboard only; the Pi's hostname does not change."
    >
      <form onSubmit={submit} className="flex flex-col gap-4">
        <Field label="Name" htmlFor="device-new-name">
          <Input id="device-new-name" value={name} maxLength={64} onChange={(e) => setName(e.target.value)} autoFocus />
        </Field>
        {rename.isError ? <Alert>{errorMessage(rename.error)}</Alert> : null}
        <div className="flex justify-end gap-2">
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" disabled={!trimmed || rename.isPending} data-testid="rename-submit">
            {rename.isPending ? <Spinner className="text-primary-foreground" label="Saving" /> : null}
            Save
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteDialog({
  device,
  open,
  onClose,
  onDeleting,
}: {
  device: DeviceSummary;
  open: boolean;
  onClose: () => void;
  onDeleting: () => void;
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const remove = useMutation(
    trpc.devices.remove.mutationOptions({
      onMutate: onDeleting,
      onSuccess: () => {
        queryClient.setQueryData(trpc.devices.list.queryKey(), (rows) => rows?.filter((r) => r.id !== device.id));
        router.push("/");
      },
    }),
  );

  return (
    <ConfirmDialog
      open={open}
      onClose={onClose}
      title={`Delete ${device.name}?`}
      description="This removes the device, its telemetry and event history, and its broker credentials. The Pi is disconnected at once; to bring it back, enroll it again."
      confirmLabel="Delete device"
      pendingLabel="Deleting"
      pending={remove.isPending}
      error={remove.isError ? errorMessage(remove.error) : null}
      onConfirm={() => remove.mutate({ id: device.id })}
      confirmTestId="delete-confirm"
    />
  );
}
