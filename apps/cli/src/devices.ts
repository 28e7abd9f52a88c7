/**
 * `orchard devices`: the fleet as a terminal table. The two token rates are the dashboard's
 * (docs/metrics.md, Token rates): GENERATING NOW (tokens streamed per second over the last
 * telemetry interval, 0 while idle) and DECODE SPEED (decode tok/s of the answers finished
 * in the last minute), both in tok/s.
 */
import { DECODE_SPEED, GENERATING_NOW, TOKEN_RATE_UNIT, type DeviceSummary } from "@orchard/contracts";
import { ago, bytes, table } from "./format.ts";

/** Column headings, from the shared labels: "GENERATING NOW TOK/S", "DECODE SPEED TOK/S". */
export const GENERATING_HEADING = `${GENERATING_NOW.label} ${TOKEN_RATE_UNIT}`.toUpperCase();
export const DECODE_HEADING = `${DECODE_SPEED.label} ${TOKEN_RATE_UNIT}`.toUpperCase();

const rate = (v: number | null | undefined) => (v == null ? "—" : v.toFixed(1));

export function deviceRows(devices: DeviceSummary[], now = Date.now()): string {
  return table(
    [
      "NAME",
      "ID",
      "STATUS",
      "LAST SEEN",
      "AGENT",
      "RUNNER",
      "MODEL",
      GENERATING_HEADING,
      DECODE_HEADING,
      "CPU",
      "TEMP",
      "MEM USED",
      "DISK FREE",
    ],
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
        // An offline device's figures are its last report, not now.
        d.online ? rate(d.generatingTokensPerSecond) : "—",
        d.online ? rate(t?.tokensPerSecond) : "—",
        t?.cpuPercent != null ? `${t.cpuPercent.toFixed(0)}%` : "—",
        t?.socTempC != null ? `${t.socTempC.toFixed(1)}°C` : "—",
        t ? `${bytes(t.memTotalBytes - t.memAvailableBytes)}/${bytes(t.memTotalBytes)}` : "—",
        bytes(t?.diskFreeBytes),
      ];
    }),
  );
}
