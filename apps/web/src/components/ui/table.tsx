"use client";
/**
 * Table primitives. A `stack` table turns into a grid of cards below the `lg`
 * breakpoint: each row becomes a card and each labelled cell a "label: value"
 * line, so a wide table stays readable on a phone without duplicating markup.
 * A table wider than its box scrolls sideways inside it, with a shadow at the edge
 * while columns are hidden (ScrollX); put the first column's cells in STICKY_FIRST
 * to keep it in view.
 */
import { createContext, useContext, type ComponentProps } from "react";
import { cn } from "@/lib/cn";
import { ScrollX } from "./scroll-x";

export { STICKY_FIRST, STICKY_LAST } from "./scroll-x";

const StackContext = createContext(false);

/** `container`: props for the scrolling wrapper (e.g. a ref and a max height, to scroll the rows under a sticky header). */
export function Table({
  className,
  stack = false,
  container,
  ...props
}: ComponentProps<"table"> & { stack?: boolean; container?: ComponentProps<"div"> }) {
  return (
    <StackContext value={stack}>
      <ScrollX {...container} className={cn("w-full", container?.className)}>
        <table className={cn("w-full caption-bottom text-sm", stack && "block lg:table", className)} {...props} />
      </ScrollX>
    </StackContext>
  );
}

export function TableHeader({ className, ...props }: ComponentProps<"thead">) {
  const stack = useContext(StackContext);
  return <thead className={cn("[&_tr]:border-b", stack && "hidden lg:table-header-group", className)} {...props} />;
}

export function TableBody({ className, ...props }: ComponentProps<"tbody">) {
  const stack = useContext(StackContext);
  return (
    <tbody
      className={cn(
        stack ? "grid gap-3 sm:grid-cols-2 lg:table-row-group" : "",
        "lg:[&_tr:last-child]:border-0",
        !stack && "[&_tr:last-child]:border-0",
        className,
      )}
      {...props}
    />
  );
}

export function TableRow({ className, ...props }: ComponentProps<"tr">) {
  const stack = useContext(StackContext);
  return (
    <tr
      className={cn(
        "transition-colors",
        stack
          ? "flex flex-col rounded-lg border bg-card px-3 py-2 lg:table-row lg:rounded-none lg:border-0 lg:border-b lg:bg-transparent lg:p-0 lg:hover:bg-muted/50"
          : "border-b hover:bg-muted/50",
        className,
      )}
      {...props}
    />
  );
}

export function TableHead({ className, ...props }: ComponentProps<"th">) {
  return (
    <th
      className={cn("h-10 px-3 text-left align-middle text-xs font-medium whitespace-nowrap text-muted-foreground", className)}
      {...props}
    />
  );
}

/** In a stacked table, `label` is shown before the value on small screens. */
export function TableCell({ className, label, ...props }: ComponentProps<"td"> & { label?: string }) {
  const stack = useContext(StackContext);
  if (stack) {
    return (
      <td
        data-label={label}
        className={cn(
          "lg:table-cell lg:px-3 lg:py-2.5 lg:align-middle",
          label
            ? "flex min-h-7 items-center justify-between gap-4 py-0.5 text-right before:shrink-0 before:text-xs before:text-muted-foreground before:content-[attr(data-label)] lg:text-left lg:before:content-none"
            : "block py-1",
          className,
        )}
        {...props}
      />
    );
  }
  return <td className={cn("px-3 py-2.5 align-middle", className)} {...props} />;
}
