"use client";
/**
 * A run's results, laid out like the reference deployment's Performance table:
 * one block of rows per device (what ran there: backend, runner, model, load time,
 * board state before and after, shown once), one row per prompt with its speed and
 * cost. The columns and their formatting are the contract's (BENCH_COLUMNS), the
 * same as the CSV and Markdown exports; a value the device could not read is a dash
 * with the reason, never 0. Wider than the screen, it scrolls sideways inside its box
 * with the device column kept in view and a shadow at the edge while columns are hidden.
 */
import { Fragment } from "react";
import { benchTableRows, type BenchRunDto, type BenchTableRow } from "@orchard/contracts";
import { NotAvailable } from "@/components/fleet/not-available";
import { ScrollX, STICKY_FIRST } from "@/components/ui/scroll-x";
import { BENCH_COLUMN_GROUPS, BENCH_DEVICE_KEYS, formatBenchCell, BENCH_COLUMNS } from "@orchard/client";
import { cn } from "@/lib/cn";

type Key = keyof BenchTableRow;

const NULL_REASONS: Partial<Record<Key, string>> = {
  runnerVersion: "the runner did not report its version",
  model: "no model reported",
  modelSha256: "the agent does not know its model's hash (the sim backend, or a model not installed by a rollout)",
  loadMs: "the runner did not report its load time",
  energyJPerToken: "board power is not readable on this device (Pi 5 PMIC only)",
  tempBeforeC: "no thermal zone on this device",
  tempAfterC: "no thermal zone on this device",
  throttleBefore: "vcgencmd is not available on this device",
  throttleAfter: "vcgencmd is not available on this device",
};

/** The line at the right of the sticky device column (a border would scroll away with the cells). */
const FIRST_EDGE = "shadow-[inset_-1px_0_0_var(--color-border)]";

/** The contract's columns in group order; a group's first column draws the group's left border. */
const columns = BENCH_COLUMN_GROUPS.flatMap((g, gi) =>
  g.keys.map((key, i) => {
    const column = BENCH_COLUMNS.find((c) => c.key === key)!;
    return { key, title: column.title, numeric: column.format !== undefined, groupStart: i === 0 && gi > 0 };
  }),
);

export function BenchResultsTable({ run }: { run: BenchRunDto }) {
  const blocks = run.devices.flatMap((d) =>
    d.result
      ? [{ device: d, rows: benchTableRows(run.name, d.deviceName, d.result), previews: d.result.prompts.map((p) => p.textPreview) }]
      : [],
  );
  return (
    <ScrollX data-testid="bench-results-scroll" tabIndex={0} role="region" aria-label="Benchmark results (scrolls sideways)">
      <table className="w-full text-sm" data-testid="bench-results" aria-label="Benchmark results">
        <thead>
          <tr className="border-b">
            {/* The device column stands alone (it stays in view while the rest scrolls sideways). */}
            <th
              rowSpan={2}
              scope="col"
              data-key={columns[0]!.key}
              className={cn(
                "h-9 px-3 text-left align-bottom text-xs font-medium whitespace-nowrap text-muted-foreground",
                STICKY_FIRST,
                FIRST_EDGE,
              )}
            >
              {columns[0]!.title}
            </th>
            {BENCH_COLUMN_GROUPS.map((g, i) => (
              <th
                key={g.title}
                colSpan={i === 0 ? g.keys.length - 1 : g.keys.length}
                scope="colgroup"
                className={cn("h-8 px-3 text-left text-xs font-semibold whitespace-nowrap", i > 0 && "border-l")}
              >
                {i === 0 ? "Runtime" : g.title}
              </th>
            ))}
          </tr>
          <tr className="border-b">
            {columns.slice(1).map((c) => (
              <th
                key={c.key}
                scope="col"
                data-key={c.key}
                className={cn(
                  "h-9 px-3 align-bottom text-xs font-medium whitespace-nowrap text-muted-foreground",
                  c.numeric ? "text-right" : "text-left",
                  c.groupStart && "border-l",
                )}
              >
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {blocks.map(({ device, rows, previews }) => (
            <Fragment key={device.deviceId}>
              {rows.map((row, ri) => (
                <tr
                  key={`${device.deviceId}/${row.prompt}`}
                  className={cn("hover:bg-muted/40", ri === rows.length - 1 && "border-b")}
                  data-testid="bench-result-row"
                  data-device-id={device.deviceId}
                  data-prompt={row.prompt}
                >
                  {columns.map((c) => {
                    const perDevice = BENCH_DEVICE_KEYS.has(c.key);
                    if (perDevice && ri > 0) return null;
                    return (
                      <td
                        key={c.key}
                        rowSpan={perDevice ? rows.length : undefined}
                        data-key={c.key}
                        title={c.key === "prompt" ? `Answer: ${previews[ri] ?? ""}` : undefined}
                        className={cn(
                          "px-3 py-2",
                          c.key !== "device" && "whitespace-nowrap",
                          perDevice && "align-top",
                          c.numeric && "text-right tabular-nums",
                          c.groupStart && "border-l",
                          // On a phone a long name wraps, so the sticky column leaves room for the rest.
                          c.key === "device" &&
                            cn("max-w-32 font-medium break-words sm:max-w-none sm:whitespace-nowrap", STICKY_FIRST, FIRST_EDGE),
                          (c.key === "modelSha256" || c.key === "prompt") && "font-mono text-xs",
                        )}
                      >
                        <Cell column={c.key} row={row} />
                      </td>
                    );
                  })}
                </tr>
              ))}
            </Fragment>
          ))}
        </tbody>
      </table>
    </ScrollX>
  );
}

function Cell({ column, row }: { column: Key; row: BenchTableRow }) {
  const value = row[column];
  if (value === null) return <NotAvailable reason={NULL_REASONS[column] ?? "not reported"} />;
  if (column === "modelSha256") {
    return <span title={String(value)}>{String(value).slice(0, 12)}</span>;
  }
  if (column === "model") {
    return (
      <span className="inline-block max-w-48 truncate align-bottom" title={String(value)}>
        {String(value)}
      </span>
    );
  }
  return <>{formatBenchCell(column, row)}</>;
}
