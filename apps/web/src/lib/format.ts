/**
 * How the dashboard writes numbers, sizes, temperatures and times. Every
 * function takes what a device reported and returns display text; null never
 * becomes 0 (callers show NotAvailable instead).
 */

/** Sizes: one formatter for the dashboard, the CLI and the server's messages (binary units: "4.6 GiB"). */
export { formatByteRate, formatBytes } from "@orchard/format";

export function formatPercent(value: number): string {
  return `${value < 10 ? value.toFixed(1) : value.toFixed(0)}%`;
}

export function formatTemp(celsius: number): string {
  return `${celsius.toFixed(1)} °C`;
}

export function formatLoad(value: number): string {
  return value.toFixed(2);
}

/** Short relative time: "just now", "42s ago", "5 min ago", "3 h ago", "2 d ago"; future: "in 12 min". */
export function formatRelative(ts: number, now: number): string {
  const diff = now - ts;
  const abs = Math.abs(diff);
  const future = diff < 0;
  let text: string;
  if (abs < 5_000) return future ? "now" : "just now";
  if (abs < 60_000) text = `${Math.floor(abs / 1000)}s`;
  else if (abs < 3600_000) text = `${Math.floor(abs / 60_000)} min`;
  else if (abs < 86400_000) text = `${Math.floor(abs / 3600_000)} h`;
  else text = `${Math.floor(abs / 86400_000)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** 90_500 → "1 min 30 s"; for durations such as a restart delay. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function formatDateTime(ts: number): string {
  return dateTime.format(ts);
}

export function formatTime(ts: number): string {
  return timeOnly.format(ts);
}

/** 0.83 → "0.8 tok/s", 20.06 → "20.1 tok/s"; below 0.1 two decimals so a very slow device does not read as 0. */
export function formatTokS(value: number): string {
  return `${value > 0 && value < 0.1 ? value.toFixed(2) : value.toFixed(1)} tok/s`;
}

/** 420 → "420 ms", 1450 → "1.4 s", 75_000 → "1 min 15 s": for latencies such as time to first token. */
export function formatLatency(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(ms);
}

/** 1 → "1 token", 42 → "42 tokens". */
export function formatTokens(count: number): string {
  return `${count.toLocaleString("en-US")} ${count === 1 ? "token" : "tokens"}`;
}
