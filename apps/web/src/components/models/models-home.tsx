"use client";
/**
 * The Models page: every model on the server (name, version, runtime — simulated ones
 * labelled —, size, files, when it was added, which devices run it or keep it for a
 * rollback, live from the fleet), "Upload model", "Register by URL", and delete.
 */
import { useQuery } from "@tanstack/react-query";
import { Boxes, Link2, Trash2, Upload } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import type { DeviceSummary } from "@orchard/contracts";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { EmptyState } from "@/components/ui/empty-state";
import { QueryList } from "@/components/ui/query-list";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import type { ArtifactDto } from "@orchard/client";
import { formatBytes, formatDateTime, formatRelative } from "@/lib/format";
import { useTRPC } from "@/lib/trpc";
import { useNow } from "@/lib/use-now";
import { useCan } from "@/lib/use-role";
import { AddModelDialog, type AddModelMode } from "./add-model-dialog";
import { DeleteModelDialog, type ModelRef } from "./delete-model-dialog";
import { RuntimeBadge } from "./runtime-badge";

interface DeviceUse {
  device: DeviceSummary;
  role: "active" | "previous";
}

/** Devices that run each model or keep it for a rollback, from the live fleet (updated over socket.io). */
function usesByArtifact(devices: DeviceSummary[] | undefined): Map<string, DeviceUse[]> {
  const out = new Map<string, DeviceUse[]>();
  const add = (id: string | null | undefined, use: DeviceUse) => {
    if (!id) return;
    out.set(id, [...(out.get(id) ?? []), use]);
  };
  for (const device of devices ?? []) {
    add(device.activeModel?.artifactId, { device, role: "active" });
    add(device.previousModel?.artifactId, { device, role: "previous" });
  }
  return out;
}

export function ModelsHome() {
  const trpc = useTRPC();
  const models = useQuery(trpc.artifacts.list.queryOptions());
  const devices = useQuery(trpc.devices.list.queryOptions());
  const signingKey = useQuery(trpc.artifacts.signingKey.queryOptions());
  const now = useNow();
  const [adding, setAdding] = useState<AddModelMode | null>(null);
  const [deleting, setDeleting] = useState<ModelRef | null>(null);
  // A viewer sees the models; adding or deleting one is not offered (the server refuses it anyway).
  const canEdit = useCan("operator");
  const uses = usesByArtifact(devices.data);
  const when = (ts: number) => (now === 0 ? formatDateTime(ts) : formatRelative(ts, Math.max(now, ts)));

  return (
    <div className="flex flex-col gap-5">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h1 className="text-2xl font-semibold tracking-tight">Models</h1>
          <p className="max-w-2xl text-sm text-muted-foreground">
            Model files and their signed manifests, ready to roll out. The server keeps each file once, by its sha256, and signs every
            manifest with its own key, so devices only run models that came through it.
            {signingKey.data ? (
              <>
                {" "}
                Signing key <span className="font-mono text-xs">{signingKey.data.keyId}</span>.
              </>
            ) : null}
          </p>
        </div>
        {canEdit ? (
          <div className="flex flex-wrap gap-2">
            <Button variant="outline" onClick={() => setAdding("url")} data-testid="models-register-url">
              <Link2 aria-hidden />
              Register by URL
            </Button>
            <Button onClick={() => setAdding("upload")} data-testid="models-upload">
              <Upload aria-hidden />
              Upload model
            </Button>
          </div>
        ) : null}
      </div>
      <Card>
        <CardHeader>
          <CardTitle>Models</CardTitle>
          <CardDescription>
            Newest first. A model a device runs, keeps for a rollback, or a running rollout uses cannot be deleted.
          </CardDescription>
        </CardHeader>
        <QueryList
          query={models}
          loading="Loading models…"
          empty={
            <EmptyState
              icon={Boxes}
              title="No models yet"
              action={
                canEdit ? (
                  <Button variant="outline" onClick={() => setAdding("upload")}>
                    Upload model
                  </Button>
                ) : null
              }
            >
              Upload a model and its tokenizer files from this computer, register one by URL, or push one from a terminal with{" "}
              <span className="font-mono text-xs">orchard artifact push</span>.
            </EmptyState>
          }
        >
          {(items) => (
            <Table stack data-testid="models" aria-label="Models">
              <TableHeader>
                <TableRow>
                  <TableHead>Model</TableHead>
                  <TableHead>Runtime</TableHead>
                  <TableHead>Size</TableHead>
                  <TableHead>Files</TableHead>
                  <TableHead>Devices</TableHead>
                  <TableHead>Added</TableHead>
                  <TableHead>
                    <span className="sr-only">Actions</span>
                  </TableHead>
                </TableRow>
              </TableHeader>
              <TableBody className="max-lg:px-5 max-lg:pb-5">
                {items.map((m) => (
                  <ModelRow
                    key={m.id}
                    model={m}
                    uses={uses.get(m.id) ?? []}
                    added={when(m.createdAt)}
                    onDelete={canEdit ? () => setDeleting({ id: m.id, name: m.name, version: m.version }) : undefined}
                  />
                ))}
              </TableBody>
            </Table>
          )}
        </QueryList>
      </Card>
      <AddModelDialog mode={canEdit ? adding : null} onClose={() => setAdding(null)} />
      <DeleteModelDialog model={deleting} onClose={() => setDeleting(null)} />
    </div>
  );
}

function ModelRow({
  model: m,
  uses,
  added,
  onDelete,
}: {
  model: ArtifactDto;
  uses: DeviceUse[];
  added: string;
  /** Absent when the signed-in role may not delete models. */
  onDelete?: () => void;
}) {
  return (
    <TableRow data-testid="model-row" data-artifact-id={m.id} data-name={m.name} data-version={m.version}>
      <TableCell className="max-lg:mb-1 max-lg:border-b max-lg:pb-2">
        <div className="flex flex-col">
          <span className="font-medium break-all">
            {m.name} <span className="text-muted-foreground">{m.version}</span>
          </span>
          <span className="font-mono text-xs text-muted-foreground" title={`Artifact id (sha256 of the signed manifest): ${m.id}`}>
            {m.id.slice(0, 12)}
          </span>
        </div>
      </TableCell>
      <TableCell label="Runtime">
        <div className="flex flex-wrap items-center gap-1.5">
          <RuntimeBadge runtime={m.runtime} runtimeVersion={m.runtimeVersion} profile={m.profile} />
          {m.profile ? <span className="text-xs text-muted-foreground">{m.profile}</span> : null}
        </div>
      </TableCell>
      <TableCell label="Size" className="whitespace-nowrap tabular-nums">
        {formatBytes(m.totalBytes)}
      </TableCell>
      <TableCell label="Files">
        <details className="text-xs">
          <summary className="cursor-pointer text-sm" data-testid="model-files">
            {m.files.length} {m.files.length === 1 ? "file" : "files"}
          </summary>
          <ul className="mt-1 flex flex-col gap-0.5 text-left">
            {m.files.map((f) => (
              <li key={f.name} className="flex gap-2">
                <span className="font-mono">{f.name}</span>
                <span className="text-muted-foreground">
                  {f.role} · {formatBytes(f.size)} ·{" "}
                  <span className="font-mono" title={`sha256 ${f.sha256}`}>
                    {f.sha256.slice(0, 8)}
                  </span>
                </span>
              </li>
            ))}
          </ul>
          {m.reference ? (
            <p className="mt-1 text-muted-foreground" title={m.reference.expectedTokenIds?.join(", ") ?? undefined}>
              Reference check: “{m.reference.prompt}”
              {m.reference.expectedTokenIds ? ` → ${m.reference.expectedTokenIds.length} expected ids` : " (generates at all)"}
            </p>
          ) : null}
        </details>
      </TableCell>
      <TableCell label="Devices">
        {uses.length === 0 ? (
          <span className="text-muted-foreground">—</span>
        ) : (
          <ul className="flex flex-wrap gap-1" data-testid="model-devices">
            {uses.map(({ device, role }) => (
              <li key={`${device.id}-${role}`}>
                <Link href={`/devices/${encodeURIComponent(device.id)}`} className="hover:underline" data-role={role}>
                  <Badge tone={role === "active" ? (device.online ? "success" : "neutral") : "outline"}>
                    {device.name}
                    {role === "previous" ? " (previous)" : null}
                  </Badge>
                </Link>
              </li>
            ))}
          </ul>
        )}
      </TableCell>
      <TableCell label="Added" className="whitespace-nowrap">
        <div className="flex flex-col items-end lg:items-start">
          <span title={formatDateTime(m.createdAt)}>{added}</span>
          <span className="text-xs text-muted-foreground">via {m.source === "cli" ? "CLI" : m.source === "url" ? "URL" : "upload"}</span>
        </div>
      </TableCell>
      <TableCell className="max-lg:mt-1 max-lg:border-t max-lg:pt-2 lg:text-right">
        {onDelete ? (
          <Button variant="ghost" size="sm" className="text-danger hover:bg-danger/10" onClick={onDelete} data-testid="model-delete">
            <Trash2 aria-hidden />
            Delete
          </Button>
        ) : null}
      </TableCell>
    </TableRow>
  );
}
