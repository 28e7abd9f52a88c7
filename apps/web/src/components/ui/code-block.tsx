"use client";
/** A command in a monospace block with a copy button (works on plain-http LAN addresses too, where the Clipboard API is missing). */
import { Check, Copy } from "lucide-react";
import { useEffect, useState } from "react";
import { cn } from "@/lib/cn";
import { Button } from "./button";

export async function copyText(text: string): Promise<boolean> {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the old way
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  try {
    return document.execCommand("copy");
  } finally {
    area.remove();
  }
}

/** Copies `text`, then shows a tick for two seconds (or says that copying failed). */
export function CopyButton({ text, className, label = "Copy to clipboard" }: { text: string; className?: string; label?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const t = setTimeout(() => setState("idle"), 2000);
    return () => clearTimeout(t);
  }, [state]);

  return (
    <Button
      variant="outline"
      size="icon"
      className={className}
      aria-label={state === "copied" ? "Copied" : label}
      title={state === "failed" ? "Copy failed: select the text and copy it by hand" : label}
      onClick={() => void copyText(text).then((ok) => setState(ok ? "copied" : "failed"))}
    >
      {state === "copied" ? <Check className="text-success" /> : <Copy />}
    </Button>
  );
}

export function CodeBlock({ code, className, testId }: { code: string; className?: string; testId?: string }) {
  return (
    <div className={cn("group relative rounded-lg border bg-muted/60", className)}>
      <pre className="overflow-x-auto py-3 pr-12 pl-3 text-[0.8rem] leading-relaxed">
        <code data-testid={testId} className="font-mono [overflow-wrap:anywhere] whitespace-pre-wrap">
          {code}
        </code>
      </pre>
      <CopyButton text={code} className="absolute top-2 right-2" />
    </div>
  );
}
