import { Badge } from "@/components/ui/badge";
import { cn } from "@/lib/cn";

/** online/offline. Its text is exactly "online" or "offline" (the e2e test reads it). */
export function DeviceStatusBadge({ online, testId = "device-status" }: { online: boolean; testId?: string }) {
  return (
    <Badge tone={online ? "success" : "neutral"} data-testid={testId} data-online={online}>
      <span aria-hidden className={cn("size-1.5 rounded-full", online ? "bg-success" : "bg-muted-foreground/60")} />
      {online ? "online" : "offline"}
    </Badge>
  );
}
