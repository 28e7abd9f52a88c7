"use client";
/** Your sessions (browsers signed in as you): when each began and was last used, from where; end one, or all but this one. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { LogOut, MonitorSmartphone } from "lucide-react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { QueryList } from "@/components/ui/query-list";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime, formatRelative } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";

const BROWSERS: [RegExp, string][] = [
  [/Edg\/(\d+)/, "Edge"],
  [/Firefox\/(\d+)/, "Firefox"],
  [/HeadlessChrome\/(\d+)/, "Headless Chrome"],
  [/Chrom(?:e|ium)\/(\d+)/, "Chrome"],
  [/Version\/(\d+).*Safari/, "Safari"],
];
const SYSTEMS: [RegExp, string][] = [
  [/Android/, "Android"],
  [/iPhone|iPad/, "iOS"],
  [/Windows/, "Windows"],
  [/Mac OS X/, "macOS"],
  [/Linux/, "Linux"],
];

/** "Chrome 131 on Linux" style, from a User-Agent (the raw string is the cell's title); anything else as it came, cut short. */
export function describeUserAgent(ua: string | null): string {
  if (!ua) return "unknown browser";
  for (const [re, name] of BROWSERS) {
    const m = re.exec(ua);
    if (!m) continue;
    const os = SYSTEMS.find(([r]) => r.test(ua))?.[1];
    return `${name} ${m[1]}${os ? ` on ${os}` : ""}`;
  }
  return ua.length > 40 ? `${ua.slice(0, 40)}…` : ua;
}

export function SessionList() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const sessions = useQuery(trpc.account.sessions.queryOptions());
  const now = useNow();
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));
  const refresh = () => void queryClient.invalidateQueries({ queryKey: trpc.account.sessions.queryKey() });
  const revoke = useMutation(trpc.account.revokeSession.mutationOptions({ onSettled: refresh }));
  const revokeOthers = useMutation(trpc.account.revokeOtherSessions.mutationOptions({ onSettled: refresh }));
  const others = (sessions.data ?? []).filter((s) => !s.current).length;

  return (
    <Card>
      <CardHeader>
        <CardTitle>Sessions</CardTitle>
        <CardDescription>
          Where you are signed in. Ending a session signs that browser out at its next request. Changing your password ends every session
          but this one.
        </CardDescription>
      </CardHeader>
      <QueryList
        query={sessions}
        loading="Loading sessions…"
        empty={
          <EmptyState icon={MonitorSmartphone} title="No sessions">
            You are not signed in with a browser (an API key has no sessions).
          </EmptyState>
        }
      >
        {(items) => (
          <Table stack data-testid="account-sessions" aria-label="Sessions">
            <TableHeader>
              <TableRow>
                <TableHead>Browser</TableHead>
                <TableHead>Address</TableHead>
                <TableHead>Signed in</TableHead>
                <TableHead>Last used</TableHead>
                <TableHead>
                  <span className="sr-only">Actions</span>
                </TableHead>
              </TableRow>
            </TableHeader>
            <TableBody className="max-lg:px-5 max-lg:pb-5">
              {items.map((s) => (
                <TableRow key={s.id} data-testid="account-session" data-current={s.current ? "true" : "false"}>
                  <TableCell className="font-medium max-lg:mb-1 max-lg:border-b max-lg:pb-2">
                    <span title={s.userAgent ?? undefined}>{describeUserAgent(s.userAgent)}</span>
                    {s.current ? (
                      <Badge tone="success" className="ml-2" data-testid="account-session-current">
                        this session
                      </Badge>
                    ) : null}
                  </TableCell>
                  <TableCell label="Address" className="font-mono text-xs">
                    {s.ip ?? <span className="font-sans text-muted-foreground">not recorded</span>}
                  </TableCell>
                  <TableCell label="Signed in" className="whitespace-nowrap">
                    <span title={formatDateTime(s.createdAt)}>{when(s.createdAt)}</span>
                  </TableCell>
                  <TableCell label="Last used" className="whitespace-nowrap">
                    <span title={formatDateTime(s.lastSeenAt)}>{when(s.lastSeenAt)}</span>
                  </TableCell>
                  <TableCell className="max-lg:mt-1 max-lg:border-t max-lg:pt-2 lg:text-right">
                    {s.current ? (
                      <span className="text-xs text-muted-foreground">sign out to end it</span>
                    ) : (
                      <Button
                        variant="ghost"
                        size="sm"
                        className="text-danger hover:bg-danger/10"
                        onClick={() => revoke.mutate({ id: s.id })}
                        disabled={revoke.isPending}
                        data-testid="account-session-revoke"
                      >
                        <LogOut aria-hidden />
                        End
                      </Button>
                    )}
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </QueryList>
      <CardContent className="flex flex-col gap-3">
        {revoke.isError ? <Alert>{errorMessage(revoke.error)}</Alert> : null}
        {revokeOthers.isError ? <Alert>{errorMessage(revokeOthers.error)}</Alert> : null}
        {revokeOthers.isSuccess ? (
          <Alert tone="info">
            {revokeOthers.data.count === 0
              ? "No other session was open."
              : `${revokeOthers.data.count} ${revokeOthers.data.count === 1 ? "session" : "sessions"} ended.`}
          </Alert>
        ) : null}
        <div>
          <Button
            variant="outline"
            onClick={() => revokeOthers.mutate()}
            disabled={others === 0 || revokeOthers.isPending}
            data-testid="account-sessions-revoke-others"
          >
            <LogOut aria-hidden />
            Sign out everywhere else{others > 0 ? ` (${others})` : ""}
          </Button>
        </div>
      </CardContent>
    </Card>
  );
}
