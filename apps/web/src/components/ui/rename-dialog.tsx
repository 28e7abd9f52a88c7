"use client";
/**
 * A dialog with one text field to rename something. It starts from the current
 * value each time it opens; saving an unchanged or empty value just closes it.
 */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { Alert } from "./alert";
import { Button } from "./button";
import { Dialog } from "./dialog";
import { Field, Input } from "./input";
import { Spinner } from "./spinner";

export function RenameDialog({
  open,
  onClose,
  onOpen,
  title,
  description,
  label,
  inputId,
  maxLength,
  current,
  pending,
  error,
  onSave,
  submitTestId,
}: {
  open: boolean;
  onClose: () => void;
  /** Called each time the dialog opens (e.g. to clear a previous attempt's error). */
  onOpen?: () => void;
  title: string;
  description?: ReactNode;
  label: string;
  inputId: string;
  maxLength: number;
  current: string;
  pending: boolean;
  error: string | null;
  onSave: (value: string) => void;
  submitTestId?: string;
}) {
  const [value, setValue] = useState(current);
  useEffect(() => {
    if (open) {
      setValue(current);
      onOpen?.();
    }
    // Reset only when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open]);

  const trimmed = value.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (trimmed && trimmed !== current) onSave(trimmed);
    else onClose();
  };

  return (
    <Dialog open={open} onClose={onClose} title={title} description={description}>
      <form onSubmit={submit} className="flex flex-col gap-4">
        <Field label={label} htmlFor={inputId}>
          <Input id={inputId} value={value} maxLength={maxLength} onChange={(e) => setValue(e.target.value)} autoFocus />
        </Field>
        {error ? <Alert>{error}</Alert> : null}
        <div className="flex justify-end gap-2">
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" disabled={!trimmed || pending} data-testid={submitTestId}>
            {pending ? <Spinner className="text-primary-foreground" label="Saving" /> : null}
            Save
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
