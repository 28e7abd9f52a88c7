#!/usr/bin/env node
// Entry point of the `orchard-agent` command: lets Node load the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
