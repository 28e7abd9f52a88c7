"use client";
/** Creates an enrollment token: optional device name, how long it stays valid. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { KeyRound } from "lucide-react";
import { useState, type FormEvent } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC, type RouterOutputs } from "@/lib/trpc";

export type CreatedToken = RouterOutputs["enrollment"]["create"] & { createdAt: number; deviceName: string | null };

const MIN_TTL = 5;
const MAX_TTL = 7 * 24 * 60;

export function EnrollForm({ onCreated }: { onCreated: (token: CreatedToken) => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [deviceName, setDeviceName] = useState("");
  const [ttl, setTtl] = useState("60");
  const create = useMutation(
    trpc.enrollment.create.mutationOptions({
      onSuccess: (token, input) => {
        onCreated({ ...token, createdAt: Date.now(), deviceName: input.deviceName ?? null });
        setDeviceName("");
        void queryClient.invalidateQueries({ queryKey: trpc.enrollment.listPending.queryKey() });
      },
    }),
  );

  const ttlMinutes = Number(ttl);
  const ttlValid = Number.isInteger(ttlMinutes) && ttlMinutes >= MIN_TTL && ttlMinutes <= MAX_TTL;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!ttlValid || create.isPending) return;
    const name = deviceName.trim();
    create.mutate({ ttlMinutes, ...(name ? { deviceName: name } : {}) });
  };

  return (
    <form onSubmit={submit} className="flex flex-col gap-4" data-testid="enroll-form" noValidate>
      <div className="grid gap-4 sm:grid-cols-[1fr_10rem]">
        <Field label="Device name (optional)" htmlFor="device-name" hint="Defaults to the Pi's hostname.">
          <Input
            id="device-name"
            value={deviceName}
            maxLength={64}
            placeholder="e.g. kitchen-pi"
            onChange={(e) => setDeviceName(e.target.value)}
          />
        </Field>
        <Field label="Valid for (minutes)" htmlFor="ttl" hint={ttlValid ? `Single use.` : `${MIN_TTL} to ${MAX_TTL} minutes.`}>
          <Input
            id="ttl"
            type="number"
            inputMode="numeric"
            min={MIN_TTL}
            max={MAX_TTL}
            step={1}
            value={ttl}
            aria-invalid={!ttlValid || undefined}
            onChange={(e) => setTtl(e.target.value)}
          />
        </Field>
      </div>
      {create.isError ? <Alert>{errorMessage(create.error)}</Alert> : null}
      <div>
        <Button type="submit" disabled={!ttlValid || create.isPending} data-testid="enroll-create">
          {create.isPending ? <Spinner className="text-primary-foreground" label="Creating" /> : <KeyRound aria-hidden />}
          Create enrollment token
        </Button>
      </div>
    </form>
  );
}
