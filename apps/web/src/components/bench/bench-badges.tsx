/** Badges for a run's and a device's benchmark state. */
import type { BenchDeviceRunDto, BenchRunDto } from "@orchard/contracts";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { Spinner } from "@/components/ui/spinner";

export function RunStateBadge({ state }: { state: BenchRunDto["state"] }) {
  return state === "running" ? (
    <Badge tone="info" data-testid="bench-run-state" data-state="running">
      <Spinner className="size-3 text-info" label="Running" />
      running
    </Badge>
  ) : (
    <Badge tone="neutral" data-testid="bench-run-state" data-state="finished">
      finished
    </Badge>
  );
}

const DEVICE_STATES: Record<BenchDeviceRunDto["state"], { tone: BadgeTone; label: string; help: string }> = {
  pending: { tone: "neutral", label: "waiting", help: "Sent; the device has not started it yet (it may be finishing a chat)." },
  running: { tone: "info", label: "running", help: "The device is running the prompts." },
  done: { tone: "success", label: "done", help: "Every prompt ran; the results are below." },
  failed: { tone: "danger", label: "failed", help: "The device could not finish; the reason is shown." },
};

export function DeviceRunStateBadge({ state }: { state: BenchDeviceRunDto["state"] }) {
  const s = DEVICE_STATES[state];
  return (
    <Badge tone={s.tone} title={s.help}>
      {s.label}
    </Badge>
  );
}
