"use client";
/** The device's tags (rollouts can target them) and a dialog to edit them. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Tags } from "lucide-react";
import { useEffect, useState } from "react";
import { MAX_DEVICE_TAGS, type DeviceSummary } from "@orchard/contracts";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Dialog } from "@/components/ui/dialog";
import { Field, Input } from "@/components/ui/input";
import { Spinner } from "@/components/ui/spinner";
import { errorMessage, useTRPC } from "@/lib/trpc";
import { useCan } from "@/lib/use-role";

/** "kitchen, pi5-8gb  lab" → ["kitchen", "pi5-8gb", "lab"] (the server checks each). */
export function splitTags(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((t) => t.trim())
    .filter(Boolean);
}

export function DeviceTags({ device }: { device: DeviceSummary }) {
  const [editing, setEditing] = useState(false);
  // Tags are edited by operators and admins; a viewer only sees them (the server refuses the change anyway).
  const canEdit = useCan("operator");
  return (
    <div className="flex flex-wrap items-center gap-1.5" data-testid="device-tags">
      <span className="text-xs text-muted-foreground">Tags</span>
      {device.tags.length === 0 ? <span className="text-xs text-muted-foreground">none</span> : null}
      {device.tags.map((t) => (
        <Badge key={t} tone="outline" data-testid="device-tag">
          {t}
        </Badge>
      ))}
      {canEdit ? (
        <>
          <Button variant="ghost" size="sm" onClick={() => setEditing(true)} data-testid="device-tags-edit">
            <Tags aria-hidden />
            Edit tags
          </Button>
          <EditTagsDialog device={device} open={editing} onClose={() => setEditing(false)} />
        </>
      ) : null}
    </div>
  );
}

function EditTagsDialog({ device, open, onClose }: { device: DeviceSummary; open: boolean; onClose: () => void }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [text, setText] = useState("");
  const save = useMutation(
    trpc.devices.setTags.mutationOptions({
      onSuccess: (tags) => {
        queryClient.setQueryData(trpc.devices.get.queryKey({ id: device.id }), (d) => (d ? { ...d, tags } : d));
        onClose();
      },
    }),
  );
  useEffect(() => {
    if (!open) return;
    setText(device.tags.join(", "));
    save.reset();
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title={`Tags of ${device.name}`}
      description="Rollouts can target every device with a tag (e.g. kitchen, pi5-8gb)."
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button
            onClick={() => save.mutate({ id: device.id, tags: splitTags(text) })}
            disabled={save.isPending}
            data-testid="device-tags-save"
          >
            {save.isPending ? <Spinner className="text-primary-foreground" label="Saving" /> : null}
            Save
          </Button>
        </>
      }
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          save.mutate({ id: device.id, tags: splitTags(text) });
        }}
      >
        <Field
          label="Tags"
          htmlFor="device-tags-input"
          hint={`Separated by commas or spaces; lower-case letters, digits and '-'; at most ${MAX_DEVICE_TAGS}.`}
        >
          <Input id="device-tags-input" value={text} onChange={(e) => setText(e.target.value)} autoFocus data-testid="device-tags-input" />
        </Field>
      </form>
      {save.isError ? <Alert>{errorMessage(save.error)}</Alert> : null}
    </Dialog>
  );
}
