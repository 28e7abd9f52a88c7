import { CircleAlert, Info, TriangleAlert } from "lucide-react";
import type { ReactNode } from "react";
import { cn } from "@/lib/cn";

const tones = {
  error: { box: "border-danger/30 bg-danger/10 text-danger", Icon: CircleAlert },
  warning: { box: "border-warning/30 bg-warning/10 text-warning", Icon: TriangleAlert },
  info: { box: "border-info/30 bg-info/10 text-info", Icon: Info },
} as const;

/** A message box; errors are announced to screen readers. */
export function Alert({ tone = "error", children, className }: { tone?: keyof typeof tones; children: ReactNode; className?: string }) {
  const { box, Icon } = tones[tone];
  return (
    <div
      role={tone === "error" ? "alert" : "status"}
      className={cn("flex items-start gap-2 rounded-md border px-3 py-2 text-sm", box, className)}
    >
      <Icon className="mt-0.5 size-4 shrink-0" aria-hidden />
      <div className="min-w-0 break-words">{children}</div>
    </div>
  );
}
