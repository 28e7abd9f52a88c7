/**
 * orchard — the operator CLI. Parses the command line and calls the server's API.
 *   orchard devices [--json]
 *   orchard chat DEVICE PROMPT [--max-tokens N] [--temperature T] [--json]
 * Configuration: ORCHARD_URL (default http://localhost:3000), ORCHARD_API_KEY.
 */
import { parseArgs } from "node:util";
import { createOrchardClient, describeError } from "./client.ts";
import { chat, resolveDevice } from "./chat.ts";
import { deviceRows } from "./devices.ts";

const USAGE = `usage: orchard <command> [--json]

commands:
  devices               list the fleet (name, status, runner, model, CPU, temperature, memory, disk)
  chat DEVICE PROMPT    ask the model on a device (id or name); the answer streams to stdout
                        [--max-tokens N (256)] [--temperature T (0 = greedy)]

environment:
  ORCHARD_URL      server URL (default http://localhost:3000)
  ORCHARD_API_KEY  API key (the server's ORCHARD_API_KEY, or a key created in the dashboard)
`;

function fail(message: string, code = 1): never {
  process.stderr.write(`orchard: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
        "max-tokens": { type: "string", default: "256" },
        temperature: { type: "string", default: "0" },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`, 2);
  }
  const [command] = parsed.positionals;
  if (parsed.values.help || !command) {
    process.stdout.write(USAGE);
    process.exit(command || parsed.values.help ? 0 : 2);
  }
  const url = process.env.ORCHARD_URL || "http://localhost:3000";
  const apiKey = process.env.ORCHARD_API_KEY;
  if (!apiKey) fail("set ORCHARD_API_KEY to an API key (the server's ORCHARD_API_KEY, or one created in the dashboard)", 2);
  const client = createOrchardClient({ url, apiKey });

  try {
    switch (command) {
      case "devices": {
        const devices = await client.devices.list.query();
        if (parsed.values.json) process.stdout.write(`${JSON.stringify(devices, null, 2)}\n`);
        else process.stdout.write(devices.length === 0 ? "no devices enrolled yet (dashboard → Enroll)\n" : `${deviceRows(devices)}\n`);
        break;
      }
      case "chat": {
        const [, device, ...words] = parsed.positionals;
        const prompt = words.join(" ");
        if (!device || !prompt) fail(`usage: orchard chat DEVICE PROMPT\n\n${USAGE}`, 2);
        const maxTokens = Number(parsed.values["max-tokens"]);
        const temperature = Number(parsed.values.temperature);
        if (!Number.isInteger(maxTokens) || maxTokens < 1) fail("--max-tokens must be a positive whole number", 2);
        if (!Number.isFinite(temperature) || temperature < 0 || temperature > 2) fail("--temperature must be between 0 and 2", 2);
        const target = resolveDevice(await client.devices.list.query(), device);
        await chat({
          url,
          apiKey,
          deviceId: target.id,
          prompt,
          maxTokens,
          temperature,
          json: parsed.values.json,
          out: (t) => process.stdout.write(t),
          err: (t) => process.stderr.write(t),
        });
        break;
      }
      default:
        fail(`unknown command "${command}"\n\n${USAGE}`, 2);
    }
  } catch (err) {
    fail(describeError(err, url));
  }
}

await main();
