/** Badges for a rollout's state, a device's state in it, and its model's runtime. */
import { FlaskConical } from "lucide-react";
import type { ArtifactRuntime, RolloutDeviceState, RolloutState } from "@orchard/contracts";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { Spinner } from "@/components/ui/spinner";

const ROLLOUT_STATES: Record<RolloutState, { tone: BadgeTone; label: string; help: string }> = {
  running: { tone: "info", label: "running", help: "Sending the model to its devices, following the strategy." },
  paused: {
    tone: "warning",
    label: "paused",
    help: "No device is sent the model until an operator resumes; devices already working finish.",
  },
  completed: { tone: "success", label: "completed", help: "Every device runs the model (or was stopped by an operator)." },
  failed: { tone: "danger", label: "failed", help: "Finished, but some devices did not get the model; each says why." },
  aborted: { tone: "neutral", label: "aborted", help: "Stopped by an operator." },
};

export function RolloutStateBadge({ state }: { state: RolloutState }) {
  const s = ROLLOUT_STATES[state];
  return (
    <Badge tone={s.tone} title={s.help} data-testid="rollout-state" data-state={state}>
      {state === "running" ? <Spinner className="size-3 text-info" label="Running" /> : null}
      {s.label}
    </Badge>
  );
}

export const DEVICE_STATES: Record<RolloutDeviceState, { tone: BadgeTone; label: string; help: string }> = {
  pending: { tone: "neutral", label: "waiting", help: "Waiting for its turn, or sent and not started yet." },
  preflight: {
    tone: "info",
    label: "preflight",
    help: "Checking free disk, memory and that its runner supports the model, before downloading anything.",
  },
  downloading: { tone: "info", label: "downloading", help: "Downloading the files; an interrupted download resumes where it stopped." },
  verifying: { tone: "info", label: "verifying", help: "Checking the files' sha256 and the manifest's signature." },
  staged: { tone: "info", label: "staged", help: "The files are on disk, checked and ready; the old model still runs." },
  activating: { tone: "info", label: "activating", help: "Stopping the old model and starting the new one." },
  health_check: {
    tone: "info",
    label: "health check",
    help: "The new model loaded; running the reference prompt (and the speed floor, if set).",
  },
  active: { tone: "success", label: "active", help: "Runs the new model." },
  failed: { tone: "danger", label: "failed", help: "Stopped before switching models: the old model never stopped running." },
  rolled_back: {
    tone: "warning",
    label: "rolled back",
    help: "Switched, then went back to the previous model (a failed health check or an operator).",
  },
  aborted: { tone: "neutral", label: "aborted", help: "Stopped by an operator before switching models." },
};

/** `pending` reads "sent" once the server sent the rollout, "received" when the device itself reports it. */
export function DeviceRolloutStateBadge({
  state,
  sent,
  reported = false,
}: {
  state: RolloutDeviceState;
  sent: boolean;
  reported?: boolean;
}) {
  const s = DEVICE_STATES[state];
  const label = state === "pending" && reported ? "received" : state === "pending" && sent ? "sent" : s.label;
  return (
    <Badge tone={s.tone} title={s.help} data-testid="rollout-device-state" data-state={state}>
      {label}
    </Badge>
  );
}

export function RuntimeBadge({ runtime }: { runtime: ArtifactRuntime }) {
  return runtime === "sim" ? (
    <Badge tone="sim" title="A simulated model for demos and tests, not a real model">
      <FlaskConical aria-hidden />
      simulated
    </Badge>
  ) : (
    <Badge
      tone="outline"
      title={
        runtime === "llama.cpp" ? "A GGUF model run by llama.cpp (the llamacpp runner)" : "A .pte model run by ExecuTorch (orchard-runner)"
      }
      data-testid="artifact-runtime"
      data-runtime={runtime}
    >
      {runtime}
    </Badge>
  );
}
