"use client";
/**
 * A box that scrolls sideways when its content is wider than it, with a visible cue: a
 * shadow at each edge behind which columns are hidden, shown only while they are
 * (data-more-left / data-more-right say so, for tests and styling). Tables put their
 * first column in `STICKY_FIRST` (and an actions column in `STICKY_LAST`) so the row's
 * name and its buttons stay in view while the rest scrolls.
 */
import { useCallback, useEffect, useRef, useState, type ComponentProps, type Ref } from "react";
import { cn } from "@/lib/cn";

/** Classes for the cells of a column that stays at the left edge while the table scrolls sideways. */
export const STICKY_FIRST = "sticky left-0 z-[1] bg-card";
/** Classes for the cells of a column that stays at the right edge (actions) while the table scrolls sideways. */
export const STICKY_LAST = "sticky right-0 z-[1] bg-card";

function setRef<T>(ref: Ref<T> | undefined, value: T | null): void {
  if (typeof ref === "function") ref(value);
  else if (ref) (ref as { current: T | null }).current = value;
}

export function ScrollX({
  children,
  className,
  outerClassName,
  ref,
  ...props
}: ComponentProps<"div"> & {
  /** Classes for the outer (non-scrolling) wrapper that holds the edge shadows. */
  outerClassName?: string;
}) {
  const inner = useRef<HTMLDivElement | null>(null);
  const [more, setMore] = useState({ left: false, right: false });

  const measure = useCallback(() => {
    const el = inner.current;
    if (!el) return;
    const left = el.scrollLeft > 1;
    const right = el.scrollLeft + el.clientWidth < el.scrollWidth - 1;
    setMore((m) => (m.left === left && m.right === right ? m : { left, right }));
  }, []);

  useEffect(() => {
    const el = inner.current;
    if (!el) return;
    measure();
    const resize = new ResizeObserver(measure);
    resize.observe(el);
    if (el.firstElementChild) resize.observe(el.firstElementChild);
    el.addEventListener("scroll", measure, { passive: true });
    return () => {
      resize.disconnect();
      el.removeEventListener("scroll", measure);
    };
  }, [measure]);

  return (
    <div className={cn("relative min-w-0", outerClassName)} data-scroll-x="" data-more-left={more.left} data-more-right={more.right}>
      <div
        {...props}
        ref={(el) => {
          inner.current = el;
          setRef(ref, el);
        }}
        className={cn("overflow-x-auto", className)}
      >
        {children}
      </div>
      <div
        aria-hidden
        data-testid="scroll-cue-left"
        className={cn(
          "pointer-events-none absolute inset-y-0 left-0 z-[2] w-6 bg-linear-to-r from-foreground/15 to-transparent transition-opacity",
          more.left ? "opacity-100" : "opacity-0",
        )}
      />
      <div
        aria-hidden
        data-testid="scroll-cue-right"
        className={cn(
          "pointer-events-none absolute inset-y-0 right-0 z-[2] w-6 bg-linear-to-l from-foreground/15 to-transparent transition-opacity",
          more.right ? "opacity-100" : "opacity-0",
        )}
      />
      {more.right ? <span className="sr-only">Scroll sideways for more columns.</span> : null}
    </div>
  );
}
