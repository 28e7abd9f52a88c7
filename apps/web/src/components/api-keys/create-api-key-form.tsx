"use client";
/** Creates an API key from a name (what it is for). */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { KeyRound } from "lucide-react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";

export type CreatedKey = RouterOutputs["apiKeys"]["create"];

export function CreateApiKeyForm({ onCreated }: { onCreated: (created: CreatedKey) => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [name, setName] = useState("");
  const create = useMutation(
    trpc.apiKeys.create.mutationOptions({
      onSuccess: (created) => {
        onCreated(created);
        setName("");
        queryClient.setQueryData(trpc.apiKeys.list.queryKey(), (rows) =>
          rows ? [created.summary, ...rows.filter((r) => r.id !== created.summary.id)] : rows,
        );
        void queryClient.invalidateQueries({ queryKey: trpc.apiKeys.list.queryKey() });
      },
    }),
  );

  const trimmed = name.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (trimmed && !create.isPending) create.mutate({ name: trimmed });
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-4" data-testid="api-key-form" noValidate>
      <Field label="Name" htmlFor="api-key-name" hint="What the key is for, e.g. “grafana”, “laptop CLI”, “open-webui”.">
        <Input
          id="api-key-name"
          value={name}
          maxLength={64}
          placeholder="e.g. laptop CLI"
          onChange={(e) => setName(e.target.value)}
          data-testid="api-key-name"
        />
      </Field>
      {create.isError ? <Alert>{errorMessage(create.error)}</Alert> : null}
      <div>
        <Button type="submit" disabled={!trimmed || create.isPending} data-testid="api-key-create">
          {create.isPending ? <Spinner className="text-primary-foreground" label="Creating" /> : <KeyRound aria-hidden />}
          Create API key
        </Button>
      </div>
    </form>
  );
}
