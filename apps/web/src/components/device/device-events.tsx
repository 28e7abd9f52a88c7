"use client";
/** What happened on the device lately: runner state changes, runner exits (with stderr), command results, rollout steps. */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { CircleCheck, CircleX, History, Power, RefreshCw, Rocket } from "lucide-react";
import Link from "next/link";
import type { DeviceEvent } from "@orchard/contracts";
import { BackendBadge, RunnerStateBadge } from "@/components/fleet/runner-status";
import { DeviceRolloutStateBadge } from "@/components/rollouts/rollout-badges";
import { Alert } from "@/components/ui/alert";
import { Card, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { formatDateTime, formatDuration, formatRelative } from "@/lib/format";
import { useDeviceWatch, useSocketEvent } from "@/lib/realtime";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";

const LIMIT = 30;

export function DeviceEvents({ deviceId }: { deviceId: string }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const queryOptions = trpc.devices.events.queryOptions({ id: deviceId, limit: LIMIT });
  const events = useQuery(queryOptions);
  // New events arrive live over socket.io; the query only loads the history.
  useDeviceWatch(deviceId);
  useSocketEvent("device:event", (message) => {
    // Download progress is shown on the rollout's page; here it would crowd out everything else.
    if (message.deviceId !== deviceId || message.event.kind === "rollout.progress") return;
    queryClient.setQueryData(queryOptions.queryKey, (prev) => [message, ...(prev ?? [])].slice(0, LIMIT));
  });
  const now = useNow();

  return (
    <Card>
      <CardHeader>
        <CardTitle className="flex items-center gap-2">
          <History className="size-4 text-muted-foreground" aria-hidden />
          Recent events
        </CardTitle>
      </CardHeader>
      {events.isPending ? (
        <LoadingBlock label="Loading events…" />
      ) : events.isError ? (
        <div className="px-5 pb-5">
          <Alert>{errorMessage(events.error)}</Alert>
        </div>
      ) : events.data.length === 0 ? (
        <EmptyState icon={History} title="No events yet">
          Runner starts, crashes and command results appear here.
        </EmptyState>
      ) : (
        <ol className="divide-y border-t" data-testid="device-events">
          {events.data
            .filter(({ event }) => event.kind !== "rollout.progress")
            .map(({ event }, i) => (
              <li
                key={`${event.ts}-${event.kind}-${i}`}
                className="flex gap-3 px-5 py-3 text-sm"
                data-testid="device-event"
                data-kind={event.kind}
              >
                <EventIcon event={event} />
                <div className="flex min-w-0 flex-1 flex-col gap-1">
                  <EventBody event={event} />
                </div>
                <time className="shrink-0 text-xs whitespace-nowrap text-muted-foreground" title={formatDateTime(event.ts)}>
                  {now === 0 ? "" : formatRelative(event.ts, Math.max(now, event.ts))}
                </time>
              </li>
            ))}
        </ol>
      )}
    </Card>
  );
}

function EventIcon({ event }: { event: DeviceEvent }) {
  const cls = "mt-0.5 size-4 shrink-0";
  switch (event.kind) {
    case "runner.state":
      return <RefreshCw className={`${cls} text-muted-foreground`} aria-hidden />;
    case "runner.exit":
      return <Power className={`${cls} text-danger`} aria-hidden />;
    case "command.result":
      return event.ok ? (
        <CircleCheck className={`${cls} text-success`} aria-hidden />
      ) : (
        <CircleX className={`${cls} text-danger`} aria-hidden />
      );
    case "rollout.state":
    case "rollout.progress":
      return (
        <Rocket
          className={`${cls} ${event.state === "failed" || event.state === "rolled_back" ? "text-danger" : event.state === "active" ? "text-success" : "text-muted-foreground"}`}
          aria-hidden
        />
      );
    default:
      return <History className={`${cls} text-muted-foreground`} aria-hidden />;
  }
}

function EventBody({ event }: { event: DeviceEvent }) {
  switch (event.kind) {
    case "runner.state":
      return (
        <>
          <div className="flex flex-wrap items-center gap-1.5">
            <span>Runner</span>
            <RunnerStateBadge runner={event.runner} />
            <BackendBadge backend={event.runner.backend} />
            {event.runner.model ? <span className="truncate text-muted-foreground">{event.runner.model}</span> : null}
          </div>
          {event.runner.lastError && (event.runner.state === "crashed" || event.runner.state === "crash_loop") ? (
            <p className="text-xs break-words text-danger">{event.runner.lastError}</p>
          ) : null}
        </>
      );
    case "runner.exit":
      return (
        <>
          <span>
            Runner exited
            {event.code !== null ? ` with code ${event.code}` : ""}
            {event.signal ? ` (signal ${event.signal})` : ""}; restart in {formatDuration(event.restartInMs)}
          </span>
          {event.stderrTail.trim() ? (
            <details className="text-xs">
              <summary className="cursor-pointer text-muted-foreground select-none">Last stderr lines</summary>
              <pre className="mt-1 max-h-48 overflow-auto rounded-md bg-muted p-2 font-mono text-[0.75rem] whitespace-pre-wrap">
                {event.stderrTail}
              </pre>
            </details>
          ) : null}
        </>
      );
    case "command.result":
      return (
        <span className="break-words">
          Command {event.ok ? "succeeded" : "failed"}
          {event.message ? `: ${event.message}` : ""}
        </span>
      );
    case "rollout.state":
      return (
        <>
          <div className="flex flex-wrap items-center gap-1.5">
            <Link href={`/rollouts/${encodeURIComponent(event.rolloutId)}`} className="hover:underline">
              Rollout
            </Link>
            <DeviceRolloutStateBadge state={event.state} sent reported />
          </div>
          {event.error ? (
            <p
              className={`text-xs break-words ${event.error.code === "rolled_back" || event.error.code === "aborted" ? "text-muted-foreground" : "text-danger"}`}
            >
              {event.error.message} <span className="font-mono">({event.error.code})</span>
            </p>
          ) : null}
        </>
      );
    default:
      return <span className="text-muted-foreground">{event.kind}</span>;
  }
}
