/** The agent's version, as reported in its status and sent at enrollment: the package's own version. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { AGENT_PACKAGE_DIR } from "./lib/package-dir.js";

const PackageJson = z.object({ version: z.string().min(1).max(64) });

export const AGENT_VERSION: string = PackageJson.parse(
  JSON.parse(readFileSync(path.join(AGENT_PACKAGE_DIR, "package.json"), "utf8")),
).version;
