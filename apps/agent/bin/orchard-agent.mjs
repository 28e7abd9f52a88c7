#!/usr/bin/env node
// Entry point of the `orchard-agent` command: runs dist/orchard-agent.mjs (the agent compiled
// by scripts/build.mjs) while it is up to date with the sources, else src/main.ts through tsx
// (scripts/lib/launch.mjs).
import { launch } from "../../../scripts/lib/launch.mjs";

await launch(import.meta.url, "orchard-agent", "src/main.ts");
