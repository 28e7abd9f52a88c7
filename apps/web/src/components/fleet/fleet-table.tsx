"use client";
import type { DeviceSummary } from "@orchard/contracts";
import { Table, TableBody, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { DeviceRow } from "./device-row";

const COLUMNS = ["Device", "Status", "Last seen", "Agent", "Runner", "Model", "CPU", "SoC temp", "Throttling", "Memory", "Disk free"];

export function FleetTable({ devices }: { devices: DeviceSummary[] }) {
  return (
    <Table stack data-testid="fleet-table" aria-label="Devices">
      <TableHeader>
        <TableRow>
          {COLUMNS.map((c) => (
            <TableHead key={c}>{c}</TableHead>
          ))}
          <TableHead>
            <span className="sr-only">Actions</span>
          </TableHead>
        </TableRow>
      </TableHeader>
      <TableBody>
        {devices.map((d) => (
          <DeviceRow key={d.id} device={d} />
        ))}
      </TableBody>
    </Table>
  );
}
