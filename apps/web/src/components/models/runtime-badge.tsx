/** What runs a model: ExecuTorch or llama.cpp (real models) or the simulated runtime, labelled as such everywhere. */
import { Cpu, FlaskConical } from "lucide-react";
import type { ArtifactRuntime } from "@orchard/contracts";
import { Badge } from "@/components/ui/badge";

export function RuntimeBadge({
  runtime,
  runtimeVersion,
  profile,
}: {
  runtime: ArtifactRuntime;
  runtimeVersion: string;
  profile: string | null;
}) {
  if (runtime === "sim") {
    return (
      <Badge
        tone="sim"
        title="A simulated model for tests and demos: the sim runner pretends to run it. Not a real model."
        data-testid="model-runtime"
        data-runtime="sim"
      >
        <FlaskConical aria-hidden />
        simulated
      </Badge>
    );
  }
  return (
    <Badge
      tone="outline"
      title={
        runtime === "llama.cpp" ? "A GGUF model run by llama.cpp (the llamacpp runner)" : profile ? `Runner profile ${profile}` : undefined
      }
      data-testid="model-runtime"
      data-runtime={runtime}
    >
      <Cpu aria-hidden />
      {runtime} {runtimeVersion}
    </Badge>
  );
}
