"use client";
/** Every alert, active and cleared, newest start first, a page at a time: when it started, cleared, and how long it lasted. */
import { useInfiniteQuery } from "@tanstack/react-query";
import { History } from "lucide-react";
import Link from "next/link";
import type { AlertDto } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime, formatDuration, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { AlertKindBadge } from "./alert-kind";

const PAGE = 50;

export function AlertHistory({ deviceId }: { deviceId?: string }) {
  const trpc = useTRPC();
  const history = useInfiniteQuery(
    trpc.alerts.list.infiniteQueryOptions({ deviceId, limit: PAGE }, { getNextPageParam: (last) => last.nextCursor ?? undefined }),
  );
  const now = useNow();

  if (history.isPending) return <LoadingBlock label="Loading alert history…" />;
  if (history.isError) {
    return (
      <div className="px-5 pb-5">
        <Alert>{errorMessage(history.error)}</Alert>
      </div>
    );
  }
  const rows = history.data.pages.flatMap((p) => p.items);
  if (rows.length === 0) {
    return (
      <EmptyState icon={History} title="No alerts yet">
        Alerts that open and clear are kept here.
      </EmptyState>
    );
  }
  return (
    <>
      <Table stack data-testid="alert-history" aria-label="Alert history">
        <TableHeader>
          <TableRow>
            <TableHead>Started</TableHead>
            {deviceId ? null : <TableHead>Device</TableHead>}
            <TableHead>Kind</TableHead>
            <TableHead>What</TableHead>
            <TableHead>Cleared</TableHead>
            <TableHead>Duration</TableHead>
          </TableRow>
        </TableHeader>
        <TableBody className="max-lg:px-5 max-lg:pb-5">
          {rows.map((a) => (
            <HistoryRow key={a.id} alert={a} now={now} showDevice={!deviceId} />
          ))}
        </TableBody>
      </Table>
      {history.hasNextPage ? (
        <div className="flex justify-center border-t px-5 py-3">
          <Button variant="outline" size="sm" onClick={() => void history.fetchNextPage()} disabled={history.isFetchingNextPage}>
            {history.isFetchingNextPage ? "Loading…" : "Load older alerts"}
          </Button>
        </div>
      ) : null}
    </>
  );
}

function HistoryRow({ alert: a, now, showDevice }: { alert: AlertDto; now: number; showDevice: boolean }) {
  const active = a.clearedAt === null;
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));
  const end = a.clearedAt ?? (now === 0 ? null : Math.max(now, a.startedAt));
  return (
    <TableRow data-testid="alert-history-row" data-kind={a.kind} data-device-id={a.deviceId} data-active={active}>
      <TableCell label="Started" className="whitespace-nowrap">
        <span title={formatDateTime(a.startedAt)}>{when(a.startedAt)}</span>
      </TableCell>
      {showDevice ? (
        <TableCell label="Device">
          <Link href={`/devices/${encodeURIComponent(a.deviceId)}`} className="font-medium break-all hover:underline">
            {a.deviceName}
          </Link>
        </TableCell>
      ) : null}
      <TableCell label="Kind">
        <AlertKindBadge kind={a.kind} active={active} />
      </TableCell>
      <TableCell label="What" className="text-muted-foreground lg:max-w-md">
        <span className="break-words">{a.message}</span>
      </TableCell>
      <TableCell label="Cleared" className="whitespace-nowrap">
        {a.clearedAt === null ? <Badge tone="danger">active</Badge> : <span title={formatDateTime(a.clearedAt)}>{when(a.clearedAt)}</span>}
      </TableCell>
      <TableCell label="Duration" className="whitespace-nowrap">
        {end === null ? "" : `${formatDuration(end - a.startedAt)}${active ? " so far" : ""}`}
      </TableCell>
    </TableRow>
  );
}
