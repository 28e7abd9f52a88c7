"use client";
/** The runtime comparisons on the Benchmarks page (live through `bench:comparison`); hidden until there is one. */
import { useQuery, useQueryClient } from "@tanstack/react-query";
import Link from "next/link";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime } from "@/lib/format";
import { useSocketEvent } from "@/lib/realtime";
import { useTRPC } from "@/lib/trpc";

const TONES: Record<string, BadgeTone> = { running: "info", completed: "success", failed: "danger", cancelled: "neutral" };

export function RuntimeComparisons() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const list = useQuery(trpc.bench.comparisons.queryOptions());
  useSocketEvent("bench:comparison", (c) => {
    queryClient.setQueryData(trpc.bench.comparisons.queryKey(), (rows) => {
      if (!rows) return rows;
      return rows.some((r) => r.id === c.id) ? rows.map((r) => (r.id === c.id ? c : r)) : [c, ...rows];
    });
  });
  if (!list.data || list.data.length === 0) return null;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Runtime comparisons</CardTitle>
        <CardDescription>
          One device, several models benchmarked in turn; the device&apos;s own model is put back at the end.
        </CardDescription>
      </CardHeader>
      <Table stack data-testid="comparisons" aria-label="Runtime comparisons">
        <TableHeader>
          <TableRow>
            <TableHead>Name</TableHead>
            <TableHead>Device</TableHead>
            <TableHead>Models</TableHead>
            <TableHead>State</TableHead>
            <TableHead>Step</TableHead>
            <TableHead>Created</TableHead>
          </TableRow>
        </TableHeader>
        <TableBody className="max-lg:px-5 max-lg:pb-5">
          {list.data.map((c) => (
            <TableRow key={c.id} data-testid="comparison-row-link" data-state={c.state}>
              <TableCell className="font-medium break-all">
                <Link href={`/benchmarks/compare/${encodeURIComponent(c.id)}`} className="hover:underline">
                  {c.name}
                </Link>
              </TableCell>
              <TableCell label="Device">{c.deviceName}</TableCell>
              <TableCell label="Models">{c.steps.map((s) => `${s.name} (${s.runtime})`).join(" · ")}</TableCell>
              <TableCell label="State">
                <Badge tone={TONES[c.state] ?? "neutral"}>{c.state}</Badge>
              </TableCell>
              <TableCell label="Step" className="text-muted-foreground">
                {c.stepText}
              </TableCell>
              <TableCell label="Created" className="whitespace-nowrap">
                {formatDateTime(c.createdAt)}
              </TableCell>
            </TableRow>
          ))}
        </TableBody>
      </Table>
    </Card>
  );
}
