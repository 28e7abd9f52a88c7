"use client";
/** The device's identity, runner and current readings, in compact labelled grids. */
import type { ReactNode } from "react";
import { DECODE_SPEED, GENERATING_NOW, type DeviceSummary } from "@orchard/contracts";
import { LastSeen } from "@/components/fleet/last-seen";
import { CpuValue, DiskFreeValue, MemoryValue, TempValue } from "@/components/fleet/metrics";
import { NotAvailable } from "@/components/fleet/not-available";
import { BackendBadge, RunnerStateBadge, SIM_HELP } from "@/components/fleet/runner-status";
import { ThrottleBadge } from "@/components/fleet/throttle-badge";
import { Alert } from "@/components/ui/alert";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { formatBytes, formatDateTime, formatDuration, formatLoad, formatTokS } from "@/lib/format";

function Item({ label, children, mono = false }: { label: string; children: ReactNode; mono?: boolean }) {
  return (
    <div className="flex min-w-0 flex-col gap-0.5">
      <dt className="text-xs text-muted-foreground">{label}</dt>
      <dd className={mono ? "truncate font-mono text-xs leading-5" : "min-w-0 text-sm"}>{children}</dd>
    </div>
  );
}

const orDash = (v: string | null | undefined, reason = "not reported yet") => (v ? v : <NotAvailable reason={reason} />);

export function DeviceIdentity({ device }: { device: DeviceSummary }) {
  return (
    <dl className="grid grid-cols-2 gap-x-6 gap-y-3 sm:grid-cols-3 lg:grid-cols-6">
      <Item label="Hostname">{orDash(device.hostname)}</Item>
      <Item label="Architecture">{orDash(device.arch)}</Item>
      <Item label="Agent version">{orDash(device.agentVersion)}</Item>
      <Item label="Last seen">
        <LastSeen ts={device.lastSeenAt} />
      </Item>
      <Item label="Enrolled">{formatDateTime(device.enrolledAt)}</Item>
      <Item label="Device id" mono>
        <span title={device.id}>{device.id}</span>
      </Item>
    </dl>
  );
}

export function RunnerCard({ device }: { device: DeviceSummary }) {
  const r = device.runner;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Runner</CardTitle>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        {!device.online && r ? <p className="text-xs text-muted-foreground">Last reported state; the device is offline.</p> : null}
        {r ? (
          <dl className="grid grid-cols-2 gap-x-6 gap-y-3 sm:grid-cols-3">
            <Item label="State">
              <RunnerStateBadge runner={r} />
            </Item>
            <Item label="Backend">
              <BackendBadge backend={r.backend} />
            </Item>
            <Item label="Runner model">
              <span className="break-words" title={r.backend === "sim" ? SIM_HELP : undefined}>
                {orDash(r.model, "no model loaded")}
              </span>
            </Item>
            <Item label="Restarts">
              <span className={r.restarts > 0 ? "font-medium text-warning tabular-nums" : "tabular-nums"}>{r.restarts}</span>
            </Item>
            <Item label="RSS">{r.rssBytes !== null ? formatBytes(r.rssBytes) : <NotAvailable reason="not measured" />}</Item>
            <Item label="PID">
              {r.pid !== null ? <span className="tabular-nums">{r.pid}</span> : <NotAvailable reason="not running" />}
            </Item>
            <Item label="Load time">{r.loadMs !== null ? formatDuration(r.loadMs) : <NotAvailable reason="not reported" />}</Item>
            <Item label="Max context">
              {r.maxContext !== null ? (
                <span className="tabular-nums">{r.maxContext.toLocaleString()} tokens</span>
              ) : (
                <NotAvailable reason="not reported" />
              )}
            </Item>
          </dl>
        ) : (
          <p className="text-sm text-muted-foreground">The device has not reported a runner yet.</p>
        )}
        {r?.lastError ? (
          <Alert tone={r.state === "crash_loop" || r.state === "crashed" ? "error" : "warning"}>
            <span className="font-medium">Last error: </span>
            <span className="font-mono text-xs break-words whitespace-pre-wrap">{r.lastError}</span>
          </Alert>
        ) : null}
      </CardContent>
    </Card>
  );
}

export function CurrentReadings({ device }: { device: DeviceSummary }) {
  const t = device.telemetry;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Now</CardTitle>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        {!t ? (
          <p className="text-sm text-muted-foreground">No telemetry received yet.</p>
        ) : (
          <>
            {!device.online ? <p className="text-xs text-muted-foreground">Last reported values; the device is offline.</p> : null}
            <dl className="grid grid-cols-2 gap-x-6 gap-y-3 sm:grid-cols-3">
              <Item label="CPU">
                <CpuValue percent={t.cpuPercent} />
              </Item>
              <Item label="SoC temp">
                <TempValue celsius={t.socTempC} />
              </Item>
              <Item label="Throttling">
                <ThrottleBadge flags={t.throttle} />
              </Item>
              <Item label="Memory">
                <MemoryValue sample={t} />
              </Item>
              <Item label="Swap used">
                {t.swapTotalBytes > 0 ? (
                  `${formatBytes(t.swapUsedBytes)} / ${formatBytes(t.swapTotalBytes)}`
                ) : (
                  <span className="text-muted-foreground">no swap</span>
                )}
              </Item>
              <Item label="Disk free">
                <DiskFreeValue sample={t} />
              </Item>
              <Item label="Load (1/5/15 min)">
                <span className="tabular-nums">
                  {formatLoad(t.load1)} / {formatLoad(t.load5)} / {formatLoad(t.load15)}
                </span>
              </Item>
              <Item label={GENERATING_NOW.label}>
                {device.generatingTokensPerSecond !== null ? (
                  <span className="tabular-nums" title={GENERATING_NOW.help} data-testid="device-generating">
                    {formatTokS(device.generatingTokensPerSecond)}
                  </span>
                ) : (
                  <NotAvailable reason="no telemetry since the server started" />
                )}
              </Item>
              <Item label={DECODE_SPEED.label}>
                {t.tokensPerSecond !== null ? (
                  <span className="tabular-nums" title={DECODE_SPEED.help}>
                    {formatTokS(t.tokensPerSecond)}
                  </span>
                ) : (
                  <NotAvailable reason="no answer finished in the last minute" />
                )}
              </Item>
              <Item label="Sampled">{formatDateTime(t.ts)}</Item>
            </dl>
            {t.throttle?.underVoltage ? (
              <Alert tone="error">Under-voltage now: check the power supply (a Pi 5 wants the official 27 W USB-C supply).</Alert>
            ) : null}
          </>
        )}
      </CardContent>
    </Card>
  );
}
