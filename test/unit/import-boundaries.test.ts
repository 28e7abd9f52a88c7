/**
 * Import boundaries (issue #16): the CLI imported apps/web/src/lib/artifacts.ts, upload.ts and the
 * server's router by relative path, and the server imported the dashboard's lib/ (telemetry
 * series, roles, bench …). What two of them share now lives in packages/ (@orchard/client,
 * @orchard/contracts, @orchard/format). This guard scans apps/ and packages/ for imports across
 * those lines again:
 * - no relative import from one app into another (apps/X → apps/Y);
 * - another app only by its package name and only `import type` (erased, so no server code in
 *   the CLI's bundle), e.g. `import type { AppRouter } from "@orchard/web/router"`;
 * - no import of apps/web/src/server/** from the browser's lib/, components/ or app/;
 * - none from the server into the browser's lib/, components/ or app/;
 * - packages/* never import apps/*.
 * (test/ may import from apps: it tests them.)
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "generated" || name === "dist" || name.startsWith(".")) continue;
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) sources(file, out);
    else if (/\.(ts|tsx|mts|mjs)$/.test(name)) out.push(file);
  }
  return out;
}

interface Import {
  line: number;
  specifier: string;
  typeOnly: boolean;
}

/** Static imports and re-exports (also across lines) and dynamic import("…") with a literal. */
function importsOf(text: string): Import[] {
  const found: Import[] = [];
  const lineAt = (index: number) => text.slice(0, index).split("\n").length;
  const statics = /^[ \t]*(?:import|export)\s+(type\s+)?(?:[^;"'`]*?\bfrom\s+)?["']([^"']+)["']/gm;
  for (const m of text.matchAll(statics)) found.push({ line: lineAt(m.index), specifier: m[2]!, typeOnly: Boolean(m[1]) });
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) {
    found.push({ line: lineAt(m.index), specifier: m[1]!, typeOnly: false });
  }
  return found;
}

/** Where a file is: which app or package, and for apps/web whether browser or server code. */
function placeOf(rel: string): { top: string; area: "server" | "browser" | null } {
  const [kind, name] = rel.split("/");
  const top = `${kind}/${name}`;
  if (top !== "apps/web") return { top, area: null };
  if (rel.startsWith("apps/web/src/server/")) return { top, area: "server" };
  if (/^apps\/web\/src\/(lib|components|app)\//.test(rel)) return { top, area: "browser" };
  return { top, area: null };
}

const APP_PACKAGES: Record<string, string> = { "@orchard/web": "apps/web", "@orchard/cli": "apps/cli", "@orchard/agent": "apps/agent" };

/** Every import that crosses a boundary, as "file:line: why: specifier". */
function boundaryOffenders(repoRoot: string): { files: number; offenders: string[] } {
  const files = [...sources(path.join(repoRoot, "apps")), ...sources(path.join(repoRoot, "packages"))];
  const offenders: string[] = [];
  for (const file of files) {
    const rel = path.relative(repoRoot, file).split(path.sep).join("/");
    const from = placeOf(rel);
    for (const imp of importsOf(readFileSync(file, "utf8"))) {
      const say = (why: string) => offenders.push(`${rel}:${imp.line}: ${why}: ${imp.specifier}`);
      let target: string | null = null;
      if (imp.specifier.startsWith(".")) target = path.relative(repoRoot, path.resolve(path.dirname(file), imp.specifier));
      else if (imp.specifier.startsWith("@/") && from.top === "apps/web") target = `apps/web/src/${imp.specifier.slice(2)}`;
      const appPackage = Object.keys(APP_PACKAGES).find((p) => imp.specifier === p || imp.specifier.startsWith(`${p}/`));
      if (appPackage) {
        if (from.top.startsWith("packages/")) say("a package imports an app");
        else if (APP_PACKAGES[appPackage] !== from.top && !imp.typeOnly) say("another app's package imported for more than its types");
      }
      if (target === null) continue;
      target = target.split(path.sep).join("/");
      const to = placeOf(target);
      if (from.top.startsWith("packages/") && target.startsWith("apps/")) say("a package imports an app");
      else if (from.top.startsWith("apps/") && target.startsWith("apps/") && to.top !== from.top)
        say(`${from.top} imports ${to.top} by path`);
      else if (from.area === "browser" && to.area === "server") say("browser code imports server code");
      else if (from.area === "server" && to.area === "browser") say("server code imports the browser's lib/components/app");
    }
  }
  return { files: files.length, offenders };
}

describe("import boundaries", () => {
  it("reads imports the way they are written: multi-line, type-only, re-exports and dynamic", () => {
    const text = [
      'import type { A } from "../../web/src/server/trpc/root.ts";',
      "import {",
      "  b,",
      "  c,",
      '} from "@/lib/roles";',
      'export { d } from "./d.ts";',
      'const e = await import("../x.ts");',
      ' * import { not } from "a-comment";',
      'export const f = "not an import";',
    ].join("\n");
    expect(importsOf(text)).toEqual([
      { line: 1, specifier: "../../web/src/server/trpc/root.ts", typeOnly: true },
      { line: 2, specifier: "@/lib/roles", typeOnly: false },
      { line: 6, specifier: "./d.ts", typeOnly: false },
      { line: 7, specifier: "../x.ts", typeOnly: false },
    ]);
  });

  it("no app imports another by path, browser and server code stay apart, and packages never import apps", () => {
    const { files, offenders } = boundaryOffenders(root);
    expect(files).toBeGreaterThan(100);
    expect(
      offenders,
      "share code through packages/ (@orchard/client, @orchard/contracts, @orchard/format); another app only as `import type` from its package name",
    ).toEqual([]);
  });
});
