"use client";
/**
 * "Are you sure?" for destructive actions: a Dialog with Cancel and a destructive
 * confirm button that shows progress, and the error when the action failed.
 */
import { Trash2, type LucideIcon } from "lucide-react";
import type { ReactNode } from "react";
import { Alert } from "./alert";
import { Button } from "./button";
import { Dialog } from "./dialog";
import { Spinner } from "./spinner";

export function ConfirmDialog({
  open,
  onClose,
  title,
  description,
  confirmLabel,
  pendingLabel,
  pending,
  error,
  onConfirm,
  confirmTestId,
  icon: Icon = Trash2,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  description: ReactNode;
  confirmLabel: string;
  pendingLabel: string;
  pending: boolean;
  /** A sentence to show when the action failed; null otherwise. */
  error: string | null;
  onConfirm: () => void;
  confirmTestId?: string;
  /** The confirm button's icon (a bin unless the action is not a deletion). */
  icon?: LucideIcon;
}) {
  return (
    <Dialog
      open={open}
      onClose={onClose}
      title={title}
      description={description}
      footer={
        <>
          <Button variant="outline" onClick={onClose}>
            Cancel
          </Button>
          <Button variant="destructive" onClick={onConfirm} disabled={pending} data-testid={confirmTestId}>
            {pending ? <Spinner className="text-destructive-foreground" label={pendingLabel} /> : <Icon aria-hidden />}
            {confirmLabel}
          </Button>
        </>
      }
    >
      {error ? <Alert>{error}</Alert> : null}
    </Dialog>
  );
}
