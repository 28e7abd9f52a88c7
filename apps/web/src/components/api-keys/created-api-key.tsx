"use client";
/** A new key, shown once: copy it now, with ready-to-run examples that use it. */
import { useQuery } from "@tanstack/react-query";
import { CircleCheck, TriangleAlert } from "lucide-react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { CodeBlock } from "@/components/ui/code-block";
import { chatAvailability } from "@/lib/chat-device";
import { useTRPC } from "@/lib/trpc";
import type { CreatedKey } from "./create-api-key-form";

/** Single quotes for a POSIX shell. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

export function CreatedApiKey({ created, onDismiss }: { created: CreatedKey; onDismiss: () => void }) {
  const trpc = useTRPC();
  const devices = useQuery(trpc.devices.list.queryOptions());
  // An example device: one that can answer now if there is one.
  const example = devices.data?.find((d) => chatAvailability(d).ok) ?? devices.data?.[0];
  const origin = window.location.origin;
  const key = created.key;
  const body = JSON.stringify({
    model: `device:${example?.id ?? "<device-id>"}`,
    stream: true,
    messages: [{ role: "user", content: "Say hello in five words." }],
  });
  const curl = [
    `curl -N ${origin}/v1/chat/completions \\`,
    `  -H ${shellQuote(`Authorization: Bearer ${key}`)} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(body)}`,
  ].join("\n");
  const cli = `ORCHARD_URL=${shellQuote(origin)} ORCHARD_API_KEY=${shellQuote(key)} npx orchard devices`;
  const openai = `OPENAI_BASE_URL=${shellQuote(`${origin}/v1`)} OPENAI_API_KEY=${shellQuote(key)}`;

  return (
    <Card data-testid="api-key-created">
      <CardHeader>
        <CardTitle>
          Your new key <span className="font-normal text-muted-foreground">“{created.summary.name}”</span>
        </CardTitle>
        <CardDescription>Store it in a password manager or your script&apos;s secrets.</CardDescription>
      </CardHeader>
      <CardContent className="flex flex-col gap-4">
        <Alert tone="warning">
          <span className="font-medium">Copy it now: it will not be shown again.</span> Orchard keeps only a hash of it. If you lose it,
          revoke it and create another.
        </Alert>
        <CodeBlock code={key} testId="api-key-value" />
        <div className="flex flex-col gap-1">
          <span className="text-xs font-medium text-muted-foreground">
            Chat with {example ? example.name : "a device"} through the OpenAI-compatible API (streams tokens as they come)
          </span>
          <CodeBlock code={curl} testId="api-key-example-curl" />
        </div>
        <div className="flex flex-col gap-1">
          <span className="text-xs font-medium text-muted-foreground">The orchard CLI</span>
          <CodeBlock code={cli} testId="api-key-example-cli" />
        </div>
        <div className="flex flex-col gap-1">
          <span className="text-xs font-medium text-muted-foreground">
            OpenAI SDKs and tools: set these, and use <span className="font-mono">device:&lt;id&gt;</span> or a model name from{" "}
            <span className="font-mono">/v1/models</span> as the model
          </span>
          <CodeBlock code={openai} />
        </div>
        {!example ? (
          <p className="flex items-center gap-1.5 text-xs text-muted-foreground">
            <TriangleAlert className="size-3.5" aria-hidden />
            Replace &lt;device-id&gt; with the id of a device (shown on its page).
          </p>
        ) : null}
        <div>
          <Button variant="outline" onClick={onDismiss} data-testid="api-key-dismiss">
            <CircleCheck aria-hidden />I have copied it
          </Button>
        </div>
      </CardContent>
    </Card>
  );
}
