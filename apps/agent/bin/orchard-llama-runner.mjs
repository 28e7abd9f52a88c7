#!/usr/bin/env node
// Entry point of the `orchard-llama-runner` command (the llama.cpp runner): runs
// dist/orchard-llama-runner.mjs while it is up to date with the sources, else
// src/llama-runner/main.ts through tsx (scripts/lib/launch.mjs).
import { launch } from "../../../scripts/lib/launch.mjs";

await launch(import.meta.url, "orchard-llama-runner", "src/llama-runner/main.ts");
