"use client";
/** Chat, run a benchmark, rename, restart the runner, delete (after a confirmation). Errors from the server are shown as they come. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Gauge, KeyRound, Pencil, RotateCw, Trash2 } from "lucide-react";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import type { DeviceSummary } from "@orchard/contracts";
import { ChatButton } from "@/components/chat/chat-button";
import { Button, buttonClass } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { RenameDialog } from "@/components/ui/rename-dialog";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";

export function DeviceActions({ device, onDeleting }: { device: DeviceSummary; onDeleting: () => void }) {
  const [dialog, setDialog] = useState<"rename" | "delete" | null>(null);
  // What the role cannot do is not offered (the server is the authority and refuses it anyway).
  const isOperator = useCan("operator");
  const isAdmin = useCan("admin");
  if (!isOperator) return null;
  return (
    <div className="flex flex-col items-start gap-2 sm:items-end">
      <div className="flex flex-wrap gap-2">
        <ChatButton device={device} testId="device-page-chat" />
        <Link
          href={`/benchmarks?device=${encodeURIComponent(device.id)}`}
          className={buttonClass("outline", "sm")}
          title={`Run the benchmark prompt set on ${device.name}`}
          data-testid="device-run-benchmark"
        >
          <Gauge aria-hidden />
          Run benchmark
        </Link>
        <RestartRunnerButton device={device} />
        {isAdmin ? <RotateCredentialsButton device={device} /> : null}
        <Button variant="outline" size="sm" onClick={() => setDialog("rename")} data-testid="rename-device">
          <Pencil aria-hidden />
          Rename
        </Button>
        {isAdmin ? (
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
        ) : null}
      </div>
      <RenameDeviceDialog device={device} open={dialog === "rename"} onClose={() => setDialog(null)} />
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

/** A new broker password for the device; the old one keeps working until the agent confirms (applied now, or pending while offline). */
function RotateCredentialsButton({ device }: { device: DeviceSummary }) {
  const trpc = useTRPC();
  const rotate = useMutation(trpc.devices.rotateCredentials.mutationOptions());
  return (
    <div className="flex flex-col items-start gap-1 sm:items-end">
      <Button
        variant="outline"
        size="sm"
        onClick={() => rotate.mutate({ id: device.id })}
        disabled={rotate.isPending}
        title="Give the device a new broker password without re-enrolling it"
        data-testid="rotate-credentials"
      >
        {rotate.isPending ? <Spinner label="Rotating" /> : <KeyRound aria-hidden />}
        Rotate credentials
      </Button>
      {rotate.isError ? (
        <p className="max-w-64 text-xs text-danger" role="alert">
          {errorMessage(rotate.error)}
        </p>
      ) : null}
      {rotate.isSuccess ? (
        <p className="max-w-64 text-xs text-muted-foreground" role="status" data-testid="rotate-credentials-result">
          {rotate.data.state === "applied" ? "Rotated. " : "Pending. "}
          {rotate.data.message}
        </p>
      ) : null}
    </div>
  );
}

function RenameDeviceDialog({ device, open, onClose }: { device: DeviceSummary; open: boolean; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const rename = useMutation(
    trpc.devices.rename.mutationOptions({
      onSuccess: () => {
        void queryClient.invalidateQueries({ queryKey: trpc.devices.pathKey() });
        onClose();
      },
    }),
  );

  return (
    <RenameDialog
      open={open}
      onClose={onClose}
      onOpen={() => rename.reset()}
      title="Rename device"
      description="The name is shown in the dashboard only; the Pi's hostname does not change."
      label="Name"
      inputId="device-new-name"
      maxLength={64}
      current={device.name}
      pending={rename.isPending}
      error={rename.isError ? errorMessage(rename.error) : null}
      onSave={(name) => rename.mutate({ id: device.id, name })}
      submitTestId="rename-submit"
    />
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
