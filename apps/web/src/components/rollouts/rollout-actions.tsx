"use client";
/**
 * Pause, resume, abort and roll back a rollout, and roll back one of its devices.
 * Pause acts at once (resume undoes it); the others ask first and say what will happen.
 */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Ban, Pause, Play, Undo2 } from "lucide-react";
import { useEffect, useState } from "react";
import type { RolloutDeviceDto, RolloutDto } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { Dialog } from "@/components/ui/dialog";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";

type Action = "resume" | "abort" | "rollback";

/** What every action does with the rollout it returns: the page shows it at once, the list catches up. */
function useApplyRollout(): (rollout: RolloutDto) => void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  return (rollout) => {
    queryClient.setQueryData(trpc.rollouts.get.queryKey({ id: rollout.id }), rollout);
    void queryClient.invalidateQueries({ queryKey: trpc.rollouts.list.queryKey() });
  };
}

export function RolloutActions({ rollout }: { rollout: RolloutDto }) {
  const [dialog, setDialog] = useState<Action | null>(null);
  const close = () => setDialog(null);
  const trpc = useTRPC();
  const apply = useApplyRollout();
  const done = (rollout: RolloutDto) => {
    apply(rollout);
    close();
  };
  const pause = useMutation(trpc.rollouts.pause.mutationOptions({ onSuccess: apply }));
  const resume = useMutation(trpc.rollouts.resume.mutationOptions({ onSuccess: done }));
  const abort = useMutation(trpc.rollouts.abort.mutationOptions({ onSuccess: done }));
  const rollback = useMutation(trpc.rollouts.rollback.mutationOptions({ onSuccess: done }));
  useEffect(() => {
    resume.reset();
    abort.reset();
    rollback.reset();
    // Reset only when a dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dialog]);

  const going = rollout.state === "running" || rollout.state === "paused";
  const runsModel = rollout.devices.filter((d) => d.state === "active" || d.state === "health_check" || d.state === "activating").length;
  const failed = rollout.devices.filter(
    (d) =>
      (d.state === "failed" || d.state === "rolled_back") && d.error && !d.acknowledged && !d.willRetry && d.error.code !== "rolled_back",
  ).length;
  const canAct = useCan("operator");
  if (!canAct) return null; // a viewer watches; the server refuses the actions anyway

  return (
    <div className="flex flex-col items-start gap-2 sm:items-end">
      <div className="flex flex-wrap gap-2">
        {rollout.state === "running" ? (
          <Button
            variant="outline"
            size="sm"
            onClick={() => pause.mutate({ id: rollout.id })}
            disabled={pause.isPending}
            data-testid="rollout-pause"
          >
            {pause.isPending ? <Spinner label="Pausing" /> : <Pause aria-hidden />}
            Pause
          </Button>
        ) : null}
        {rollout.state === "paused" ? (
          <Button size="sm" onClick={() => setDialog("resume")} data-testid="rollout-resume">
            <Play aria-hidden />
            Resume
          </Button>
        ) : null}
        {going ? (
          <Button
            variant="outline"
            size="sm"
            className="text-danger hover:bg-danger/10"
            onClick={() => setDialog("abort")}
            data-testid="rollout-abort"
          >
            <Ban aria-hidden />
            Abort
          </Button>
        ) : null}
        <Button
          variant="outline"
          size="sm"
          className="text-danger hover:bg-danger/10"
          onClick={() => setDialog("rollback")}
          disabled={runsModel === 0 && !going}
          title={runsModel === 0 && !going ? "No device runs this rollout's model." : undefined}
          data-testid="rollout-rollback"
        >
          <Undo2 aria-hidden />
          Roll back all
        </Button>
      </div>
      {pause.isError ? <Alert>{errorMessage(pause.error)}</Alert> : null}

      <Dialog
        open={dialog === "resume"}
        onClose={close}
        title="Resume this rollout?"
        description={
          failed > 0
            ? `The ${failed} failed ${failed === 1 ? "device stays" : "devices stay"} failed and no longer ${failed === 1 ? "counts" : "count"} toward the failure threshold: the rollout pauses again only if ${rollout.strategy.failureThreshold} more ${rollout.strategy.failureThreshold === 1 ? "device fails" : "devices fail"}.`
            : "Devices waiting for their turn are sent the model again, following the strategy."
        }
        footer={
          <>
            <Button variant="outline" onClick={close}>
              Cancel
            </Button>
            <Button onClick={() => resume.mutate({ id: rollout.id })} disabled={resume.isPending} data-testid="rollout-resume-confirm">
              {resume.isPending ? <Spinner className="text-primary-foreground" label="Resuming" /> : <Play aria-hidden />}
              Resume
            </Button>
          </>
        }
      >
        {resume.isError ? <Alert>{errorMessage(resume.error)}</Alert> : null}
      </Dialog>
      <ConfirmDialog
        open={dialog === "abort"}
        onClose={close}
        title="Abort this rollout?"
        description="Devices that have not switched models stop and keep their current model; devices already switching finish their health check (roll them back to undo). Devices waiting for their turn are not sent the model. This cannot be resumed."
        confirmLabel="Abort rollout"
        pendingLabel="Aborting"
        pending={abort.isPending}
        error={abort.isError ? errorMessage(abort.error) : null}
        onConfirm={() => abort.mutate({ id: rollout.id })}
        confirmTestId="rollout-abort-confirm"
        icon={Ban}
      />
      <ConfirmDialog
        open={dialog === "rollback"}
        onClose={close}
        title="Roll back the whole rollout?"
        description={`${going ? "The rollout stops (as with abort), and " : ""}${runsModel === 1 ? "the device that runs" : `the ${runsModel} devices that run`} ${rollout.artifactName} ${rollout.artifactVersion} switch back to the model they ran before. Devices offline now switch back when they connect.`}
        confirmLabel="Roll back all"
        pendingLabel="Rolling back"
        pending={rollback.isPending}
        error={rollback.isError ? errorMessage(rollback.error) : null}
        onConfirm={() => rollback.mutate({ id: rollout.id })}
        confirmTestId="rollout-rollback-confirm"
        icon={Undo2}
      />
    </div>
  );
}

/** "Roll back" for one device, after a confirmation. */
export function RollbackDeviceDialog({
  rolloutId,
  device,
  modelLabel,
  onClose,
}: {
  rolloutId: string;
  device: Pick<RolloutDeviceDto, "deviceId" | "deviceName"> | null;
  /** What the device runs now, e.g. "gemma 2". */
  modelLabel: string;
  onClose: () => void;
}) {
  const trpc = useTRPC();
  const apply = useApplyRollout();
  const rollback = useMutation(
    trpc.rollouts.rollbackDevice.mutationOptions({
      onSuccess: (rollout) => {
        apply(rollout);
        onClose();
      },
    }),
  );
  useEffect(() => {
    if (device) rollback.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [device?.deviceId]);
  return (
    <ConfirmDialog
      open={device !== null}
      onClose={onClose}
      title={`Roll ${device?.deviceName ?? "the device"} back?`}
      description={`It stops ${modelLabel} and starts the model it ran before the rollout again (kept on its disk for this). Chats on it wait while the model loads.`}
      confirmLabel="Roll back"
      pendingLabel="Rolling back"
      pending={rollback.isPending}
      error={rollback.isError ? errorMessage(rollback.error) : null}
      onConfirm={() => device && rollback.mutate({ id: rolloutId, deviceId: device.deviceId })}
      confirmTestId="rollout-device-rollback-confirm"
      icon={Undo2}
    />
  );
}
