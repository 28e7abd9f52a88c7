"use client";
/**
 * How an answer was made, under its bubble: one compact line (device, model,
 * time to first token, decode speed, tokens), and everything else on demand
 * (prompt speed, reused tokens, memory, SoC temperature and throttling when the
 * answer ended).
 */
import { ChevronRight, FlaskConical } from "lucide-react";
import type { ReactNode } from "react";
import { decodeThrottle, type GenerationStats } from "@orchard/contracts";
import { TempValue } from "@/components/fleet/metrics";
import { NotAvailable } from "@/components/fleet/not-available";
import { SIM_HELP } from "@/components/fleet/runner-status";
import { ThrottleBadge } from "@/components/fleet/throttle-badge";
import { Badge } from "@/components/ui/badge";
import { formatBytes, formatLatency, formatTokS, formatTokens } from "@/lib/format";

const FINISH: Record<GenerationStats["finishReason"], string> = {
  stop: "the model finished",
  length: "reached the max new tokens limit",
  cancelled: "stopped",
};

function Item({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="flex min-w-0 flex-col">
      <dt className="text-[0.7rem] text-muted-foreground">{label}</dt>
      <dd className="min-w-0 text-xs break-words tabular-nums">{children}</dd>
    </div>
  );
}

function SimBadge({ testId }: { testId?: string }) {
  return (
    <Badge tone="sim" title={SIM_HELP} className="px-1.5 py-0 text-[0.65rem]" data-testid={testId}>
      <FlaskConical aria-hidden />
      sim
    </Badge>
  );
}

export function AnswerStats({ stats, deviceName }: { stats: GenerationStats; deviceName: string | null }) {
  const sim = stats.backend === "sim";
  const sha = stats.modelSha256 ? stats.modelSha256.slice(0, 8) : null;
  const throttle = stats.throttleRaw === null ? null : decodeThrottle(stats.throttleRaw);
  return (
    <details className="group/stats text-xs text-muted-foreground" data-testid="chat-stats" data-backend={stats.backend}>
      <summary className="flex cursor-pointer list-none flex-wrap items-center gap-x-1.5 gap-y-0.5 rounded-md py-0.5 select-none hover:text-foreground [&::-webkit-details-marker]:hidden">
        <ChevronRight className="size-3.5 shrink-0 transition-transform group-open/stats:rotate-90" aria-hidden />
        {deviceName ? <span className="max-w-40 truncate">{deviceName}</span> : null}
        {stats.model ? (
          <>
            {deviceName ? <span aria-hidden>·</span> : null}
            <span className="max-w-48 truncate" title={stats.modelSha256 ? `${stats.model}\nsha256 ${stats.modelSha256}` : stats.model}>
              {stats.model}
            </span>
            {sha ? <span className="font-mono text-[0.7rem]">{sha}</span> : null}
          </>
        ) : null}
        {sim ? <SimBadge testId="chat-stats-sim" /> : null}
        <span aria-hidden>·</span>
        <span className="tabular-nums" title="Time to first token (includes waiting in the device's queue)">
          TTFT {formatLatency(stats.ttftMs)}
        </span>
        <span aria-hidden>·</span>
        <span className="tabular-nums" title="Decode speed">
          {formatTokS(stats.decodeTokS)}
        </span>
        <span aria-hidden>·</span>
        <span className="tabular-nums">{formatTokens(stats.generatedTokens)}</span>
        {stats.reusedTokens > 0 ? (
          <>
            <span aria-hidden>·</span>
            <span className="tabular-nums" title="Prompt tokens reused from the device's KV cache">
              {stats.reusedTokens.toLocaleString("en-US")} reused
            </span>
          </>
        ) : null}
      </summary>
      <dl className="mt-2 grid grid-cols-2 gap-x-4 gap-y-2 rounded-lg border bg-muted/40 p-3 text-foreground sm:grid-cols-3">
        <Item label="Device">{deviceName ?? <NotAvailable reason="the device was deleted" />}</Item>
        <Item label="Model">
          {stats.model ? (
            <span>
              {stats.model}
              {stats.modelSha256 ? (
                <span className="block font-mono text-[0.7rem] text-muted-foreground" title={`sha256 ${stats.modelSha256}`}>
                  sha256 {stats.modelSha256.slice(0, 12)}…
                </span>
              ) : null}
            </span>
          ) : (
            <NotAvailable reason="no model reported" />
          )}
        </Item>
        <Item label="Backend">
          {sim ? (
            <span className="inline-flex items-center gap-1.5">
              <SimBadge /> simulated, not a real model
            </span>
          ) : (
            stats.backend
          )}
        </Item>
        <Item label="Time to first token">{formatLatency(stats.ttftMs)}</Item>
        <Item label="Queued">{formatLatency(stats.queueMs)}</Item>
        <Item label="Ended">{FINISH[stats.finishReason]}</Item>
        <Item label="Prompt">
          {formatTokens(stats.promptTokens)} · {formatTokS(stats.prefillTokS)}
        </Item>
        <Item label="Reused from cache">{formatTokens(stats.reusedTokens)}</Item>
        <Item label="Prefill time">{formatLatency(stats.prefillMs)}</Item>
        <Item label="Generated">
          {formatTokens(stats.generatedTokens)} · {formatTokS(stats.decodeTokS)}
        </Item>
        <Item label="Decode time">{formatLatency(stats.decodeMs)}</Item>
        <Item label="Peak runner memory">
          {stats.peakRssBytes > 0 ? formatBytes(stats.peakRssBytes) : <NotAvailable reason="not measured" />}
        </Item>
        <Item label="SoC temp at the end">
          <TempValue celsius={stats.socTempC} />
        </Item>
        <Item label="Throttling at the end">
          <ThrottleBadge flags={throttle} />
        </Item>
      </dl>
    </details>
  );
}
