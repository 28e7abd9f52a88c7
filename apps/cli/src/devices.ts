/** `orchard devices`: the fleet as a terminal table. */
import type { DeviceSummary } from "@orchard/contracts";
import { ago, bytes, table } from "./format.ts";

export function deviceRows(devices: DeviceSummary[], now = Date.now()): string {
  return table(
    ["NAME", "ID", "STATUS", "LAST SEEN", "AGENT", "RUNNER", "MODEL", "CPU", "TEMP", "MEM USED", "DISK FREE"],
    devices.map((d) => {
      const t = d.telemetry;
      const runner = d.runner ? `${d.runner.state} (${d.runner.backend})` : "—";
      return [
        d.name,
        d.id,
        d.online ? "online" : "offline",
        ago(d.lastSeenAt, now),
        d.agentVersion ?? "—",
        runner,
        d.activeModel?.name ?? (d.runner?.backend === "sim" ? "sim (no model)" : "—"),
        t?.cpuPercent != null ? `${t.cpuPercent.toFixed(0)}%` : "—",
        t?.socTempC != null ? `${t.socTempC.toFixed(1)}°C` : "—",
        t ? `${bytes(t.memTotalBytes - t.memAvailableBytes)}/${bytes(t.memTotalBytes)}` : "—",
        bytes(t?.diskFreeBytes),
      ];
    }),
  );
}
