/** What runs a model: ExecuTorch (a real model) or the simulated runtime, labelled as such everywhere. */
import { Cpu, FlaskConical } from "lucide-react";
import { Badge } from "@/components/ui/badge";

export function RuntimeBadge({
  runtime,
  runtimeVersion,
  profile,
}: {
  runtime: "sim" | "executorch";
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
    <Badge tone="outline" title={profile ? `Runner profile ${profile}` : undefined} data-testid="model-runtime" data-runtime={runtime}>
      <Cpu aria-hidden />
      {runtime} {runtimeVersion}
    </Badge>
  );
}
