export * from "./artifacts.ts";
export * from "./upload.ts";
export * from "./telemetry-series.ts";
export * from "./fleet-overview.ts";
export * from "./roles.ts";
export * from "./audit-actions.ts";
export * from "./bench.ts";
export * from "./bench-table.ts";
