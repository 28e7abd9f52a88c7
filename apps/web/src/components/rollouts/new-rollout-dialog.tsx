"use client";
/**
 * "New rollout": pick a model, the devices (by name and/or by tag), and the strategy
 * (canaries, batch size, concurrent downloads, failure threshold, per-device timeout,
 * retries, health check). Defaults suit a home lab; every knob says what it does.
 * The new rollout opens on its own page, where devices progress live.
 *
 * Before submit, each device says whether it can load the chosen model and why not
 * (`rollouts.preflight`, the check `rollouts.create` applies). The rollout cannot start
 * while a chosen device cannot load the model: "Leave them out" deselects those devices
 * (a tag choice becomes the list of its devices that can).
 */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Rocket } from "lucide-react";
import { useRouter } from "next/navigation";
import { useEffect, useState } from "react";
import { RolloutStrategy, type DeviceSummary, type RolloutDeviceFit } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { cn } from "@/lib/cn";
import { formatBytes } from "@/lib/format";
import { errorMessage, useTRPC } from "@/lib/trpc";

const DEFAULTS = RolloutStrategy.parse({});

interface Knobs {
  canary: string;
  batchSize: string;
  maxConcurrentDownloads: string;
  failureThreshold: string;
  timeoutHours: string;
  retries: string;
  referenceCheck: boolean;
  minDecodeTokS: string;
  healthTimeoutMinutes: string;
}

const defaultKnobs = (): Knobs => ({
  canary: String(DEFAULTS.canary),
  batchSize: String(DEFAULTS.batchSize),
  maxConcurrentDownloads: String(DEFAULTS.maxConcurrentDownloads),
  failureThreshold: String(DEFAULTS.failureThreshold),
  timeoutHours: String(DEFAULTS.deviceTimeoutMs / 3600_000),
  retries: String(DEFAULTS.retries),
  referenceCheck: DEFAULTS.health.referenceCheck,
  minDecodeTokS: "",
  healthTimeoutMinutes: String(DEFAULTS.health.timeoutMs / 60_000),
});

/** The knobs as a strategy, or the first thing wrong with them. */
export function knobsToStrategy(k: Knobs): { ok: true; strategy: RolloutStrategy } | { ok: false; error: string } {
  const int = (v: string) => (/^\d+$/.test(v.trim()) ? Number(v) : NaN);
  const num = (v: string) => (v.trim() === "" ? NaN : Number(v));
  const candidate = {
    canary: int(k.canary),
    batchSize: int(k.batchSize),
    maxConcurrentDownloads: int(k.maxConcurrentDownloads),
    failureThreshold: int(k.failureThreshold),
    deviceTimeoutMs: Math.round(num(k.timeoutHours) * 3600_000),
    retries: int(k.retries),
    health: {
      referenceCheck: k.referenceCheck,
      minDecodeTokS: k.minDecodeTokS.trim() === "" ? null : num(k.minDecodeTokS),
      timeoutMs: Math.round(num(k.healthTimeoutMinutes) * 60_000),
    },
  };
  const parsed = RolloutStrategy.safeParse(candidate);
  if (parsed.success) return { ok: true, strategy: parsed.data };
  const labels: Record<string, string> = {
    canary: "Canaries",
    batchSize: "Batch size",
    maxConcurrentDownloads: "Concurrent downloads",
    failureThreshold: "Failure threshold",
    deviceTimeoutMs: "Device timeout",
    retries: "Retries",
    "health.minDecodeTokS": "Minimum decode speed",
    "health.timeoutMs": "Health check timeout",
  };
  const issue = parsed.error.issues[0]!;
  const field = labels[issue.path.join(".")] ?? issue.path.join(".");
  return { ok: false, error: `${field}: ${issue.code === "invalid_type" ? "enter a number" : issue.message}` };
}

export function NewRolloutDialog({
  open,
  onClose,
  preselect,
}: {
  open: boolean;
  onClose: () => void;
  preselect: { artifactId: string | null; deviceIds: string[] };
}) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const router = useRouter();
  const artifacts = useQuery({ ...trpc.artifacts.list.queryOptions(), enabled: open });
  const devices = useQuery({ ...trpc.devices.list.queryOptions(), enabled: open });
  const [artifactId, setArtifactId] = useState("");
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [tags, setTags] = useState<Set<string>>(new Set());
  const [name, setName] = useState("");
  const [knobs, setKnobs] = useState<Knobs>(defaultKnobs);
  // Every device's fit for the chosen model (the whole fleet, so a device shows it before it is chosen).
  const preflight = useQuery({
    ...trpc.rollouts.preflight.queryOptions({ artifactId }),
    enabled: open && /^[0-9a-f]{64}$/.test(artifactId),
    // Devices report what they load and their RAM as they come and go.
    refetchInterval: open ? 10_000 : false,
  });
  const create = useMutation(
    trpc.rollouts.create.mutationOptions({
      onSuccess: (rollout) => {
        queryClient.setQueryData(trpc.rollouts.get.queryKey({ id: rollout.id }), rollout);
        void queryClient.invalidateQueries({ queryKey: trpc.rollouts.list.queryKey() });
        onClose();
        router.push(`/rollouts/${encodeURIComponent(rollout.id)}`);
      },
    }),
  );

  // Each opening starts from the preselection and the defaults.
  const preselectKey = `${preselect.artifactId ?? ""}|${preselect.deviceIds.join(",")}`;
  useEffect(() => {
    if (!open) return;
    setArtifactId(preselect.artifactId ?? "");
    setSelected(new Set(preselect.deviceIds));
    setTags(new Set());
    setName("");
    setKnobs(defaultKnobs());
    create.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, preselectKey]);
  // Without a preselection, the newest model.
  const firstArtifact = artifacts.data?.[0]?.id;
  useEffect(() => {
    if (open && artifactId === "" && firstArtifact) setArtifactId(firstArtifact);
  }, [open, artifactId, firstArtifact]);

  const fleet = devices.data ?? [];
  const allTags = [...new Set(fleet.flatMap((d) => d.tags))].sort();
  const targeted = fleet.filter((d) => selected.has(d.id) || d.tags.some((t) => tags.has(t)));
  const artifact = artifacts.data?.find((a) => a.id === artifactId);
  const strategy = knobsToStrategy(knobs);
  const set = (key: keyof Knobs) => (e: { target: { value: string } }) => setKnobs((k) => ({ ...k, [key]: e.target.value }));
  const toggle = (setter: typeof setSelected, value: string) =>
    setter((s) => {
      const next = new Set(s);
      if (next.has(value)) next.delete(value);
      else next.add(value);
      return next;
    });
  const fitOf = new Map((preflight.data?.artifactId === artifactId ? preflight.data.devices : []).map((f) => [f.deviceId, f]));
  const checked = targeted.every((d) => fitOf.has(d.id));
  const refused = targeted.filter((d) => fitOf.get(d.id)?.ok === false);
  const leaveOut = () => {
    const bad = new Set(refused.map((d) => d.id));
    setSelected(new Set(targeted.map((d) => d.id).filter((id) => !bad.has(id))));
    setTags(new Set());
  };
  const canStart = artifact !== undefined && targeted.length > 0 && strategy.ok && !create.isPending && checked && refused.length === 0;

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="New rollout"
      description="Devices download the model, check it, switch to it and run a health check; a device that fails switches back to its previous model."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button
            onClick={() =>
              strategy.ok &&
              create.mutate({
                artifactId,
                deviceIds: [...selected].filter((id) => fleet.some((d) => d.id === id)),
                tags: [...tags],
                strategy: strategy.strategy,
                ...(name.trim() ? { name: name.trim() } : {}),
              })
            }
            disabled={!canStart}
            data-testid="rollout-start"
          >
            {create.isPending ? <Spinner className="text-primary-foreground" label="Starting" /> : <Rocket aria-hidden />}
            {targeted.length > 0 ? `Roll out to ${targeted.length} ${targeted.length === 1 ? "device" : "devices"}` : "Roll out"}
          </Button>
        </>
      }
    >
      <div className="flex max-h-[60vh] flex-col gap-4 overflow-y-auto pr-1">
        <Field
          label="Model"
          htmlFor="rollout-model"
          hint={
            artifact
              ? `${formatBytes(artifact.totalBytes)} in ${artifact.files.length} ${artifact.files.length === 1 ? "file" : "files"}${artifact.runtime === "sim" ? " · simulated model (sim runner)" : ` · ${artifact.runtime} ${artifact.runtimeVersion}${artifact.profile ? `, profile ${artifact.profile}` : ""}`}`
              : undefined
          }
        >
          {artifacts.isError ? (
            <Alert>{errorMessage(artifacts.error)}</Alert>
          ) : (
            <select
              id="rollout-model"
              value={artifactId}
              onChange={(e) => setArtifactId(e.target.value)}
              className="h-9 w-full min-w-0 rounded-md border border-input bg-card px-2 text-sm shadow-xs focus-visible:ring-2 focus-visible:ring-ring/40 focus-visible:outline-none"
              data-testid="rollout-model"
            >
              {artifacts.isPending ? <option value="">Loading models…</option> : null}
              {artifacts.data?.length === 0 ? <option value="">No models yet: upload one on the Models page</option> : null}
              {artifacts.data?.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.name} {a.version}
                  {a.runtime === "sim" ? " (simulated)" : ""}
                </option>
              ))}
            </select>
          )}
        </Field>

        <div className="flex flex-col gap-1.5">
          <span className="text-sm font-medium" id="rollout-devices-label">
            Devices
          </span>
          {allTags.length > 0 ? (
            <div className="flex flex-wrap items-center gap-1.5" role="group" aria-label="Tags">
              <span className="text-xs text-muted-foreground">By tag:</span>
              {allTags.map((t) => (
                <button
                  key={t}
                  type="button"
                  aria-pressed={tags.has(t)}
                  onClick={() => toggle(setTags, t)}
                  className={cn(
                    "rounded-full border px-2 py-0.5 text-xs font-medium transition-colors",
                    tags.has(t) ? "border-primary bg-primary/10 text-primary" : "text-muted-foreground hover:bg-muted",
                  )}
                  data-testid="rollout-tag"
                  data-tag={t}
                >
                  {t}
                </button>
              ))}
            </div>
          ) : null}
          {devices.isPending ? (
            <p className="py-3 text-sm text-muted-foreground">Loading devices…</p>
          ) : devices.isError ? (
            <Alert>{errorMessage(devices.error)}</Alert>
          ) : fleet.length === 0 ? (
            <p className="py-3 text-sm text-muted-foreground">No devices enrolled yet.</p>
          ) : (
            <ul className="flex max-h-52 flex-col gap-1 overflow-y-auto rounded-md border p-1" aria-labelledby="rollout-devices-label">
              {fleet.map((d) => (
                <DeviceOption
                  key={d.id}
                  device={d}
                  checked={selected.has(d.id)}
                  byTag={!selected.has(d.id) && d.tags.some((t) => tags.has(t))}
                  runsIt={d.activeModel?.artifactId === artifactId && artifactId !== ""}
                  fit={fitOf.get(d.id) ?? null}
                  onToggle={() => toggle(setSelected, d.id)}
                />
              ))}
            </ul>
          )}
          {preflight.isError ? <Alert>{errorMessage(preflight.error)}</Alert> : null}
          {targeted.length > 0 && checked ? (
            <div
              className={cn(
                "flex flex-wrap items-center gap-2 rounded-md border px-3 py-2 text-sm",
                refused.length > 0 ? "border-danger/40 bg-danger/5" : "border-success/40 bg-success/5",
              )}
              role="status"
              data-testid="rollout-fit-summary"
            >
              <span className="min-w-0 flex-1">
                {targeted.length - refused.length} of {targeted.length} {targeted.length === 1 ? "device" : "devices"} can load this model.
                {refused.length > 0
                  ? ` The rollout cannot start while ${refused.length === 1 ? "a chosen device cannot" : "chosen devices cannot"} load it: leave ${refused.length === 1 ? "it" : "them"} out or choose another model.`
                  : null}
              </span>
              {refused.length > 0 && refused.length < targeted.length ? (
                <Button size="sm" variant="outline" onClick={leaveOut} data-testid="rollout-leave-out">
                  Leave out {refused.length} {refused.length === 1 ? "device" : "devices"}
                </Button>
              ) : null}
            </div>
          ) : targeted.length > 0 && preflight.isFetching ? (
            <p className="text-xs text-muted-foreground">Checking which devices can load this model…</p>
          ) : null}
          <p className="text-xs text-muted-foreground">
            Offline devices get the rollout when they connect (within the device timeout). Devices that already run the model count as done.
          </p>
        </div>

        <Field label="Name" htmlFor="rollout-name" hint="Optional; defaults to the model and the date.">
          <Input id="rollout-name" value={name} maxLength={120} onChange={(e) => setName(e.target.value)} placeholder="Rollout" />
        </Field>

        <fieldset className="flex flex-col gap-3">
          <legend className="mb-2 text-sm font-medium">Strategy</legend>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field
              label="Canaries"
              htmlFor="rollout-canary"
              hint="Devices that go first, alone; the rest waits until they all run the model. 0: none."
            >
              <Input
                id="rollout-canary"
                type="number"
                min={0}
                max={1000}
                value={knobs.canary}
                onChange={set("canary")}
                data-testid="rollout-canary"
              />
            </Field>
            <Field label="Batch size" htmlFor="rollout-batch" hint="After the canaries, devices working at once.">
              <Input
                id="rollout-batch"
                type="number"
                min={1}
                max={1000}
                value={knobs.batchSize}
                onChange={set("batchSize")}
                data-testid="rollout-batch"
              />
            </Field>
            <Field
              label="Concurrent downloads"
              htmlFor="rollout-downloads"
              hint="Devices downloading at once: the server's uplink is shared."
            >
              <Input
                id="rollout-downloads"
                type="number"
                min={1}
                max={1000}
                value={knobs.maxConcurrentDownloads}
                onChange={set("maxConcurrentDownloads")}
                data-testid="rollout-downloads"
              />
            </Field>
            <Field
              label="Failure threshold"
              htmlFor="rollout-threshold"
              hint="The rollout pauses when this many devices failed (a failed canary always pauses it)."
            >
              <Input
                id="rollout-threshold"
                type="number"
                min={1}
                max={1000}
                value={knobs.failureThreshold}
                onChange={set("failureThreshold")}
                data-testid="rollout-threshold"
              />
            </Field>
            <Field
              label="Device timeout (hours)"
              htmlFor="rollout-timeout"
              hint="A device that has not finished this long after it was sent the rollout fails."
            >
              <Input
                id="rollout-timeout"
                type="number"
                min={0.01}
                step="any"
                value={knobs.timeoutHours}
                onChange={set("timeoutHours")}
                data-testid="rollout-timeout"
              />
            </Field>
            <Field
              label="Retries"
              htmlFor="rollout-retries"
              hint="New tries for a device after a failure a retry can fix (a download, a bad hash, a load)."
            >
              <Input
                id="rollout-retries"
                type="number"
                min={0}
                max={10}
                value={knobs.retries}
                onChange={set("retries")}
                data-testid="rollout-retries"
              />
            </Field>
          </div>
          <label className="flex items-start gap-2 text-sm">
            <input
              type="checkbox"
              className="mt-0.5 size-4 accent-primary"
              checked={knobs.referenceCheck}
              onChange={(e) => setKnobs((k) => ({ ...k, referenceCheck: e.target.checked }))}
              data-testid="rollout-reference-check"
            />
            <span>
              <span className="font-medium">Reference check</span>
              <span className="block text-xs text-muted-foreground">
                After switching, run the model's reference prompt; when the model has expected token ids, they must match exactly.
              </span>
            </span>
          </label>
          <div className="grid gap-3 sm:grid-cols-2">
            <Field
              label="Minimum decode speed (tokens/s)"
              htmlFor="rollout-min-toks"
              hint="Optional: slower on the reference prompt fails the health check."
            >
              <Input
                id="rollout-min-toks"
                type="number"
                min={0}
                step="any"
                value={knobs.minDecodeTokS}
                onChange={set("minDecodeTokS")}
                placeholder="none"
              />
            </Field>
            <Field
              label="Health check timeout (minutes)"
              htmlFor="rollout-health-timeout"
              hint="Loading plus the reference prompt must finish within this."
            >
              <Input
                id="rollout-health-timeout"
                type="number"
                min={0.1}
                step="any"
                value={knobs.healthTimeoutMinutes}
                onChange={set("healthTimeoutMinutes")}
              />
            </Field>
          </div>
        </fieldset>
        {!strategy.ok ? <Alert tone="warning">{strategy.error}</Alert> : null}
        {create.isError ? <Alert>{errorMessage(create.error)}</Alert> : null}
      </div>
    </Dialog>
  );
}

function DeviceOption({
  device,
  checked,
  byTag,
  runsIt,
  fit,
  onToggle,
}: {
  device: DeviceSummary;
  checked: boolean;
  byTag: boolean;
  runsIt: boolean;
  fit: RolloutDeviceFit | null;
  onToggle: () => void;
}) {
  const lines = fit ? [...fit.reasons, ...fit.notes] : [];
  return (
    <li>
      <label
        className="flex cursor-pointer items-center gap-2.5 rounded px-2 py-1.5 text-sm hover:bg-muted/60"
        data-testid="rollout-device-option"
        data-device-id={device.id}
        data-fit={fit ? (fit.ok ? "ok" : "refused") : "unknown"}
      >
        <input type="checkbox" className="size-4 accent-primary" checked={checked || byTag} onChange={onToggle} disabled={byTag} />
        <span
          className={cn("size-2 shrink-0 rounded-full", device.online ? "bg-success" : "bg-muted-foreground/40")}
          aria-label={device.online ? "online" : "offline"}
        />
        <span className="min-w-0 flex-1 truncate font-medium">{device.name}</span>
        {byTag ? <Badge tone="outline">by tag</Badge> : null}
        {runsIt ? <Badge tone="success">runs it</Badge> : null}
        {fit && !fit.ok ? <Badge tone="danger">cannot load it</Badge> : null}
        <span className="max-w-[40%] truncate text-xs text-muted-foreground" title={device.activeModel?.name}>
          {device.activeModel
            ? `${device.activeModel.name}${device.activeModel.version ? ` ${device.activeModel.version}` : ""}`
            : "no model"}
        </span>
      </label>
      {lines.length > 0 ? (
        <ul className="flex flex-col gap-0.5 pr-2 pb-1.5 pl-[3.25rem] text-xs" data-testid="rollout-device-fit">
          {fit!.reasons.map((r) => (
            <li key={r} className="text-danger" data-testid="rollout-device-reason">
              {r}
            </li>
          ))}
          {fit!.notes.map((n) => (
            <li key={n} className="text-muted-foreground">
              {n}
            </li>
          ))}
        </ul>
      ) : null}
    </li>
  );
}
