"use client";
/**
 * "Run benchmark": choose devices (those that can run it now; the others are shown
 * with the reason), a name and max new tokens, see the prompt set, start. The new
 * run opens on its own page, where results arrive live.
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Gauge } from "lucide-react";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { BENCH_DEFAULT_MAX_NEW_TOKENS, BENCH_STANDARD_PROMPTS } from "@orchard/contracts";
import { BackendBadge } from "@/components/fleet/runner-status";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { chatAvailability } from "@/lib/chat-device";
import { cn } from "@/lib/cn";
import { errorMessage, useTRPC } from "@/lib/trpc";

export function RunBenchmarkDialog({ open, onClose, preselect }: { open: boolean; onClose: () => void; preselect: string[] }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const devices = useQuery({ ...trpc.devices.list.queryOptions(), enabled: open });
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [name, setName] = useState("");
  const [maxTokens, setMaxTokens] = useState(String(BENCH_DEFAULT_MAX_NEW_TOKENS));
  const create = useMutation(
    trpc.bench.create.mutationOptions({
      onSuccess: (run) => {
        queryClient.setQueryData(trpc.bench.get.queryKey({ id: run.id }), run);
        void queryClient.invalidateQueries({ queryKey: trpc.bench.list.queryKey() });
        onClose();
        router.push(`/benchmarks/${encodeURIComponent(run.id)}`);
      },
    }),
  );

  // Each opening starts from the preselected devices and the defaults.
  const preselectKey = preselect.join(",");
  useEffect(() => {
    if (!open) return;
    setSelected(new Set(preselect));
    setName("");
    setMaxTokens(String(BENCH_DEFAULT_MAX_NEW_TOKENS));
    create.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, preselectKey]);

  const rows = (devices.data ?? [])
    .map((d) => ({ device: d, availability: chatAvailability(d) }))
    .sort((a, b) => Number(b.availability.ok) - Number(a.availability.ok) || a.device.name.localeCompare(b.device.name));
  const selectable = rows.filter((r) => r.availability.ok).map((r) => r.device.id);
  // A preselected device that cannot run now stays unchecked (the server would fail it at once).
  const chosen = selectable.filter((id) => selected.has(id));
  const allChosen = selectable.length > 0 && chosen.length === selectable.length;
  const tokens = Number(maxTokens);
  const tokensValid = Number.isInteger(tokens) && tokens >= 1 && tokens <= 2048;

  const toggle = (id: string) =>
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Run benchmark"
      description="Each device runs the standard prompt set one prompt after another, between chats, and reports its timings."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button
            onClick={() => create.mutate({ deviceIds: chosen, maxNewTokens: tokens, ...(name.trim() ? { name: name.trim() } : {}) })}
            disabled={chosen.length === 0 || !tokensValid || create.isPending}
            data-testid="bench-start"
          >
            {create.isPending ? <Spinner className="text-primary-foreground" label="Starting" /> : <Gauge aria-hidden />}
            {chosen.length > 0 ? `Run on ${chosen.length} ${chosen.length === 1 ? "device" : "devices"}` : "Run"}
          </Button>
        </>
      }
    >
      <div className="flex flex-col gap-4">
        <div className="flex flex-col gap-1.5">
          <div className="flex items-center justify-between gap-2">
            <span className="text-sm font-medium" id="bench-devices-label">
              Devices
            </span>
            <Button
              variant="ghost"
              size="sm"
              disabled={selectable.length === 0}
              onClick={() => setSelected(allChosen ? new Set() : new Set(selectable))}
              data-testid="bench-select-all"
            >
              {allChosen ? "Select none" : `Select all online (${selectable.length})`}
            </Button>
          </div>
          {devices.isPending ? (
            <p className="py-3 text-sm text-muted-foreground">Loading devices…</p>
          ) : devices.isError ? (
            <Alert>{errorMessage(devices.error)}</Alert>
          ) : rows.length === 0 ? (
            <p className="py-3 text-sm text-muted-foreground">No devices enrolled yet.</p>
          ) : (
            <ul className="flex max-h-64 flex-col gap-1 overflow-y-auto rounded-md border p-1" aria-labelledby="bench-devices-label">
              {rows.map(({ device, availability }) => (
                <li key={device.id}>
                  <label
                    className={cn(
                      "flex items-center gap-2.5 rounded px-2 py-1.5 text-sm",
                      availability.ok ? "cursor-pointer hover:bg-muted/60" : "cursor-not-allowed opacity-60",
                    )}
                    title={availability.ok ? undefined : availability.reason}
                    data-testid="bench-device-option"
                    data-device-id={device.id}
                    data-available={availability.ok}
                  >
                    <input
                      type="checkbox"
                      className="size-4 accent-primary"
                      disabled={!availability.ok}
                      checked={availability.ok && selected.has(device.id)}
                      onChange={() => toggle(device.id)}
                    />
                    <span className="min-w-0 flex-1 truncate font-medium">{device.name}</span>
                    {device.runner ? <BackendBadge backend={device.runner.backend} /> : null}
                    {availability.ok ? null : <Badge tone="neutral">{availability.label}</Badge>}
                  </label>
                </li>
              ))}
            </ul>
          )}
        </div>
        <div className="grid gap-4 sm:grid-cols-[1fr_8rem]">
          <Field label="Name" htmlFor="bench-name" hint="Optional; defaults to the date and time.">
            <Input id="bench-name" value={name} maxLength={120} onChange={(e) => setName(e.target.value)} placeholder="Benchmark" />
          </Field>
          <Field label="Max new tokens" htmlFor="bench-max-tokens" hint="Per prompt.">
            <Input
              id="bench-max-tokens"
              type="number"
              min={1}
              max={2048}
              value={maxTokens}
              aria-invalid={!tokensValid}
              onChange={(e) => setMaxTokens(e.target.value)}
              data-testid="bench-max-tokens"
            />
          </Field>
        </div>
        <div className="flex flex-col gap-1.5">
          <span className="text-sm font-medium">Prompt set</span>
          <ol className="flex flex-col gap-1 text-xs text-muted-foreground" data-testid="bench-prompt-set">
            {BENCH_STANDARD_PROMPTS.map((p) => (
              <li key={p.id} className="flex gap-2" title={p.text}>
                <span className="shrink-0 font-mono text-foreground">{p.id}</span>
                <span className="truncate">{p.text}</span>
              </li>
            ))}
          </ol>
        </div>
        {create.isError ? <Alert>{errorMessage(create.error)}</Alert> : null}
      </div>
    </Dialog>
  );
}
