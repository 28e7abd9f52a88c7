"use client";
/**
 * The fleet table. On a wide screen it scrolls inside its own box under a sticky
 * header and renders only the rows in view (plus overscan; useVirtualRows), so
 * 1,000 devices scroll smoothly; aria-rowcount/aria-rowindex keep the full size
 * known to screen readers. On a phone the rows are cards, all rendered. Sortable by
 * name or by "generating now" (slowest first: which Pi is slow is one click). Wider
 * than the screen (1280 px with the sidebar), it scrolls sideways with the device's
 * name and its Chat button kept in view and a shadow at the edge hiding columns.
 */
import { ArrowDown, ArrowUp, ArrowUpDown } from "lucide-react";
import { memo, useMemo, useRef, useState } from "react";
import { GENERATING_NOW, TOKEN_RATE_UNIT, type DeviceSummary } from "@orchard/contracts";
import { Table, TableBody, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import type { FleetSparklines } from "@orchard/client";
import { cn } from "@/lib/cn";
import { useMediaQuery, useVirtualRows } from "@/lib/use-virtual-rows";
import { DeviceRow, tokensNow } from "./device-row";

type SortKey = "name" | "tokens";
interface Sort {
  key: SortKey;
  dir: "ascending" | "descending";
}

/** Widths for the fixed layout (wide screens), so columns do not shift as rows scroll in and out. */
const TOKENS_LABEL = `${GENERATING_NOW.label} (${TOKEN_RATE_UNIT})`;
const COLUMNS: { label: string; width: number; sort?: SortKey; help?: string }[] = [
  { label: "Device", width: 170, sort: "name" },
  { label: "Status", width: 92 },
  { label: "Last seen", width: 88 },
  { label: "Agent", width: 84 },
  { label: "Runner", width: 168 },
  { label: "Model", width: 116 },
  { label: TOKENS_LABEL, width: 170, sort: "tokens", help: GENERATING_NOW.help },
  { label: "CPU", width: 60 },
  { label: "SoC temp", width: 80 },
  { label: "Throttling", width: 100 },
  { label: "Memory", width: 132 },
  { label: "Disk free", width: 76 },
];
const ACTIONS_WIDTH = 90;
const TABLE_MIN_WIDTH = COLUMNS.reduce((sum, c) => sum + c.width, ACTIONS_WIDTH);
/** Row height on a wide screen (device-row.tsx sets it); measured after the first render anyway. */
const ROW_HEIGHT = 57;

const byName = (a: DeviceSummary, b: DeviceSummary) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);

function sortDevices(devices: DeviceSummary[], sort: Sort): DeviceSummary[] {
  const sign = sort.dir === "ascending" ? 1 : -1;
  if (sort.key === "name") return sort.dir === "ascending" ? devices : [...devices].sort((a, b) => -byName(a, b));
  // Devices not generating (idle, offline, not reported yet) go last either way.
  const generating = (d: DeviceSummary) => {
    const v = tokensNow(d);
    return v !== null && v > 0 ? v : null;
  };
  return [...devices].sort((a, b) => {
    const x = generating(a);
    const y = generating(b);
    if (x === null || y === null) return x === y ? byName(a, b) : x === null ? 1 : -1;
    return sign * (x - y) || byName(a, b);
  });
}

function SortHeader({ label, sortKey, sort, onSort }: { label: string; sortKey: SortKey; sort: Sort; onSort: (k: SortKey) => void }) {
  const active = sort.key === sortKey;
  const Icon = !active ? ArrowUpDown : sort.dir === "ascending" ? ArrowUp : ArrowDown;
  return (
    <button
      type="button"
      onClick={() => onSort(sortKey)}
      data-testid={`sort-${sortKey}`}
      className={cn(
        "-mx-1 inline-flex cursor-pointer items-center gap-1 rounded px-1 py-0.5 hover:text-foreground",
        "focus-visible:ring-2 focus-visible:ring-ring focus-visible:outline-none",
        active && "text-foreground",
      )}
      title={sortKey === "tokens" ? `Sort by ${GENERATING_NOW.label.toLowerCase()} (slowest first, then fastest first)` : "Sort by name"}
    >
      {label}
      <Icon className="size-3" aria-hidden />
    </button>
  );
}

export const FleetTable = memo(function FleetTable({
  devices,
  sparklines,
}: {
  devices: DeviceSummary[];
  sparklines: FleetSparklines | undefined;
}) {
  const [sort, setSort] = useState<Sort>({ key: "name", dir: "ascending" });
  const rows = useMemo(() => sortDevices(devices, sort), [devices, sort]);
  // One scale for every sparkline, so a slow device's line sits visibly lower than a fast one's.
  const sparkMax = useMemo(() => {
    let max = 0;
    for (const values of Object.values(sparklines?.devices ?? {})) for (const v of values) if (v !== null && v > max) max = v;
    return max;
  }, [sparklines]);

  const wide = useMediaQuery("(min-width: 1024px)");
  const scrollRef = useRef<HTMLDivElement>(null);
  const bodyRef = useRef<HTMLTableSectionElement>(null);
  const { start, end, padTop, padBottom } = useVirtualRows({
    count: rows.length,
    scrollRef,
    bodyRef,
    estimateRowHeight: ROW_HEIGHT,
    enabled: wide,
  });

  const onSort = (key: SortKey) =>
    setSort((prev) => (prev.key === key ? { key, dir: prev.dir === "ascending" ? "descending" : "ascending" } : { key, dir: "ascending" }));

  return (
    <Table
      stack
      data-testid="fleet-table"
      data-rows={rows.length}
      aria-label="Devices"
      aria-rowcount={rows.length + 1}
      className="lg:table-fixed"
      style={wide ? { minWidth: TABLE_MIN_WIDTH } : undefined}
      container={{
        ref: scrollRef,
        // A wide screen scrolls the rows inside this box, under the sticky header.
        className: "lg:max-h-[max(24rem,calc(100dvh-9rem))] lg:overflow-auto lg:overscroll-contain",
        tabIndex: wide ? 0 : undefined,
        role: wide ? "region" : undefined,
        "aria-label": wide ? "Devices (scrolls)" : undefined,
      }}
    >
      <colgroup>
        {COLUMNS.map((c) => (
          <col key={c.label} style={wide ? { width: c.width } : undefined} />
        ))}
        <col style={wide ? { width: ACTIONS_WIDTH } : undefined} />
      </colgroup>
      <TableHeader>
        <TableRow aria-rowindex={1}>
          {COLUMNS.map((c, i) => (
            <TableHead
              key={c.label}
              // The device column also stays at the left edge while the table scrolls sideways.
              className={cn("sticky top-0 bg-card shadow-[inset_0_-1px_0_var(--color-border)]", i === 0 ? "left-0 z-20" : "z-10")}
              aria-sort={c.sort && sort.key === c.sort ? sort.dir : undefined}
              title={c.help}
            >
              {c.sort ? <SortHeader label={c.label} sortKey={c.sort} sort={sort} onSort={onSort} /> : c.label}
            </TableHead>
          ))}
          <TableHead className="sticky top-0 right-0 z-20 bg-card shadow-[inset_0_-1px_0_var(--color-border)]">
            <span className="sr-only">Actions</span>
          </TableHead>
        </TableRow>
      </TableHeader>
      <TableBody ref={bodyRef}>
        {padTop > 0 ? <tr aria-hidden style={{ height: padTop }} data-testid="fleet-table-spacer" /> : null}
        {rows.slice(start, end).map((d, i) => (
          <DeviceRow key={d.id} device={d} index={start + i} sparkline={sparklines?.devices[d.id]} sparkMax={sparkMax} />
        ))}
        {padBottom > 0 ? <tr aria-hidden style={{ height: padBottom }} data-testid="fleet-table-spacer" /> : null}
      </TableBody>
    </Table>
  );
});
