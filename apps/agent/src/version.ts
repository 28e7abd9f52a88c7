/** The agent's version, as reported in its status and sent at enrollment: the package's own version. */
import { readFileSync } from "node:fs";
import { z } from "zod";

const PackageJson = z.object({ version: z.string().min(1).max(64) });

export const AGENT_VERSION: string = PackageJson.parse(
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")),
).version;
