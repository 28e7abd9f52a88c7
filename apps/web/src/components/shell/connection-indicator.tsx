"use client";
/** The live link's state in the header: a quiet dot when live, a visible warning when it drops. */
import { Radio, Unplug } from "lucide-react";
import { Spinner } from "@/components/ui/spinner";
import { cn } from "@/lib/cn";
import { useLinkState, type LinkState } from "@/lib/realtime";

const TEXT: Record<LinkState, { label: string; title: string }> = {
  connecting: { label: "Connecting…", title: "Opening the live connection to the server" },
  live: { label: "Live", title: "Live: rows update as devices report" },
  reconnecting: { label: "Reconnecting…", title: "The live connection dropped; retrying. Data shown may be out of date." },
  signed_out: { label: "Signed out", title: "The server refused the session; sign in again" },
};

export function ConnectionIndicator() {
  const state = useLinkState();
  const { label, title } = TEXT[state];
  return (
    <span
      data-testid="live-indicator"
      data-state={state}
      title={title}
      role="status"
      className={cn(
        "inline-flex items-center gap-1.5 rounded-full px-2 py-1 text-xs font-medium whitespace-nowrap",
        state === "live" && "text-success",
        state === "connecting" && "text-muted-foreground",
        state === "reconnecting" && "bg-warning/15 text-warning",
        state === "signed_out" && "bg-danger/15 text-danger",
      )}
    >
      {state === "live" ? (
        <span className="relative flex size-2" aria-hidden>
          <span className="absolute inline-flex size-full animate-ping rounded-full bg-success opacity-50 [animation-duration:2.5s]" />
          <span className="relative inline-flex size-2 rounded-full bg-success" />
        </span>
      ) : state === "signed_out" ? (
        <Unplug className="size-3.5" aria-hidden />
      ) : state === "reconnecting" ? (
        <Spinner className="size-3.5 text-warning" label="Reconnecting" />
      ) : (
        <Radio className="size-3.5" aria-hidden />
      )}
      <span className={cn(state === "live" && "hidden sm:inline")}>{label}</span>
    </span>
  );
}
