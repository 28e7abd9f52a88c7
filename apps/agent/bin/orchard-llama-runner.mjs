#!/usr/bin/env node
// Entry point of the `orchard-llama-runner` command (the llama.cpp runner): lets Node load the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
await import("../src/llama-runner/main.ts");
