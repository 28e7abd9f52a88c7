#!/usr/bin/env node
// `npm test`'s export-tool step: tools/export's pytest suite in the project's .venv
// (npm run executorch:setup). Without .venv it says so and passes, except in CI, where
// .venv is part of the build and its absence is an error.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const python = path.join(root, ".venv/bin/python");
if (!existsSync(python)) {
  const message = "tools/export tests skipped: no .venv (run `npm run executorch:setup`)";
  if (process.env.CI) {
    process.stderr.write(`${message}; CI must run them\n`);
    process.exit(1);
  }
  process.stdout.write(`${message}\n`);
  process.exit(0);
}
const started = Date.now();
const r = spawnSync(python, ["-m", "pytest", "-q", "tests"], { cwd: path.join(root, "tools/export"), stdio: "inherit" });
process.stdout.write(`tools/export tests: exit ${r.status} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
process.exit(r.status ?? 1);
