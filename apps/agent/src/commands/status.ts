/** `orchard-agent status`: what the agent on this data dir is doing, from agent.json and state.json. */
import { formatBytes } from "@orchard/format";
import { loadAgentFile, publicMqttUrl } from "../config/agent-file.js";
import type { StatusCommand } from "../config/cli.js";
import { dataPaths } from "../config/paths.js";
import { type AgentStateFile, readStateFile } from "../state/state-file.js";

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user (e.g. the orchard service user).
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ago(ms: number | null, now: number): string {
  if (ms === null) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

export interface StatusReport {
  enrolled: true;
  deviceId: string;
  name: string;
  serverUrl: string;
  mqttUrl: string;
  enrolledAt: string;
  /** Whether an agent process for this data dir is running now. */
  running: boolean;
  state: AgentStateFile | null;
}

export async function statusReport(dataDir: string): Promise<StatusReport> {
  const paths = dataPaths(dataDir);
  const agent = await loadAgentFile(paths.dir);
  const state = await readStateFile(paths.stateFile);
  return {
    enrolled: true,
    deviceId: agent.deviceId,
    name: agent.name,
    serverUrl: agent.serverUrl,
    mqttUrl: publicMqttUrl(agent.mqtt.url),
    enrolledAt: agent.enrolledAt,
    running: state !== null && state.running && processAlive(state.pid),
    state,
  };
}

export function formatStatus(report: StatusReport, now = Date.now()): string {
  const lines: [string, string][] = [
    ["device", `${report.name} (${report.deviceId})`],
    ["server", report.serverUrl],
    ["broker", report.mqttUrl],
  ];
  const s = report.state;
  if (!s) {
    lines.push(["agent", "has not run with this data dir yet"]);
  } else {
    lines.push([
      "agent",
      report.running
        ? `running, pid ${s.pid}, version ${s.agentVersion}, started ${ago(s.startedAt, now)}`
        : `not running (last update ${ago(s.updatedAt, now)})`,
    ]);
    if (report.running) {
      const c = s.connection;
      const conn =
        c.state === "connected"
          ? `connected since ${ago(c.since, now)}`
          : `${c.state}${c.lastError ? ` (${c.lastError})` : ""}${c.lastConnectedAt ? `, last connected ${ago(c.lastConnectedAt, now)}` : ", never connected"}`;
      lines.push(["connection", conn]);
      const r = s.runner;
      const model = r.model ? `, model ${r.model}` : "";
      lines.push([
        "runner",
        `${r.state} (${r.backend}${model}${r.pid ? `, pid ${r.pid}` : ""}, rss ${formatBytes(r.rssBytes, { missing: "unknown" })}, restarts ${r.restarts})`,
      ]);
      if (r.lastError) lines.push(["last error", r.lastError]);
      const t = s.telemetry;
      lines.push([
        "telemetry",
        `every ${t.intervalMs / 1000} s, last sample ${ago(t.lastSampleAt, now)}, ${t.buffered} buffered, ${t.dropped} dropped`,
      ]);
    }
  }
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

export async function statusCommand(command: StatusCommand, out: (line: string) => void): Promise<number> {
  const report = await statusReport(command.dataDir);
  out(command.json ? JSON.stringify(report, null, 2) : formatStatus(report));
  return 0;
}
