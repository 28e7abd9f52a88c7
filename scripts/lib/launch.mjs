// The compiled JavaScript of the CLI and the agent (apps/*/dist, bundled by
// scripts/build.mjs with esbuild) and how their bin entries choose it. A bundle is used
// only while every source file it was built from is unchanged (same size and mtime, as
// recorded in <name>.inputs.json beside it); otherwise, or when there is no bundle (a
// checkout installed with --ignore-scripts), the bin runs the TypeScript sources
// through tsx as before, so an edited source is never shadowed by a stale bundle.
// This file is imported by the bin entries: it must stay plain JavaScript and cheap.
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Where a bundle's record of its inputs is kept: `<bundle>.inputs.json`. */
export const inputsFile = (bundle) => `${bundle}.inputs.json`;

/** size and mtime of a file, as recorded: null when it is missing. */
export function fileStamp(file) {
  try {
    const st = statSync(file);
    return `${st.size}:${Math.trunc(st.mtimeMs)}`;
  } catch {
    return null;
  }
}

/**
 * Why the bundle cannot be used (its record is missing or unreadable, a source changed or went),
 * or null when it is up to date. Paths in the record are relative to `root`.
 */
export function bundleStaleReason(bundle, root) {
  let record;
  try {
    record = JSON.parse(readFileSync(inputsFile(bundle), "utf8"));
  } catch {
    return "not built";
  }
  if (!record || typeof record.inputs !== "object" || record.inputs === null) return "its record of sources is unreadable";
  if (fileStamp(bundle) !== record.bundle) return "the bundle changed after it was built";
  for (const [rel, stamp] of Object.entries(record.inputs)) {
    if (fileStamp(path.join(root, rel)) !== stamp) return `${rel} changed`;
  }
  return null;
}

/**
 * Runs a bin entry: `dist/<name>.mjs` of the package when it is up to date, else `source`
 * (relative to the package) through tsx. ORCHARD_FROM_SOURCE=1 always runs the source;
 * ORCHARD_LAUNCH_DEBUG=1 says on stderr which one runs and why.
 */
export async function launch(binUrl, name, source) {
  const pkgDir = path.resolve(path.dirname(fileURLToPath(binUrl)), "..");
  const root = path.resolve(pkgDir, "../..");
  const bundle = path.join(pkgDir, "dist", `${name}.mjs`);
  const stale = process.env.ORCHARD_FROM_SOURCE === "1" ? "ORCHARD_FROM_SOURCE=1" : bundleStaleReason(bundle, root);
  if (process.env.ORCHARD_LAUNCH_DEBUG === "1") {
    process.stderr.write(stale ? `launch: ${name} from source (${stale})\n` : `launch: ${name} from dist/${name}.mjs\n`);
  }
  if (!stale) {
    await import(pathToFileURL(bundle).href);
    return;
  }
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(path.join(pkgDir, source)).href);
}
