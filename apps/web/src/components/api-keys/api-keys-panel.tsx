"use client";
/** The API keys page: what a key is for, creating one (shown once), and the keys that exist (your password is on the Account page). */
import { useState } from "react";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { ApiKeyList } from "./api-key-list";
import { CreateApiKeyForm, type CreatedKey } from "./create-api-key-form";
import { CreatedApiKey } from "./created-api-key";

export function ApiKeysPanel() {
  const [created, setCreated] = useState<CreatedKey | null>(null);
  return (
    <div className="flex flex-col gap-5">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">API keys</h1>
        <p className="text-sm text-muted-foreground">
          For scripts, the <span className="font-mono text-xs">orchard</span> CLI and any OpenAI-compatible client.
        </p>
      </div>
      <div className="grid items-start gap-5 lg:grid-cols-[minmax(0,2fr)_minmax(0,3fr)]">
        <div className="flex flex-col gap-5">
          <Card>
            <CardHeader>
              <CardTitle>New API key</CardTitle>
              <CardDescription>
                A key acts with your account and your role (a viewer&apos;s key reads; an operator&apos;s also chats through{" "}
                <span className="font-mono text-xs">/v1/chat/completions</span> and rolls out models). Give each script or person its own
                key, so you can revoke one without breaking the others.
              </CardDescription>
            </CardHeader>
            <CardContent>
              <CreateApiKeyForm onCreated={setCreated} />
            </CardContent>
          </Card>
          {created ? <CreatedApiKey created={created} onDismiss={() => setCreated(null)} /> : null}
        </div>
        <ApiKeyList highlightId={created?.summary.id ?? null} />
      </div>
    </div>
  );
}
