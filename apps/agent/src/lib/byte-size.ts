/**
 * Human sizes on command lines ("64MiB", "2GiB", "1.5G", "500MB", "4k", or a plain
 * number of bytes): K/M/G/T and KiB/MiB/GiB/TiB are binary, KB/MB/GB/TB decimal.
 * Used by the agent's --models-quota and by `npm run sim-model -- --size`.
 */
const BYTE_UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
  tb: 1000 ** 4,
};

/** The size in bytes; null when the text is not a size or is not a whole number of bytes. */
export function parseByteSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return null;
  const unit = BYTE_UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Number(m[1]) * unit;
  return Number.isSafeInteger(bytes) ? bytes : null;
}
