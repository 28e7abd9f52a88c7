/** The runner's state and backend as badges. A `sim` backend is always labelled as simulated; `llamacpp` shows as llama.cpp. */
import { Cpu, FlaskConical } from "lucide-react";
import type { RunnerBackend, RunnerState, RunnerStatus } from "@orchard/contracts";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { NotAvailable } from "./not-available";

const STATES: Record<RunnerState, { tone: BadgeTone; label: string; help: string }> = {
  ready: { tone: "success", label: "ready", help: "The runner has loaded its model and is serving." },
  starting: { tone: "info", label: "starting", help: "The runner was started and is loading." },
  stopped: { tone: "neutral", label: "stopped", help: "Not running (no model configured, or stopped on purpose)." },
  crashed: { tone: "warning", label: "crashed", help: "The runner exited unexpectedly; the agent will restart it." },
  crash_loop: { tone: "danger", label: "crash loop", help: "The runner keeps crashing; restarts are slowed right down." },
};

export const SIM_HELP = "sim backend: simulated output for demos and tests, not a real model";

export function RunnerStateBadge({ runner }: { runner: RunnerStatus }) {
  const s = STATES[runner.state];
  const title = runner.lastError ? `${s.help}\nLast error: ${runner.lastError}` : s.help;
  return (
    <Badge tone={s.tone} title={title} data-testid="runner-state" data-state={runner.state}>
      {s.label}
    </Badge>
  );
}

export function BackendBadge({ backend }: { backend: RunnerBackend }) {
  if (backend === "sim") {
    return (
      <Badge tone="sim" title={SIM_HELP} data-testid="runner-backend" data-backend="sim">
        <FlaskConical aria-hidden />
        simulated
      </Badge>
    );
  }
  const llama = backend === "llamacpp";
  return (
    <Badge
      tone="outline"
      title={llama ? "llama.cpp backend: a real GGUF model (node-llama-cpp)" : "ExecuTorch backend: a real on-device model"}
      data-testid="runner-backend"
      data-backend={backend}
    >
      <Cpu aria-hidden />
      {llama ? "llama.cpp" : backend}
    </Badge>
  );
}

export function RunnerSummary({ runner }: { runner: RunnerStatus | null }) {
  if (!runner) return <NotAvailable reason="the device has not reported a runner yet" />;
  return (
    <span className="inline-flex flex-wrap items-center justify-end gap-1 lg:justify-start">
      <RunnerStateBadge runner={runner} />
      <BackendBadge backend={runner.backend} />
    </span>
  );
}

/** The model in use: the active model, or what the runner says it loaded; flagged when the backend is simulated. */
export function ModelName({ model, runner }: { model: string | null; runner: RunnerStatus | null }) {
  const name = model ?? runner?.model ?? null;
  if (!name) return <NotAvailable reason="no model reported" />;
  return (
    <span className="inline-flex max-w-full items-center gap-1.5">
      <span className="truncate" title={name}>
        {name}
      </span>
      {runner?.backend === "sim" ? (
        <Badge tone="sim" title={SIM_HELP} className="px-1.5">
          sim
        </Badge>
      ) : null}
    </span>
  );
}
