"use client";
/**
 * The keys that exist (never the keys themselves: a prefix to recognise them), each revocable after a confirmation;
 * for admins, also the bootstrap key from ORCHARD_API_KEY when it is set (it has no row and is not revocable here).
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { KeyRound, Trash2 } from "lucide-react";
import { useEffect, useState } from "react";
import { Button } from "@/components/ui/button";
import { ConfirmDialog } from "@/components/ui/confirm-dialog";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { QueryList } from "@/components/ui/query-list";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { cn } from "@/lib/cn";
import { formatDateTime, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";

type ApiKey = RouterOutputs["apiKeys"]["list"][number];

export function ApiKeyList({ highlightId }: { highlightId: string | null }) {
  const trpc = useTRPC();
  const keys = useQuery(trpc.apiKeys.list.queryOptions());
  const bootstrap = useQuery(trpc.apiKeys.bootstrap.queryOptions());
  const now = useNow();
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));

  return (
    <Card>
      <CardHeader>
        <CardTitle>Keys</CardTitle>
        <CardDescription>Revoking a key stops it at once; scripts using it get 401 Unauthorized.</CardDescription>
      </CardHeader>
      {bootstrap.data ? (
        <div
          className="mx-5 mb-4 flex flex-col gap-1 rounded-md border border-warning/40 bg-warning/5 px-3 py-2 text-sm"
          data-testid="api-key-bootstrap"
        >
          <div className="flex flex-wrap items-center gap-x-2 gap-y-1">
            <KeyRound aria-hidden className="size-4 text-warning" />
            <span className="font-medium">Bootstrap key</span>
            <span className="text-muted-foreground">
              from <span className="font-mono text-xs">ORCHARD_API_KEY</span> · admin
              {bootstrap.data.last4 ? (
                <>
                  {" "}
                  · ends in <span className="font-mono text-xs">…{bootstrap.data.last4}</span>
                </>
              ) : null}{" "}
              · {bootstrap.data.lastUsedAt === null ? "not used since the server started" : `last used ${when(bootstrap.data.lastUsedAt)}`}
            </span>
          </div>
          <p className="text-xs text-muted-foreground">
            It cannot be revoked here: unset <span className="font-mono">ORCHARD_API_KEY</span> and restart the server to end it.
          </p>
        </div>
      ) : null}
      <QueryList
        query={keys}
        loading="Loading keys…"
        empty={
          <EmptyState icon={KeyRound} title={bootstrap.data ? "No other API keys yet" : "No API keys yet"}>
            Create one to use the CLI or an OpenAI client against this server.
          </EmptyState>
        }
      >
        {(items) => (
          <Table stack data-testid="api-keys" aria-label="API keys">
            <TableHeader>
              <TableRow>
                <TableHead>Name</TableHead>
                <TableHead>Key</TableHead>
                <TableHead>Owner</TableHead>
                <TableHead>Created</TableHead>
                <TableHead>Last used</TableHead>
                <TableHead>
                  <span className="sr-only">Actions</span>
                </TableHead>
              </TableRow>
            </TableHeader>
            <TableBody className="max-lg:px-5 max-lg:pb-5">
              {items.map((k) => (
                <TableRow key={k.id} data-testid="api-key-row" data-key-id={k.id} className={cn(k.id === highlightId && "bg-primary/5")}>
                  <TableCell className="font-medium break-all max-lg:mb-1 max-lg:border-b max-lg:pb-2">{k.name}</TableCell>
                  <TableCell label="Key">
                    <span className="font-mono text-xs" title="The start of the key, to recognise it">
                      {k.prefix}…
                    </span>
                  </TableCell>
                  <TableCell label="Owner">{k.owner}</TableCell>
                  <TableCell label="Created" className="whitespace-nowrap">
                    <span title={formatDateTime(k.createdAt)}>{when(k.createdAt)}</span>
                  </TableCell>
                  <TableCell label="Last used" className="whitespace-nowrap">
                    {k.lastUsedAt === null ? (
                      <span className="text-muted-foreground">never</span>
                    ) : (
                      <span title={formatDateTime(k.lastUsedAt)}>{when(k.lastUsedAt)}</span>
                    )}
                  </TableCell>
                  <TableCell className="max-lg:mt-1 max-lg:border-t max-lg:pt-2 lg:text-right">
                    <Button
                      variant="ghost"
                      size="sm"
                      className="text-danger hover:bg-danger/10"
                      onClick={() => setRevoking(k)}
                      data-testid="api-key-revoke"
                    >
                      <Trash2 aria-hidden />
                      Revoke
                    </Button>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </QueryList>
      <RevokeDialog apiKey={revoking} onClose={() => setRevoking(null)} />
    </Card>
  );
}

function RevokeDialog({ apiKey, onClose }: { apiKey: ApiKey | null; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const revoke = useMutation(
    trpc.apiKeys.revoke.mutationOptions({
      onSuccess: (_, input) => {
        queryClient.setQueryData(trpc.apiKeys.list.queryKey(), (rows) => rows?.filter((r) => r.id !== input.id));
        onClose();
      },
    }),
  );
  useEffect(() => {
    if (apiKey) revoke.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [apiKey?.id]);

  return (
    <ConfirmDialog
      open={apiKey !== null}
      onClose={onClose}
      title={`Revoke “${apiKey?.name ?? ""}”?`}
      description={
        <>
          The key <span className="font-mono text-xs">{apiKey?.prefix}…</span> stops working immediately. This cannot be undone.
        </>
      }
      confirmLabel="Revoke key"
      pendingLabel="Revoking"
      pending={revoke.isPending}
      error={revoke.isError ? errorMessage(revoke.error) : null}
      onConfirm={() => apiKey && revoke.mutate({ id: apiKey.id })}
      confirmTestId="api-key-revoke-confirm"
    />
  );
}
