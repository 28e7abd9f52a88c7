/**
 * apps/agent, found from where this code runs: src/lib/ through tsx or dist/ (the bundle
 * scripts/build.mjs makes), so paths to the package's files and the repository's runner
 * build do not depend on which of the two is running.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest folder at or above `from`'s folder holding a package.json. */
export function packageDirOf(from: string): string {
  let dir = path.dirname(fileURLToPath(from));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(from)}`);
    dir = up;
  }
  return dir;
}

/** apps/agent. */
export const AGENT_PACKAGE_DIR = packageDirOf(import.meta.url);
