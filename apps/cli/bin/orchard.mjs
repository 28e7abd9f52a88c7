#!/usr/bin/env node
// Entry point of the `orchard` command: runs dist/orchard.mjs (the CLI compiled by
// scripts/build.mjs) while it is up to date with the sources, else src/main.ts through tsx
// (scripts/lib/launch.mjs).
import { launch } from "../../../scripts/lib/launch.mjs";

await launch(import.meta.url, "orchard", "src/main.ts");
