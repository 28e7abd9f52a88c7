"use client";
/** Tokens created but not used yet; each can be revoked. Expired ones drop out as their time passes. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Ticket, X } from "lucide-react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock, Spinner } from "@/components/ui/spinner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";

export function PendingTokens() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const now = useNow();
  const pending = useQuery(trpc.enrollment.listPending.queryOptions(undefined, { refetchInterval: 30_000 }));
  const revoke = useMutation(
    trpc.enrollment.revoke.mutationOptions({
      onSettled: () => queryClient.invalidateQueries({ queryKey: trpc.enrollment.listPending.queryKey() }),
    }),
  );
  const rows = (pending.data ?? []).filter((t) => now === 0 || t.expiresAt > now);

  return (
    <Card>
      <CardHeader>
        <CardTitle>Pending tokens</CardTitle>
        <CardDescription>Created and not used yet. Revoke a token you handed out by mistake.</CardDescription>
      </CardHeader>
      {revoke.isError ? (
        <div className="px-5 pb-3">
          <Alert>{errorMessage(revoke.error)}</Alert>
        </div>
      ) : null}
      {pending.isPending ? (
        <LoadingBlock label="Loading tokens…" />
      ) : pending.isError ? (
        <CardContent>
          <Alert>{errorMessage(pending.error)}</Alert>
        </CardContent>
      ) : rows.length === 0 ? (
        <EmptyState icon={Ticket} title="No pending tokens" />
      ) : (
        <Table data-testid="pending-tokens">
          <TableHeader>
            <TableRow>
              <TableHead>Device name</TableHead>
              <TableHead>Created</TableHead>
              <TableHead>Expires</TableHead>
              <TableHead className="w-0" />
            </TableRow>
          </TableHeader>
          <TableBody>
            {rows.map((t) => (
              <TableRow key={t.id} data-testid="pending-token" data-token-id={t.id}>
                <TableCell>{t.deviceName ?? <span className="text-muted-foreground">hostname of the Pi</span>}</TableCell>
                <TableCell className="whitespace-nowrap" title={formatDateTime(t.createdAt)}>
                  {now === 0 ? "" : formatRelative(t.createdAt, Math.max(now, t.createdAt))}
                </TableCell>
                <TableCell className="whitespace-nowrap" title={formatDateTime(t.expiresAt)}>
                  {now === 0 ? "" : formatRelative(t.expiresAt, now)}
                </TableCell>
                <TableCell className="text-right">
                  <Button
                    variant="ghost"
                    size="sm"
                    className="text-danger hover:bg-danger/10"
                    disabled={revoke.isPending && revoke.variables.id === t.id}
                    onClick={() => revoke.mutate({ id: t.id })}
                    data-testid="revoke-token"
                  >
                    {revoke.isPending && revoke.variables.id === t.id ? <Spinner label="Revoking" /> : <X aria-hidden />}
                    Revoke
                  </Button>
                </TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </Card>
  );
}
