/** One file on its way to the server: a progress bar with bytes, rate and ETA, and what went wrong. */
import { cn } from "@/lib/cn";
import { formatByteRate, formatBytes, formatDuration } from "@/lib/format";

export interface FileProgress {
  label: string;
  state: "waiting" | "uploading" | "done" | "failed";
  bytesDone: number;
  /** null while a download from a URL has not said its size. */
  bytesTotal: number | null;
  rateBps: number | null;
  etaSeconds: number | null;
  /** A sentence while waiting to retry, or why it failed. */
  note: string | null;
}

export function UploadProgress({ files }: { files: FileProgress[] }) {
  return (
    <ul className="flex flex-col gap-3" aria-label="Upload progress" data-testid="upload-progress">
      {files.map((f) => {
        const pct = f.bytesTotal ? Math.min(100, (f.bytesDone / f.bytesTotal) * 100) : f.state === "done" ? 100 : 0;
        return (
          <li key={f.label} className="flex flex-col gap-1" data-testid="upload-file" data-state={f.state}>
            <div className="flex items-baseline justify-between gap-3 text-sm">
              <span className="min-w-0 truncate font-medium" title={f.label}>
                {f.label}
              </span>
              <span className="shrink-0 text-xs text-muted-foreground tabular-nums" data-testid="upload-bytes">
                {f.state === "waiting"
                  ? "waiting"
                  : `${formatBytes(f.bytesDone)} / ${f.bytesTotal === null ? "?" : formatBytes(f.bytesTotal)} (${pct.toFixed(0)}%)`}
              </span>
            </div>
            <div
              role="progressbar"
              aria-label={`${f.label}: bytes sent`}
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(pct)}
              className="h-1.5 w-full overflow-hidden rounded-full bg-muted"
            >
              <div
                className={cn(
                  "h-full rounded-full transition-[width] duration-300",
                  f.state === "failed" ? "bg-danger" : f.state === "done" ? "bg-success" : "bg-primary",
                )}
                style={{ width: `${pct}%` }}
              />
            </div>
            {f.state === "uploading" && (f.rateBps || f.etaSeconds !== null) ? (
              <p className="text-xs text-muted-foreground tabular-nums" data-testid="upload-rate">
                {f.rateBps ? formatByteRate(f.rateBps) : null}
                {f.etaSeconds !== null ? ` · ${formatDuration(f.etaSeconds * 1000)} left` : null}
              </p>
            ) : null}
            {f.note ? <p className={cn("text-xs break-words", f.state === "failed" ? "text-danger" : "text-warning")}>{f.note}</p> : null}
          </li>
        );
      })}
    </ul>
  );
}
