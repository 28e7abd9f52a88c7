"use client";
/**
 * Windowing for long lists of equal-height rows (the fleet table with 1,000
 * devices): only the rows inside the scroll container's viewport, plus `overscan`
 * rows on each side, are rendered; the caller puts spacers of `padTop` and
 * `padBottom` pixels around them so the scroll height and position stay right.
 *
 * Rows carry `data-virtual-index={i}`; their height is measured from the rendered
 * ones after each render (the estimate is used until then). The range is recomputed
 * on scroll (once per animation frame) and when the container resizes, and React
 * re-renders only when it changes.
 */
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore, type RefObject } from "react";

export interface VirtualRange {
  /** First row rendered. */
  start: number;
  /** One past the last row rendered. */
  end: number;
  /** Height of the rows before `start`, and after `end`, in pixels. */
  padTop: number;
  padBottom: number;
}

/** Viewport height assumed before the container has been measured. */
const FALLBACK_VIEWPORT_PX = 900;

function rangeFor(count: number, rowHeight: number, scrollTop: number, viewport: number, offset: number, overscan: number) {
  const top = Math.max(0, scrollTop - offset);
  const first = Math.min(count, Math.floor(top / rowHeight));
  const last = Math.min(count, Math.ceil((top + viewport) / rowHeight));
  const start = Math.max(0, first - overscan);
  const end = Math.min(count, Math.max(last + overscan, start));
  return { start, end, padTop: start * rowHeight, padBottom: (count - end) * rowHeight };
}

export function useVirtualRows(opts: {
  count: number;
  /** The element that scrolls (overflow: auto). */
  scrollRef: RefObject<HTMLElement | null>;
  /** The element where row 0 starts (e.g. the tbody), inside the scroll container. */
  bodyRef: RefObject<HTMLElement | null>;
  estimateRowHeight: number;
  overscan?: number;
  /** false: every row is rendered (e.g. the phone layout, where rows are cards of different heights). */
  enabled?: boolean;
}): VirtualRange {
  const { count, scrollRef, bodyRef, estimateRowHeight, overscan = 8, enabled = true } = opts;
  const [rowHeight, setRowHeight] = useState(estimateRowHeight);
  const [range, setRange] = useState(() => rangeFor(count, estimateRowHeight, 0, FALLBACK_VIEWPORT_PX, 0, overscan));
  const latest = useRef({ count, rowHeight, overscan, enabled });
  useLayoutEffect(() => {
    latest.current = { count, rowHeight, overscan, enabled };
  });

  // Reads the container's scroll position and size and updates the range if it changed.
  const update = useCallback(() => {
    const { count, rowHeight, overscan, enabled } = latest.current;
    if (!enabled) return;
    const scroller = scrollRef.current;
    const body = bodyRef.current;
    const viewport = scroller?.clientHeight || FALLBACK_VIEWPORT_PX;
    const scrollTop = scroller?.scrollTop ?? 0;
    // Where row 0 starts in the scrolled content (below the sticky header).
    const offset = scroller && body ? body.getBoundingClientRect().top - scroller.getBoundingClientRect().top + scrollTop : 0;
    const next = rangeFor(count, rowHeight, scrollTop, viewport, offset, overscan);
    setRange((prev) =>
      prev.start === next.start && prev.end === next.end && prev.padTop === next.padTop && prev.padBottom === next.padBottom ? prev : next,
    );
  }, [scrollRef, bodyRef]);

  // The row count or row height changed: recompute before paint.
  useLayoutEffect(() => update(), [update, count, rowHeight, enabled, overscan]);

  useEffect(() => {
    const scroller = scrollRef.current;
    if (!scroller || !enabled) return;
    let frame: number | null = null;
    const onScroll = () => {
      frame ??= requestAnimationFrame(() => {
        frame = null;
        update();
      });
    };
    scroller.addEventListener("scroll", onScroll, { passive: true });
    const resize = new ResizeObserver(() => update());
    resize.observe(scroller);
    return () => {
      scroller.removeEventListener("scroll", onScroll);
      resize.disconnect();
      if (frame !== null) cancelAnimationFrame(frame);
    };
  }, [scrollRef, enabled, update]);

  // Measure the rendered rows whenever a different set is in the DOM: one height for all, their average.
  useLayoutEffect(() => {
    const body = bodyRef.current;
    if (!body || !enabled) return;
    const rows = body.querySelectorAll<HTMLElement>(":scope > [data-virtual-index]");
    if (rows.length === 0) return;
    const first = rows[0]!.getBoundingClientRect();
    const last = rows[rows.length - 1]!.getBoundingClientRect();
    const measured = (last.bottom - first.top) / rows.length;
    if (measured > 0 && Math.abs(measured - rowHeight) > 0.5) setRowHeight(measured);
  }, [bodyRef, enabled, rowHeight, range.start, range.end, count]);

  if (!enabled) return { start: 0, end: count, padTop: 0, padBottom: 0 };
  // The count may have shrunk since the range was computed (a device deleted): never past the end.
  const end = Math.min(range.end, count);
  const start = Math.min(range.start, end);
  return { start, end, padTop: start * rowHeight, padBottom: Math.max(0, count - end) * rowHeight };
}

/** Whether a CSS media query matches (false on the server). */
export function useMediaQuery(query: string): boolean {
  const subscribe = useMemo(
    () => (listener: () => void) => {
      const mq = window.matchMedia(query);
      mq.addEventListener("change", listener);
      return () => mq.removeEventListener("change", listener);
    },
    [query],
  );
  return useSyncExternalStore(
    subscribe,
    () => window.matchMedia(query).matches,
    () => false,
  );
}
