"use client";
/**
 * "Compare runtimes": one device (online, ready, running a model that came from a
 * rollout, so it can be put back) and two or more models, each with its runtime badge.
 * One click starts the comparison; its page follows the steps live.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Scale } from "lucide-react";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { BENCH_DEFAULT_MAX_NEW_TOKENS, type DeviceSummary } from "@orchard/contracts";
import { BackendBadge } from "@/components/fleet/runner-status";
import { RuntimeBadge } from "@/components/models/runtime-badge";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { chatAvailability } from "@/lib/chat-device";
import { cn } from "@/lib/cn";
import { errorMessage, useTRPC } from "@/lib/trpc";

/** Why a device cannot be compared on now, or null. */
function unavailable(d: DeviceSummary): string | null {
  const a = chatAvailability(d);
  if (!a.ok) return a.label;
  if (!d.activeModel?.artifactId) return "model not from a rollout";
  return null;
}

export function CompareRuntimesDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const devices = useQuery({ ...trpc.devices.list.queryOptions(), enabled: open });
  const models = useQuery({ ...trpc.artifacts.list.queryOptions(), enabled: open });
  const [deviceId, setDeviceId] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [maxTokens, setMaxTokens] = useState(String(BENCH_DEFAULT_MAX_NEW_TOKENS));
  const start = useMutation(
    trpc.bench.compareRuntimes.mutationOptions({
      onSuccess: (c) => {
        void queryClient.invalidateQueries({ queryKey: trpc.bench.comparisons.queryKey() });
        onClose();
        router.push(`/benchmarks/compare/${encodeURIComponent(c.id)}`);
      },
    }),
  );

  useEffect(() => {
    if (!open) return;
    setDeviceId("");
    setChosen([]);
    setMaxTokens(String(BENCH_DEFAULT_MAX_NEW_TOKENS));
    start.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);

  const device = devices.data?.find((d) => d.id === deviceId) ?? null;
  // The device's own model first, preselected: it is what the others are compared against.
  useEffect(() => {
    const current = device?.activeModel?.artifactId;
    if (current) setChosen((c) => (c.includes(current) ? c : [current, ...c]));
  }, [device?.activeModel?.artifactId]);

  const tokens = Number(maxTokens);
  const tokensValid = Number.isInteger(tokens) && tokens >= 1 && tokens <= 2048;
  const toggle = (id: string) => setChosen((c) => (c.includes(id) ? c.filter((x) => x !== id) : [...c, id]));

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Compare runtimes"
      description="The device runs the standard benchmark on each model in turn: Orchard rolls each model out to it (health gate on), benchmarks it, and puts the device's own model back at the end, also when a step fails or you cancel."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button
            onClick={() => start.mutate({ deviceId, artifactIds: chosen, maxNewTokens: tokens })}
            disabled={!device || chosen.length < 2 || !tokensValid || start.isPending}
            data-testid="compare-start"
          >
            {start.isPending ? <Spinner className="text-primary-foreground" label="Starting" /> : <Scale aria-hidden />}
            {chosen.length >= 2 ? `Compare ${chosen.length} models` : "Choose two or more models"}
          </Button>
        </>
      }
    >
      <div className="flex flex-col gap-4">
        <Field label="Device" htmlFor="compare-device">
          <select
            id="compare-device"
            className="h-9 rounded-md border bg-background px-2 text-sm"
            value={deviceId}
            onChange={(e) => setDeviceId(e.target.value)}
            data-testid="compare-device"
          >
            <option value="">{devices.isPending ? "Loading devices…" : "Choose a device"}</option>
            {(devices.data ?? []).map((d) => {
              const why = unavailable(d);
              return (
                <option key={d.id} value={d.id} disabled={why !== null}>
                  {d.name}
                  {d.activeModel ? ` · ${d.activeModel.name}` : ""}
                  {why ? ` (${why})` : ""}
                </option>
              );
            })}
          </select>
        </Field>
        {device?.runner ? (
          <p className="-mt-2 flex items-center gap-2 text-xs text-muted-foreground">
            Runs now: <BackendBadge backend={device.runner.backend} /> {device.activeModel?.name}
          </p>
        ) : null}
        <div className="flex flex-col gap-1.5">
          <span className="text-sm font-medium" id="compare-models-label">
            Models <span className="font-normal text-muted-foreground">(the first one chosen is A; the others are compared with it)</span>
          </span>
          {models.isError ? (
            <Alert>{errorMessage(models.error)}</Alert>
          ) : (
            <ul className="flex max-h-64 flex-col gap-1 overflow-y-auto rounded-md border p-1" aria-labelledby="compare-models-label">
              {(models.data ?? []).map((m) => {
                const index = chosen.indexOf(m.id);
                return (
                  <li key={m.id}>
                    <label
                      className={cn("flex cursor-pointer items-center gap-2.5 rounded px-2 py-1.5 text-sm hover:bg-muted/60")}
                      data-testid="compare-model-option"
                      data-artifact-id={m.id}
                    >
                      <input type="checkbox" className="size-4 accent-primary" checked={index >= 0} onChange={() => toggle(m.id)} />
                      <span className="w-5 shrink-0 text-xs font-semibold text-muted-foreground">
                        {index >= 0 ? String.fromCharCode(65 + index) : ""}
                      </span>
                      <span className="min-w-0 flex-1 truncate font-medium">
                        {m.name} {m.version}
                      </span>
                      {device?.activeModel?.artifactId === m.id ? <span className="text-xs text-muted-foreground">running</span> : null}
                      <RuntimeBadge runtime={m.runtime} runtimeVersion={m.runtimeVersion} profile={m.profile} />
                    </label>
                  </li>
                );
              })}
              {models.data?.length === 0 ? <li className="p-2 text-sm text-muted-foreground">No models uploaded yet.</li> : null}
            </ul>
          )}
        </div>
        <Field label="Max new tokens" htmlFor="compare-max-tokens" hint="Per prompt, for every model.">
          <Input
            id="compare-max-tokens"
            type="number"
            min={1}
            max={2048}
            value={maxTokens}
            aria-invalid={!tokensValid}
            onChange={(e) => setMaxTokens(e.target.value)}
            data-testid="compare-max-tokens"
          />
        </Field>
        {start.isError ? <Alert>{errorMessage(start.error)}</Alert> : null}
      </div>
    </Dialog>
  );
}
