"use client";
/**
 * The audit log page (admins): who did what, newest first, filtered by action or by who did it, a page at a time.
 * Each entry reads as a sentence (lib/audit-sentence.ts); its action name and target stay beside it for filtering.
 */
import { useInfiniteQuery } from "@tanstack/react-query";
import { ScrollText } from "lucide-react";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { Field, Input } from "@/components/ui/input";
import { LoadingBlock, Spinner } from "@/components/ui/spinner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { selectClass } from "@/components/users/users-panel";
import { formatDateTime } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan, useMe } from "@/lib/use-role";

import { AUDIT_ACTIONS as ACTIONS, type AuditAction as Action } from "@orchard/client";
import { auditSentence } from "@/lib/audit-sentence";

const PAGE = 100;

export function AuditLog() {
  const trpc = useTRPC();
  const me = useMe();
  const isAdmin = useCan("admin");
  const [action, setAction] = useState<Action | "">("");
  const [actor, setActor] = useState("");
  const filter = { limit: PAGE, ...(action ? { action } : {}), ...(actor.trim() ? { actor: actor.trim() } : {}) };
  const events = useInfiniteQuery(
    trpc.audit.list.infiniteQueryOptions(filter, {
      enabled: isAdmin,
      getNextPageParam: (last) => last.nextCursor ?? undefined,
    }),
  );
  if (me.isSuccess && !isAdmin) return <Alert>The audit log needs the admin role; you are signed in as {me.data.role}.</Alert>;
  const items = events.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <div className="flex flex-col gap-5">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">Audit log</h1>
        <p className="max-w-2xl text-sm text-muted-foreground">
          Who signed in, enrolled, renamed or deleted devices, rolled out or deleted models, managed users, sessions and API keys, and which
          sign-ins were locked out.
        </p>
      </div>
      <Card>
        <CardHeader>
          <CardTitle>Events</CardTitle>
          <CardDescription>Newest first.</CardDescription>
        </CardHeader>
        <CardContent className="grid gap-3 sm:grid-cols-2">
          <Field label="Action" htmlFor="audit-action">
            <select
              id="audit-action"
              value={action}
              onChange={(e) => setAction(e.target.value as Action | "")}
              className={selectClass}
              data-testid="audit-action"
            >
              <option value="">All actions</option>
              {ACTIONS.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Who" htmlFor="audit-actor" hint="A username, exactly.">
            <Input id="audit-actor" value={actor} maxLength={64} onChange={(e) => setActor(e.target.value)} data-testid="audit-actor" />
          </Field>
        </CardContent>
        {events.isPending ? (
          <LoadingBlock label="Loading events…" />
        ) : events.isError ? (
          <div className="px-5 pb-5">
            <Alert>{errorMessage(events.error)}</Alert>
          </div>
        ) : items.length === 0 ? (
          <EmptyState icon={ScrollText} title="Nothing recorded">
            No event matches.
          </EmptyState>
        ) : (
          <>
            <Table stack data-testid="audit-events" aria-label="Audit events">
              <TableHeader>
                <TableRow>
                  <TableHead>When</TableHead>
                  <TableHead>What happened</TableHead>
                  <TableHead>Action</TableHead>
                  <TableHead>Target</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody className="max-lg:px-5 max-lg:pb-5">
                {items.map((e) => (
                  <TableRow key={e.id} data-testid="audit-row" data-action={e.action}>
                    <TableCell className="whitespace-nowrap max-lg:mb-1 max-lg:border-b max-lg:pb-2">{formatDateTime(e.at)}</TableCell>
                    <TableCell label="What happened">
                      <span data-testid="audit-sentence">{auditSentence(e)}</span>{" "}
                      <span className="text-xs text-muted-foreground">(via {e.actor.via.replaceAll("_", " ")})</span>
                    </TableCell>
                    <TableCell label="Action" className="font-mono text-xs">
                      {e.action}
                    </TableCell>
                    <TableCell label="Target" className="break-all">
                      {e.target.type}
                      {e.target.id ? <span className="font-mono text-xs"> {e.target.id}</span> : null}
                    </TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
            {events.hasNextPage ? (
              <div className="px-5 pb-5">
                <Button
                  variant="outline"
                  onClick={() => void events.fetchNextPage()}
                  disabled={events.isFetchingNextPage}
                  data-testid="audit-more"
                >
                  {events.isFetchingNextPage ? <Spinner label="Loading" /> : null}
                  Older events
                </Button>
              </div>
            ) : null}
          </>
        )}
      </Card>
    </div>
  );
}
