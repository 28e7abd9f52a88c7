"use client";
/**
 * An answer's Markdown (GFM: tables, task lists, strikethrough, autolinks). Raw
 * HTML is shown as text, never interpreted; images become links (a model's
 * answer should not make the browser fetch arbitrary URLs); links open in a new
 * tab. Fenced code gets a monospace block with its language and a copy button.
 * Styles: `.chat-md` in globals.css.
 */
import { memo } from "react";
import ReactMarkdown, { type Components } from "react-markdown";
import remarkGfm from "remark-gfm";
import { CopyButton } from "@/components/ui/code-block";
import { cn } from "@/lib/cn";

type HastNode = { type: string; value?: string; tagName?: string; properties?: Record<string, unknown>; children?: HastNode[] };

function textOf(node: HastNode | undefined): string {
  if (!node) return "";
  if (node.type === "text") return node.value ?? "";
  return (node.children ?? []).map(textOf).join("");
}

function languageOf(code: HastNode | undefined): string | null {
  const cls = code?.properties?.className;
  const list = Array.isArray(cls) ? cls.map(String) : typeof cls === "string" ? cls.split(" ") : [];
  const lang = list.find((c) => c.startsWith("language-"));
  return lang ? lang.slice("language-".length) : null;
}

const components: Components = {
  pre({ node }) {
    const code = (node?.children as HastNode[] | undefined)?.find((c) => c.type === "element" && c.tagName === "code");
    const text = textOf(code).replace(/\n$/, "");
    const lang = languageOf(code);
    return (
      <div className="chat-md-code group relative my-3 overflow-hidden rounded-lg border bg-muted/60" data-testid="chat-code-block">
        <div className="flex items-center justify-between gap-2 border-b bg-muted/80 py-1 pr-1 pl-3">
          <span className="font-mono text-[0.7rem] text-muted-foreground">{lang ?? "code"}</span>
          <CopyButton text={text} label="Copy code" className="size-7 border-transparent bg-transparent" />
        </div>
        <pre className="overflow-x-auto p-3 text-[0.8rem] leading-relaxed">
          <code className="font-mono whitespace-pre">{text}</code>
        </pre>
      </div>
    );
  },
  table({ children }) {
    return (
      <div className="my-3 overflow-x-auto">
        <table>{children}</table>
      </div>
    );
  },
  a({ href, children }) {
    return (
      <a href={href} target="_blank" rel="noopener noreferrer nofollow">
        {children}
      </a>
    );
  },
  img({ src, alt }) {
    const url = typeof src === "string" ? src : "";
    return url ? (
      <a href={url} target="_blank" rel="noopener noreferrer nofollow" title="Image (not loaded)">
        [image{alt ? `: ${alt}` : ""}]
      </a>
    ) : (
      <span>[image{alt ? `: ${alt}` : ""}]</span>
    );
  },
};

const plugins = [remarkGfm];

/** Re-parsed only when the text changes (every chunk of a streaming answer, not every tick of its counter). */
export const Markdown = memo(function Markdown({ text, className }: { text: string; className?: string }) {
  return (
    <div className={cn("chat-md", className)}>
      <ReactMarkdown remarkPlugins={plugins} components={components}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
