/**
 * Raspberry Pi throttling (vcgencmd get_throttled): a strong badge for what is
 * happening now, a quiet one for what happened since boot, a dash where the
 * machine has no vcgencmd.
 */
import { Zap } from "lucide-react";
import type { ThrottleFlags } from "@orchard/contracts";
import { Badge } from "@/components/ui/badge";
import { NotAvailable } from "./not-available";

const NOW: { key: keyof ThrottleFlags; label: string; severe: boolean }[] = [
  { key: "underVoltage", label: "under-voltage", severe: true },
  { key: "throttled", label: "throttled", severe: true },
  { key: "armFreqCapped", label: "freq capped", severe: false },
  { key: "softTempLimit", label: "soft temp limit", severe: false },
];

const SINCE_BOOT: { key: keyof ThrottleFlags; label: string }[] = [
  { key: "underVoltageOccurred", label: "under-voltage" },
  { key: "throttledOccurred", label: "throttled" },
  { key: "armFreqCappedOccurred", label: "freq capped" },
  { key: "softTempLimitOccurred", label: "soft temp limit" },
];

export function throttleIssuesNow(flags: ThrottleFlags | null | undefined): boolean {
  return !!flags && NOW.some((f) => flags[f.key] === true);
}

export function ThrottleBadge({ flags }: { flags: ThrottleFlags | null | undefined }) {
  if (flags === null || flags === undefined) return <NotAvailable reason="not available on this device (no vcgencmd)" />;
  const raw = `get_throttled=0x${flags.raw.toString(16)}`;
  const now = NOW.filter((f) => flags[f.key] === true);
  const past = SINCE_BOOT.filter((f) => flags[f.key] === true);
  const pastText = past.length > 0 ? `\nSince boot: ${past.map((p) => p.label).join(", ")}` : "";
  if (now.length > 0) {
    const first = now[0]!;
    const severe = now.some((f) => f.severe);
    return (
      <Badge
        tone={severe ? "danger" : "warning"}
        title={`Now: ${now.map((f) => f.label).join(", ")}${pastText}\n${raw}`}
        data-testid="throttle"
        data-throttle="now"
      >
        <Zap aria-hidden />
        {first.label}
        {now.length > 1 ? ` +${now.length - 1}` : ""}
      </Badge>
    );
  }
  if (past.length > 0) {
    return (
      <Badge
        tone="outline"
        title={`Not now, but since boot: ${past.map((p) => p.label).join(", ")}\n${raw}`}
        data-testid="throttle"
        data-throttle="occurred"
      >
        {past[0]!.label} earlier
      </Badge>
    );
  }
  return (
    <span
      className="text-muted-foreground"
      title={`No throttling or under-voltage since boot\n${raw}`}
      data-testid="throttle"
      data-throttle="none"
    >
      none
    </span>
  );
}
