"use client";
/**
 * The device's model: the one it runs and the one it keeps on disk for a rollback,
 * with "Roll back" (through the rollout that installed the active model) and a link
 * to roll out another model to this device.
 */
import { useQuery } from "@tanstack/react-query";
import { Rocket, Undo2 } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import type { ActiveModel, DeviceSummary } from "@orchard/contracts";
import { RollbackDeviceDialog } from "@/components/rollouts/rollout-actions";
import { RuntimeBadge } from "@/components/rollouts/rollout-badges";
import { useRolloutsSync } from "@/components/rollouts/use-rollouts-sync";
import { Button, buttonClass } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";

function ModelLine({ model, testId }: { model: ActiveModel | null; testId: string }) {
  if (!model)
    return (
      <span className="text-sm text-muted-foreground" data-testid={testId}>
        none
      </span>
    );
  return (
    <span className="flex flex-wrap items-baseline gap-x-2 gap-y-1 text-sm" data-testid={testId} data-artifact-id={model.artifactId ?? ""}>
      <span className="font-medium break-all">
        {model.name}
        {model.version ? ` ${model.version}` : ""}
      </span>
      {model.runtime ? <RuntimeBadge runtime={model.runtime} /> : null}
      {model.sha256 ? (
        <span className="font-mono text-xs text-muted-foreground" title={`sha256 of the model file: ${model.sha256}`}>
          sha256 {model.sha256.slice(0, 12)}…
        </span>
      ) : null}
    </span>
  );
}

export function ModelCard({ device }: { device: DeviceSummary }) {
  useRolloutsSync();
  const trpc = useTRPC();
  const installedBy = useQuery(trpc.rollouts.ofDevice.queryOptions({ deviceId: device.id }));
  const [confirming, setConfirming] = useState(false);
  // Rolling back or out is for operators and admins; a viewer sees the models only (the server refuses it anyway).
  const canRollOut = useCan("operator");
  const active = device.activeModel;
  const previous = device.previousModel;
  const rollout = installedBy.data ?? null;
  const reason = !previous
    ? "No previous model is kept on this device."
    : !rollout
      ? "The active model was not installed by a rollout of this server."
      : !device.online
        ? `${device.name} is offline.`
        : null;

  return (
    <Card>
      <CardHeader>
        <CardTitle>Model</CardTitle>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        <dl className="flex flex-col gap-3">
          <div className="flex flex-col gap-0.5">
            <dt className="text-xs text-muted-foreground">Active</dt>
            <dd>
              <ModelLine model={active} testId="device-active-model" />
              {rollout ? (
                <span className="text-xs text-muted-foreground">
                  installed by{" "}
                  <Link href={`/rollouts/${encodeURIComponent(rollout.rolloutId)}`} className="hover:underline">
                    {rollout.name}
                  </Link>
                </span>
              ) : null}
            </dd>
          </div>
          <div className="flex flex-col gap-0.5">
            <dt className="text-xs text-muted-foreground">Kept for rollback</dt>
            <dd>
              <ModelLine model={previous} testId="device-previous-model" />
            </dd>
          </div>
          <div className="flex flex-col gap-0.5">
            <dt className="text-xs text-muted-foreground">Runtimes it can load</dt>
            <dd className="text-sm" data-testid="device-runtimes">
              {device.runtimes === null ? (
                <span className="text-muted-foreground">not reported yet</span>
              ) : (
                device.runtimes.join(", ") || "none"
              )}
            </dd>
          </div>
        </dl>
        {canRollOut ? (
          <div className="flex flex-wrap gap-2 border-t pt-3">
            <Button
              variant="outline"
              size="sm"
              onClick={() => setConfirming(true)}
              disabled={reason !== null}
              title={reason ?? `Switch back to ${previous?.name ?? "the previous model"}`}
              data-testid="device-rollback"
            >
              <Undo2 aria-hidden />
              Roll back
            </Button>
            <Link
              href={`/rollouts?device=${encodeURIComponent(device.id)}`}
              className={buttonClass("outline", "sm")}
              data-testid="device-new-rollout"
            >
              <Rocket aria-hidden />
              Roll out a model
            </Link>
          </div>
        ) : null}
        {reason && previous && canRollOut ? <p className="text-xs text-muted-foreground">{reason}</p> : null}
      </CardContent>
      {rollout ? (
        <RollbackDeviceDialog
          rolloutId={rollout.rolloutId}
          device={confirming ? { deviceId: device.id, deviceName: device.name } : null}
          modelLabel={active ? `${active.name}${active.version ? ` ${active.version}` : ""}` : "its model"}
          onClose={() => setConfirming(false)}
        />
      ) : null}
    </Card>
  );
}
