/**
 * orchard-llama-runner: the llama.cpp runner (started through
 * apps/agent/bin/orchard-llama-runner.mjs). Parses flags and wires the engine to
 * the protocol loop; stdout carries protocol lines only, everything else goes to
 * stderr. docs/runner.md ("The llama.cpp runner") describes it.
 */
import { parseArgs } from "node:util";
import type { RunnerMessage } from "@orchard/contracts";
import { z } from "zod";
import { AGENT_VERSION } from "../version.ts";
import { LlamaEngine, llamaCppVersion, loadLlama, readMemory } from "./engine.ts";
import { RunnerServer } from "./server.ts";

const USAGE = `usage: orchard-llama-runner --model FILE.gguf [--threads N] [--context N] [--model-name NAME]
       orchard-llama-runner --capabilities
  --threads N     llama.cpp threads (default 1; set it: more threads than cores is very slow)
  --context N     context size in tokens (default: the model's trained context, at most 4096)
  --model-name S  the name reported in ready (default: the GGUF's general.name)`;

const Flags = z.object({
  model: z.string().min(1).optional(),
  threads: z.coerce.number().int().min(1).max(256).default(1),
  context: z.coerce.number().int().min(16).max(1_048_576).optional(),
  "model-name": z.string().min(1).max(200).optional(),
  capabilities: z.boolean().default(false),
  help: z.boolean().default(false),
});

const log = (message: string) => process.stderr.write(`orchard-llama-runner: ${message}\n`);

/** Protocol lines only; one write per line. */
function writeMessage(message: RunnerMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function main(argv: string[]): Promise<number> {
  // Nothing but protocol lines may reach stdout: route console output of any library to stderr.
  console.log = console.error;
  console.info = console.error;
  console.debug = console.error;

  let flags: z.infer<typeof Flags>;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        model: { type: "string" },
        threads: { type: "string" },
        context: { type: "string" },
        "model-name": { type: "string" },
        capabilities: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    const parsed = Flags.safeParse(values);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`--${issue?.path.join(".")}: ${issue?.message}`);
    }
    flags = parsed.data;
  } catch (error) {
    log(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    process.stderr.write(`${USAGE}\n`);
    return 0;
  }

  if (flags.capabilities) {
    const llama = await loadLlama(1, log);
    const release = llamaCppVersion(llama);
    await llama.dispose();
    process.stdout.write(
      `${JSON.stringify({ version: AGENT_VERSION, runtimes: { "llama.cpp": { versions: [release], profiles: [] } } })}\n`,
    );
    return 0;
  }

  if (!flags.model) {
    log(`--model FILE.gguf is required\n${USAGE}`);
    return 2;
  }

  const started = performance.now();
  let engine: LlamaEngine;
  try {
    const llama = await loadLlama(flags.threads, log);
    engine = await LlamaEngine.load({
      llama,
      modelPath: flags.model,
      threads: flags.threads,
      context: flags.context ?? null,
      modelName: flags["model-name"] ?? null,
      log,
    });
  } catch (error) {
    const message = `cannot load ${flags.model}: ${(error as Error).message}`;
    log(message);
    writeMessage({ type: "error", code: "load_failed", message });
    return 1;
  }
  const memory = await readMemory();
  writeMessage({
    type: "ready",
    backend: "llamacpp",
    model: engine.modelName,
    max_context: engine.maxContext,
    load_ms: performance.now() - started,
    rss_bytes: memory.rss,
    version: AGENT_VERSION,
  });

  return new Promise<number>((resolve) => {
    const server = new RunnerServer(engine, writeMessage, log, resolve);
    process.stdin.on("data", (chunk: Buffer) => server.push(chunk));
    process.stdin.on("end", () => server.end());
    process.stdin.on("error", () => server.end());
  });
}

process.on("SIGPIPE", () => undefined);
process.stdout.on("error", () => undefined);

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`fatal: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
