"use client";
/**
 * The line under an answer being generated: what the device is doing ("Sent…",
 * "Queued (position 2)", "Reading your message…"), then "N tokens · X.X tok/s"
 * measured in this browser and ticking, so a slow Pi (0.8 tok/s is normal) never
 * looks stuck, and a stuck one shows it.
 */
import { useEffect, useState } from "react";
import { Spinner } from "@/components/ui/spinner";
import { liveTokensPerSecond, type LiveAnswer } from "@/lib/chat-live";
import { formatDuration, formatTokS, formatTokens } from "@/lib/format";

const TICK_MS = 250;

/** The current time, ticking while mounted (a streaming answer's counter). */
function useTicker(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), TICK_MS);
    return () => clearInterval(t);
  }, []);
  return now;
}

/** 12_400 → "12 s", whole seconds so a ticking label does not flicker. */
function seconds(ms: number): string {
  return formatDuration(Math.floor(ms / 1000) * 1000);
}

function phaseText(live: LiveAnswer | undefined): string {
  if (!live) return "Answering…";
  if (live.stopping) return "Stopping…";
  if (live.tokens > 0) return "";
  switch (live.phase) {
    case "sent":
      return "Sent…";
    case "queued":
      return live.queuePosition > 0 ? `Queued (position ${live.queuePosition})` : "Queued…";
    case "prefill":
      return "Reading your message…";
    case "decoding":
      return "Writing…";
    default:
      return "Answering…";
  }
}

export function LiveStatus({ live }: { live: LiveAnswer | undefined }) {
  const now = useTicker();
  const phase = phaseText(live);
  const rate = live ? liveTokensPerSecond(live, now) : null;
  const main = phase || (live ? `${formatTokens(live.tokens)} · ${rate === null ? "… tok/s" : formatTokS(rate)}` : "");

  // A second, quieter clue: how long this phase has lasted, or how long since the last token.
  let note: string | null = null;
  let warn = false;
  if (live && !live.stopping) {
    const quietFor = now - live.lastEventAt;
    if (live.tokens === 0) {
      const since = now - live.phaseSince;
      if (since >= 2000) note = seconds(since);
    } else if (live.lastAt !== null && live.firstAt !== null) {
      const sinceToken = now - live.lastAt;
      const n = live.tokens - live.firstTokens;
      const usualGap = n > 0 ? (live.lastAt - live.firstAt) / n : 1000;
      if (sinceToken > Math.max(5000, 4 * usualGap)) {
        note = `last token ${seconds(sinceToken)} ago`;
        if (quietFor < 12_000) note += ", the device is still working";
      }
    }
    if (quietFor >= 12_000) {
      note = `no word from the device for ${seconds(quietFor)}`;
      warn = true;
    }
  }

  return (
    // Not a live region: it changes four times a second.
    <div className="flex min-h-5 flex-wrap items-center gap-x-1.5 text-xs text-muted-foreground">
      <Spinner className="size-3.5 text-primary" label="Generating" />
      <span data-testid="chat-live-stats" className="font-medium text-foreground/80 tabular-nums">
        {main}
      </span>
      {note ? <span className={warn ? "text-warning" : undefined}>· {note}</span> : null}
    </div>
  );
}
