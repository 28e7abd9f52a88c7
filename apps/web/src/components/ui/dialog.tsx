"use client";
/**
 * A small modal on the native <dialog> element: focus trapping, Escape and the
 * backdrop come from the browser. Open state is owned by the caller. It is never
 * taller than the screen (1280×720, a phone): the title and the footer (the action
 * buttons) stay in place and the content between them scrolls.
 */
import { X } from "lucide-react";
import { useEffect, useRef, type ReactNode } from "react";
import { Button } from "./button";

export function Dialog({
  open,
  onClose,
  title,
  description,
  children,
  footer,
}: {
  open: boolean;
  onClose: () => void;
  title: string;
  description?: ReactNode;
  children?: ReactNode;
  footer?: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);

  return (
    <dialog
      ref={ref}
      onClose={onClose}
      onClick={(e) => {
        if (e.target === ref.current) onClose(); // a click on the backdrop
      }}
      className="m-auto max-h-[calc(100dvh-2rem)] w-[calc(100%-2rem)] max-w-md overflow-hidden rounded-xl border bg-card p-0 text-card-foreground shadow-xl backdrop:bg-black/50"
      data-testid="dialog"
    >
      {open ? (
        <div className="flex max-h-[calc(100dvh-2rem)] flex-col">
          <div className="flex shrink-0 items-start justify-between gap-4 px-5 pt-5 pb-4">
            <div className="flex flex-col gap-1">
              <h2 className="text-base font-semibold">{title}</h2>
              {description ? <div className="text-sm text-muted-foreground">{description}</div> : null}
            </div>
            <Button variant="ghost" size="icon" aria-label="Close" onClick={onClose} className="-mt-1 -mr-2">
              <X />
            </Button>
          </div>
          {children ? (
            <div className="min-h-0 flex-1 overflow-y-auto overscroll-contain px-5 pb-5" data-testid="dialog-body">
              {children}
            </div>
          ) : null}
          {footer ? (
            <div className="flex shrink-0 flex-wrap justify-end gap-2 border-t bg-card px-5 py-3" data-testid="dialog-footer">
              {footer}
            </div>
          ) : null}
        </div>
      ) : null}
    </dialog>
  );
}
