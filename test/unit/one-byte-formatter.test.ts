/**
 * One unit system (issue #15): the dashboard said "4.6 GB / 23.5 GB" and the CLI
 * "3.7 GiB/24 GiB" for the same kind of figure, from five separate byte formatters.
 * Every size people read now comes from @orchard/format's formatBytes; this guard
 * scans apps/ and packages/ for byte arithmetic or unit names done by hand again.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { formatBytes } from "@orchard/format";
import { describe, expect, it } from "vitest";
import { bytes as cliBytes } from "../../apps/cli/src/format.ts";
import { formatBytes as dashboardBytes } from "../../apps/web/src/lib/format.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "generated" || name === "dist" || name.startsWith(".")) continue;
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) sources(file, out);
    else if (/\.(ts|tsx|mts|mjs)$/.test(name) && !/\.test\.tsx?$/.test(name)) out.push(file);
  }
  return out;
}

/** Hand-made byte formatting: dividing by 1024 or 2**10/20/30/40, a number followed by a size unit in a template, a list of unit names. */
const AD_HOC = [
  { what: "division by a power of 1024", re: /\/\s*\(?\s*(1024\b|2\s*\*\*\s*(10|20|30|40)\b|1024\s*\*\*)/ },
  { what: "a formatted number followed by a size unit", re: /\}\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\b/ },
  { what: "a table of size units", re: /\[\s*["'`]B["'`]\s*,\s*["'`](KB|KiB)["'`]/ },
];

describe("one byte formatter", () => {
  it("the CLI and the dashboard render a size with the same function, so the same number reads the same", () => {
    for (const n of [0, 512, 1536, 3.7 * 2 ** 30, 4.6 * 2 ** 30, 23.5 * 2 ** 30, 24 * 2 ** 30]) {
      expect(cliBytes(n)).toBe(dashboardBytes(n));
      expect(cliBytes(n)).toBe(formatBytes(n));
    }
    expect(cliBytes(24 * 2 ** 30)).toBe("24.0 GiB");
    expect(dashboardBytes(4.6 * 2 ** 30)).toBe("4.6 GiB");
  });

  it("no source in apps/ or packages/ formats bytes by hand", () => {
    const offenders: string[] = [];
    const files = [...sources(path.join(root, "apps")), ...sources(path.join(root, "packages"))].filter(
      (f) => !f.startsWith(path.join(root, "packages/format/")),
    );
    expect(files.length).toBeGreaterThan(100);
    for (const file of files) {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((line, i) => {
          const code = line.replace(/\/\/.*$/, "").replace(/^\s*\*.*$/, "");
          for (const { what, re } of AD_HOC) {
            if (re.test(code)) offenders.push(`${path.relative(root, file)}:${i + 1}: ${what}: ${line.trim()}`);
          }
        });
    }
    expect(offenders, "format sizes with formatBytes/formatByteRate/bytesIn from @orchard/format").toEqual([]);
  });
});
