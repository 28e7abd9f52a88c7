/**
 * The one way Orchard writes a number of bytes for people — the dashboard, the CLI,
 * the agent's refusals ("the model needs 6.5 GiB of RAM") and the server's alerts all
 * call formatBytes, so the same number reads the same everywhere.
 *
 * Binary units (powers of 1024, IEC names): memory and model files on a Pi are sized in
 * powers of two, and free(1), the kernel and the Pi's own tools count that way. A
 * value below 100 of its unit keeps one decimal, 100 and above none, bytes never:
 * "512 B", "1.5 KiB", "4.6 GiB", "23.5 GiB", "128 MiB".
 */

export const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;
export type ByteUnit = (typeof BYTE_UNITS)[number];

export interface FormatBytesOptions {
  /** Decimals below 100 of the unit (default 1); bytes are always whole. */
  digits?: number;
  /** What null or undefined (not measured) reads as; default "—". */
  missing?: string;
  /** Drops a ".0" ("2 GiB" rather than "2.0 GiB"), for chart axes. */
  trimZero?: boolean;
}

/** `bytes` in `unit` as a plain number: bytesIn(3 * 2 ** 20, "MiB") === 3 (for tables whose heading names the unit). */
export function bytesIn(bytes: number, unit: ByteUnit): number {
  return bytes / 1024 ** BYTE_UNITS.indexOf(unit);
}

/** 1536 → "1.5 KiB"; null → "—"; a negative or non-finite number → "?". */
export function formatBytes(bytes: number | null | undefined, options: FormatBytesOptions = {}): string {
  if (bytes === null || bytes === undefined) return options.missing ?? "—";
  if (!Number.isFinite(bytes) || bytes < 0) return "?";
  const digits = options.digits ?? 1;
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  let text = unit === 0 ? Math.round(value).toFixed(0) : value >= 100 ? value.toFixed(0) : value.toFixed(digits);
  // 1023.97 MiB rounds to "1024 MiB": that is 1.0 GiB.
  if (Number(text) >= 1024 && unit < BYTE_UNITS.length - 1) {
    unit++;
    text = (value / 1024).toFixed(digits);
  }
  if (options.trimZero && text.includes(".")) text = text.replace(/\.0+$/, "");
  return `${text} ${BYTE_UNITS[unit]}`;
}

/** A transfer rate: 8_388_608 → "8.0 MiB/s"; null → "—". */
export function formatByteRate(bytesPerSecond: number | null | undefined, options: FormatBytesOptions = {}): string {
  if (bytesPerSecond === null || bytesPerSecond === undefined) return options.missing ?? "—";
  return `${formatBytes(bytesPerSecond, options)}/s`;
}
