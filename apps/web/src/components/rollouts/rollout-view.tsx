"use client";
/**
 * One rollout: its state and why it paused, the actions, the strategy it follows,
 * and every device live (state, bytes, rate, time left, try, error).
 */
import { useQuery } from "@tanstack/react-query";
import { ArrowLeft, Rocket } from "lucide-react";
import Link from "next/link";
import { useEffect, useState } from "react";
import type { RolloutDeviceDto, RolloutDto, RolloutStrategy } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { formatDateTime, formatDuration } from "@/lib/format";
import { useLinkState } from "@/lib/realtime";
import { errorCode, errorMessage, useTRPC } from "@/lib/trpc";
import { RollbackDeviceDialog, RolloutActions } from "./rollout-actions";
import { RolloutStateBadge, RuntimeBadge } from "./rollout-badges";
import { RolloutCountsText, RolloutDevices } from "./rollout-progress";
import { useRolloutsSync } from "./use-rollouts-sync";

function BackToRollouts() {
  return (
    <Link href="/rollouts" className="inline-flex items-center gap-1 text-sm text-muted-foreground hover:text-foreground">
      <ArrowLeft className="size-4" aria-hidden />
      Rollouts
    </Link>
  );
}

/** The strategy as short phrases, for people. */
export function strategyPhrases(s: RolloutStrategy): string[] {
  return [
    s.canary === 0 ? "no canary" : `${s.canary} ${s.canary === 1 ? "canary" : "canaries"} first`,
    `then ${s.batchSize} at a time`,
    `at most ${s.maxConcurrentDownloads} ${s.maxConcurrentDownloads === 1 ? "download" : "downloads"} at once`,
    `pauses after ${s.failureThreshold} failed ${s.failureThreshold === 1 ? "device" : "devices"}`,
    `${formatDuration(s.deviceTimeoutMs)} per device`,
    s.retries === 0 ? "no retries" : `${s.retries} ${s.retries === 1 ? "retry" : "retries"}`,
    s.health.referenceCheck ? "reference check" : "no reference check",
    s.health.minDecodeTokS === null ? "no speed floor" : `at least ${s.health.minDecodeTokS} tokens/s`,
  ];
}

export function RolloutView({ id }: { id: string }) {
  useRolloutsSync();
  const trpc = useTRPC();
  const rollout = useQuery(trpc.rollouts.get.queryOptions({ id }));
  const link = useLinkState();
  const [rollingBack, setRollingBack] = useState<RolloutDeviceDto | null>(null);

  const name = rollout.data?.name;
  useEffect(() => {
    if (name) document.title = `${name} · Orchard`;
  }, [name]);

  if (rollout.isPending) return <LoadingBlock label="Loading rollout…" />;
  if (rollout.isError) {
    return (
      <div className="flex flex-col gap-4">
        <BackToRollouts />
        {errorCode(rollout.error) === "NOT_FOUND" ? (
          <Card data-testid="rollout-missing">
            <EmptyState icon={Rocket} title="No such rollout">
              There is no rollout with id {id}. Rollouts are deleted with their model.
            </EmptyState>
          </Card>
        ) : (
          <Alert>{errorMessage(rollout.error)}</Alert>
        )}
      </div>
    );
  }

  const r: RolloutDto = rollout.data;
  const waitingForCanaries =
    r.state === "running" && r.devices.some((d) => d.canary && d.state !== "active") && r.devices.some((d) => !d.canary && !d.sent);

  return (
    <div className="flex flex-col gap-5" data-testid="rollout" data-rollout-id={r.id} data-state={r.state}>
      <BackToRollouts />
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div className="flex min-w-0 flex-col gap-1">
          <div className="flex flex-wrap items-center gap-2">
            <h1 className="text-2xl font-semibold tracking-tight break-all">{r.name}</h1>
            <RolloutStateBadge state={r.state} />
          </div>
          <p className="flex flex-wrap items-center gap-x-1.5 gap-y-1 text-sm text-muted-foreground">
            <span>
              {r.artifactName} {r.artifactVersion}
            </span>
            <RuntimeBadge runtime={r.artifactRuntime} />
            <span>· started {formatDateTime(r.createdAt)}</span>
            {r.finishedAt !== null ? <span>· ended {formatDateTime(r.finishedAt)}</span> : null}
          </p>
        </div>
        <RolloutActions rollout={r} />
      </div>

      {r.state === "paused" && r.pausedReason ? (
        <Alert tone="warning">
          <span className="font-medium">Paused: </span>
          <span data-testid="rollout-paused-reason">{r.pausedReason}</span>
        </Alert>
      ) : null}
      {link === "reconnecting" ? <Alert tone="warning">Live updates paused: reconnecting to the server…</Alert> : null}

      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,2fr)_minmax(0,1fr)]">
        <Card>
          <CardHeader>
            <CardTitle>Devices</CardTitle>
            <CardDescription>
              <RolloutCountsText counts={r.counts} />
              {waitingForCanaries ? " · the others wait until the canaries run the model" : null}
            </CardDescription>
          </CardHeader>
          <CardContent>
            <RolloutDevices rollout={r} onRollback={setRollingBack} />
          </CardContent>
        </Card>
        <Card>
          <CardHeader>
            <CardTitle>Strategy</CardTitle>
            <CardDescription>How devices are chosen, and when the rollout stops by itself.</CardDescription>
          </CardHeader>
          <CardContent>
            <ul className="flex flex-col gap-1 text-sm" data-testid="rollout-strategy">
              {strategyPhrases(r.strategy).map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
            <p className="mt-3 font-mono text-xs break-all text-muted-foreground" title="Model (artifact) id">
              {r.artifactId}
            </p>
          </CardContent>
        </Card>
      </div>
      <RollbackDeviceDialog
        rolloutId={r.id}
        device={rollingBack}
        modelLabel={`${r.artifactName} ${r.artifactVersion}`}
        onClose={() => setRollingBack(null)}
      />
    </div>
  );
}
