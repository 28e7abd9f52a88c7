"use client";
/**
 * Choosing the device a new conversation runs on: every device of the fleet,
 * the ones that can answer now first; the others are shown disabled with the
 * reason (offline, loading, crashed, no model).
 */
import { useQuery } from "@tanstack/react-query";
import { Plus, Server } from "lucide-react";
import Link from "next/link";
import type { DeviceSummary } from "@orchard/contracts";
import { SIM_HELP } from "@/components/fleet/runner-status";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { EmptyState } from "@/components/ui/empty-state";
import { LoadingBlock } from "@/components/ui/spinner";
import { chatAvailability } from "@/lib/chat-device";
import { cn } from "@/lib/cn";
import { errorMessage, useTRPC } from "@/lib/trpc";

export function DevicePicker({ onPick, currentId }: { onPick: (deviceId: string) => void; currentId?: string | null }) {
  const trpc = useTRPC();
  const devices = useQuery(trpc.devices.list.queryOptions());

  if (devices.isPending) return <LoadingBlock label="Loading devices…" />;
  if (devices.isError) return <Alert>{errorMessage(devices.error)}</Alert>;
  if (devices.data.length === 0) {
    return (
      <EmptyState
        icon={Server}
        title="No devices yet"
        action={
          <Link href="/enroll" className={buttonClass("primary")}>
            <Plus aria-hidden />
            Enroll a device
          </Link>
        }
      >
        A conversation runs on the model of one Raspberry Pi. Enroll one first.
      </EmptyState>
    );
  }

  const rows = devices.data
    .map((d) => ({ device: d, availability: chatAvailability(d) }))
    .sort((a, b) => Number(b.availability.ok) - Number(a.availability.ok));

  return (
    <ul className="flex flex-col gap-2" aria-label="Devices">
      {rows.map(({ device, availability }) => (
        <li key={device.id}>
          <button
            type="button"
            disabled={!availability.ok}
            onClick={() => onPick(device.id)}
            data-testid="chat-device-option"
            data-device-id={device.id}
            data-available={availability.ok}
            title={availability.ok ? `Chat with the model on ${device.name}` : availability.reason}
            className={cn(
              "flex w-full items-center gap-3 rounded-lg border bg-card px-3 py-2.5 text-left transition-colors",
              "focus-visible:ring-2 focus-visible:ring-ring focus-visible:outline-none",
              availability.ok ? "cursor-pointer hover:border-primary/50 hover:bg-muted/50" : "cursor-not-allowed opacity-60",
              currentId === device.id && "border-primary/60",
            )}
          >
            <span className={cn("size-2 shrink-0 rounded-full", availability.ok ? "bg-success" : "bg-muted-foreground/50")} aria-hidden />
            <span className="flex min-w-0 flex-1 flex-col">
              <span className="truncate text-sm font-medium">{device.name}</span>
              <DeviceModel device={device} />
            </span>
            {availability.ok ? (
              <Badge tone="success">ready</Badge>
            ) : (
              <Badge tone={availability.label === "crashed" ? "danger" : availability.label === "loading" ? "info" : "neutral"}>
                {availability.label}
              </Badge>
            )}
          </button>
          {!availability.ok ? <p className="sr-only">{availability.reason}</p> : null}
        </li>
      ))}
    </ul>
  );
}

function DeviceModel({ device }: { device: DeviceSummary }) {
  const model = device.activeModel?.name ?? device.runner?.model ?? null;
  return (
    <span className="flex min-w-0 items-center gap-1.5 text-xs text-muted-foreground">
      <span className="truncate">{model ?? "no model"}</span>
      {device.runner?.backend === "sim" ? (
        <Badge tone="sim" title={SIM_HELP} className="px-1.5 py-0 text-[0.65rem]">
          sim
        </Badge>
      ) : null}
    </span>
  );
}
