/** What a hardware field shows when the device cannot read it (null): a dash with the reason, never 0. */
export function NotAvailable({ reason = "not available on this device" }: { reason?: string }) {
  return (
    <span title={reason} aria-label={reason} className="cursor-help text-muted-foreground">
      —
    </span>
  );
}
