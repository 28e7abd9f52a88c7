"use client";
/** Server version, database and broker, from system.info. */
import { useQuery } from "@tanstack/react-query";
import { Database, RadioTower } from "lucide-react";
import { cn } from "@/lib/cn";
import { useLinkState } from "@/lib/realtime";
import { useTRPC } from "@/lib/trpc";

export function SystemFooter() {
  const trpc = useTRPC();
  const info = useQuery(trpc.system.info.queryOptions(undefined, { refetchInterval: 60_000 }));
  const d = info.data;
  // While the server is unreachable, its last answer about the broker says nothing.
  const live = useLinkState() === "live";
  return (
    <footer className="border-t py-4 text-xs text-muted-foreground" data-testid="system-info">
      <div className="mx-auto flex max-w-screen-2xl flex-wrap items-center gap-x-4 gap-y-1 px-4 sm:px-6">
        <span>Orchard {d ? `v${d.version}` : ""}</span>
        {d ? (
          <>
            <span className="inline-flex items-center gap-1" title="Where fleet state and telemetry are stored">
              <Database className="size-3.5" aria-hidden />
              {d.db === "pglite" ? "embedded database (PGlite)" : "PostgreSQL"}
            </span>
            <span className="inline-flex items-center gap-1" title={d.broker.url}>
              <RadioTower className="size-3.5" aria-hidden />
              {d.broker.embedded ? "embedded MQTT broker" : "external MQTT broker"}
              <span className="hidden font-mono sm:inline">{d.broker.url}</span>
              {live ? (
                <span className={cn(d.broker.connected ? "text-success" : "font-medium text-danger")}>
                  {d.broker.connected ? "connected" : "disconnected"}
                </span>
              ) : (
                <span>status unknown</span>
              )}
            </span>
          </>
        ) : null}
      </div>
    </footer>
  );
}
