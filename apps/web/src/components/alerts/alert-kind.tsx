/** How each alert kind looks: a label and an icon, in a badge coloured by how urgent it is. */
import { Gauge, HardDrive, RotateCcw, Thermometer, WifiOff, Zap, type LucideIcon } from "lucide-react";
import type { AlertKind } from "@orchard/contracts";
import { Badge, type BadgeTone } from "@/components/ui/badge";

export const ALERT_KIND_INFO: Record<AlertKind, { label: string; icon: LucideIcon; tone: BadgeTone; help: string }> = {
  offline: { label: "Offline", icon: WifiOff, tone: "danger", help: "The device stopped reporting (last will, or silent too long)." },
  throttled: { label: "Throttled", icon: Gauge, tone: "warning", help: "The firmware is throttling the CPU now." },
  under_voltage: { label: "Under-voltage", icon: Zap, tone: "danger", help: "The power supply is below spec now." },
  temperature: { label: "Temperature", icon: Thermometer, tone: "danger", help: "The SoC is above the temperature threshold." },
  disk_low: { label: "Disk low", icon: HardDrive, tone: "warning", help: "Free disk is below the threshold." },
  crash_loop: { label: "Crash loop", icon: RotateCcw, tone: "danger", help: "The runner keeps crashing; restarts are slowed down." },
};

/** A cleared alert is shown quietly (outline), an active one in its colour. */
export function AlertKindBadge({ kind, active = true }: { kind: AlertKind; active?: boolean }) {
  const { label, icon: Icon, tone, help } = ALERT_KIND_INFO[kind];
  return (
    <Badge tone={active ? tone : "outline"} title={help} data-testid="alert-kind" data-kind={kind}>
      <Icon aria-hidden />
      {label}
    </Badge>
  );
}
