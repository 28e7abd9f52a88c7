/**
 * orchard — the operator CLI. Parses the command line and calls the server's API.
 *   orchard devices [--json]
 *   orchard devices rotate DEVICE [--json]
 *   orchard chat DEVICE PROMPT [--max-tokens N] [--temperature T] [--json]
 *   orchard bench run|list|show|compare …
 *   orchard artifact push|list|rm …
 *   orchard rollout create|list|status|pause|resume|abort|rollback …
 * Configuration: ORCHARD_URL (default http://localhost:3000), ORCHARD_API_KEY.
 */
import { parseArgs } from "node:util";
import { createOrchardClient, describeError } from "./client.ts";
import { BENCH_DEFAULT_MAX_NEW_TOKENS } from "@orchard/contracts";
import { chooseDevices, listTable, render, renderComparison, waitForComparison, waitForRun, type BenchOutput } from "./bench.ts";
import { chat, resolveDevice } from "./chat.ts";
import { deviceRows } from "./devices.ts";
import { artifactTable, planPush, push, resolveArtifact } from "./artifact.ts";
import * as rollout from "./rollout.ts";

const USAGE = `usage: orchard <command> [--json]

commands:
  devices               list the fleet (name, status, runner, model, CPU, temperature, memory, disk)
  devices rotate DEVICE  give a device a new broker password (no re-enrolling; pending while it is offline)
  chat DEVICE PROMPT    ask the model on a device (id or name); the answer streams to stdout
                        [--max-tokens N (256)] [--temperature T (0 = greedy)]
  bench run             run the standard benchmark prompt set on devices
                        [--device ID-or-name]... | [--all-online]  [--max-tokens N (${BENCH_DEFAULT_MAX_NEW_TOKENS})]
                        [--name S] [--wait (follow it; exit 1 when a device failed)] [--csv | --markdown]
  bench list            benchmark runs, newest first
  bench show ID         a run's devices and results table [--csv | --markdown]
  bench compare         one device, several models (one per runtime) benchmarked in turn, original model restored
                        --device ID-or-name --models ARTIFACT-ID,ARTIFACT-ID[,…] [--max-tokens N (${BENCH_DEFAULT_MAX_NEW_TOKENS})]
                        [--name S] [--wait (follow it; exit 1 unless it completes)] [--csv | --markdown]
  artifact push MODEL [TOKENIZER…] | DIR
                        upload a model and its tokenizer files (resumable) and create the signed model;
                        DIR: a folder tools/export wrote, its orchard-model.json fills in the options below
                        --name N --version V --runtime sim|executorch|llama.cpp [--runtime-version X (sim: 1)]
                        [--profile P] [--max-context N] [--reference-prompt S] [--expected-ids 1,2,3]
  artifact list         models on the server, newest first, with the devices that run them
  artifact rm ID        delete a model (refused while a device runs it or a rollout uses it)
  rollout create        roll a model out to devices and/or tags
                        --artifact ID [--device ID-or-name]... [--tag T]... [--name S]
                        [--canary N (1)] [--batch N (5)] [--max-downloads N (3)] [--failure-threshold N (1)]
                        [--timeout 3h] [--retries N (1)] [--wait (follow it; exit 1 unless it completes)]
  rollout list          rollouts, newest first
  rollout status ID     a rollout's devices [--wait]
  rollout pause|resume|abort ID
  rollout rollback ID   switch the rollout's devices back to their previous model [--device ID-or-name]

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
        "max-tokens": { type: "string" },
        device: { type: "string", multiple: true, default: [] },
        "all-online": { type: "boolean", default: false },
        name: { type: "string" },
        wait: { type: "boolean", default: false },
        csv: { type: "boolean", default: false },
        markdown: { type: "boolean", default: false },
        temperature: { type: "string", default: "0" },
        version: { type: "string" },
        runtime: { type: "string" },
        "runtime-version": { type: "string" },
        profile: { type: "string" },
        "max-context": { type: "string" },
        "reference-prompt": { type: "string" },
        "expected-ids": { type: "string" },
        artifact: { type: "string" },
        tag: { type: "string", multiple: true, default: [] },
        canary: { type: "string" },
        batch: { type: "string" },
        "max-downloads": { type: "string" },
        "failure-threshold": { type: "string" },
        timeout: { type: "string" },
        retries: { type: "string" },
        models: { type: "string" },
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
        if (parsed.positionals[1] === "rotate") {
          const device = parsed.positionals[2];
          if (!device) fail(`usage: orchard devices rotate DEVICE (id or name)\n\n${USAGE}`, 2);
          const target = resolveDevice(await client.devices.list.query(), device);
          const result = await client.devices.rotateCredentials.mutate({ id: target.id });
          if (parsed.values.json) process.stdout.write(`${JSON.stringify({ deviceId: target.id, ...result }, null, 2)}\n`);
          else process.stdout.write(`${target.name}: ${result.state}. ${result.message}\n`);
          break;
        }
        if (parsed.positionals[1] !== undefined) fail(`unknown devices command ${JSON.stringify(parsed.positionals[1])}\n\n${USAGE}`, 2);
        const devices = await client.devices.list.query();
        if (parsed.values.json) process.stdout.write(`${JSON.stringify(devices, null, 2)}\n`);
        else process.stdout.write(devices.length === 0 ? "no devices enrolled yet (dashboard → Enroll)\n" : `${deviceRows(devices)}\n`);
        break;
      }
      case "chat": {
        const [, device, ...words] = parsed.positionals;
        const prompt = words.join(" ");
        if (!device || !prompt) fail(`usage: orchard chat DEVICE PROMPT\n\n${USAGE}`, 2);
        const maxTokens = Number(parsed.values["max-tokens"] ?? "256");
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
      case "bench": {
        const [, sub, id] = parsed.positionals;
        const v = parsed.values;
        if ([v.json, v.csv, v.markdown].filter(Boolean).length > 1) fail("choose one of --json, --csv, --markdown", 2);
        const output: BenchOutput = v.json ? "json" : v.csv ? "csv" : v.markdown ? "markdown" : "table";
        const out = (t: string) => process.stdout.write(t);
        const err = (t: string) => process.stderr.write(t);
        if (sub === "list") {
          const runs = await client.bench.list.query();
          out(v.json ? `${JSON.stringify(runs, null, 2)}\n` : `${listTable(runs)}\n`);
        } else if (sub === "show") {
          if (!id) fail("usage: orchard bench show ID", 2);
          out(render(await client.bench.get.query({ id }), output));
        } else if (sub === "run") {
          const maxTokens = v["max-tokens"] === undefined ? BENCH_DEFAULT_MAX_NEW_TOKENS : Number(v["max-tokens"]);
          if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 2048)
            fail("--max-tokens must be a whole number from 1 to 2048", 2);
          let deviceIds: string[];
          try {
            deviceIds = chooseDevices(await client.devices.list.query(), v.device, v["all-online"]);
          } catch (e) {
            fail((e as Error).message, 2);
          }
          const created = await client.bench.create.mutate({ deviceIds, maxNewTokens: maxTokens, ...(v.name ? { name: v.name } : {}) });
          if (!v.wait) {
            if (output === "table") {
              out(
                `started ${created.name} (${created.id}) on ${created.devices.length} devices; follow it with: orchard bench show ${created.id}\n`,
              );
            } else {
              out(render(created, output));
            }
            break;
          }
          err(`started ${created.name} (${created.id})\n`);
          const run = await waitForRun(client, created.id, { out, err });
          out(render(run, output));
          if (run.devices.some((d) => d.state === "failed")) process.exitCode = 1;
        } else if (sub === "compare") {
          const maxTokens = v["max-tokens"] === undefined ? undefined : Number(v["max-tokens"]);
          if (maxTokens !== undefined && (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 2048))
            fail("--max-tokens must be a whole number from 1 to 2048", 2);
          if (v.device.length !== 1) fail("choose one device with --device ID-or-name", 2);
          const refs = (v.models ?? "")
            .split(",")
            .map((m) => m.trim())
            .filter(Boolean);
          if (refs.length < 2) fail("choose at least two models with --models ID,ID (orchard artifact list shows them)", 2);
          let deviceId: string;
          let artifactIds: string[];
          try {
            deviceId = resolveDevice(await client.devices.list.query(), v.device[0]!).id;
            const artifacts = await client.artifacts.list.query();
            artifactIds = refs.map((r) => resolveArtifact(artifacts, r).id);
          } catch (e) {
            fail((e as Error).message, 2);
          }
          const created = await client.bench.compareRuntimes.mutate({
            deviceId,
            artifactIds,
            ...(maxTokens !== undefined ? { maxNewTokens: maxTokens } : {}),
            ...(v.name ? { name: v.name } : {}),
          });
          if (!v.wait) {
            out(
              output === "json"
                ? `${JSON.stringify(created, null, 2)}\n`
                : `started ${created.name} (${created.id}); follow it on the dashboard's Benchmarks page (or start it with --wait)\n`,
            );
            break;
          }
          err(`started ${created.name} (${created.id})\n`);
          const detail = await waitForComparison(client, created.id, { out, err });
          out(renderComparison(detail, output));
          if (detail.comparison.state !== "completed") {
            err(`orchard: the comparison ${detail.comparison.state}${detail.comparison.error ? `: ${detail.comparison.error}` : ""}\n`);
            process.exitCode = 1;
          }
        } else {
          fail(`usage: orchard bench run|list|show|compare\n\n${USAGE}`, 2);
        }
        break;
      }
      case "artifact": {
        const [, sub, ...rest] = parsed.positionals;
        const v = parsed.values;
        const out = (t: string) => process.stdout.write(t);
        if (sub === "push") {
          let plan;
          try {
            plan = await planPush({
              files: rest,
              name: v.name,
              version: v.version,
              runtime: v.runtime,
              runtimeVersion: v["runtime-version"],
              profile: v.profile,
              maxContext: v["max-context"],
              referencePrompt: v["reference-prompt"],
              expectedIds: v["expected-ids"],
            });
          } catch (e) {
            fail((e as Error).message, 2);
          }
          const artifact = await push(plan, {
            client,
            url,
            apiKey,
            err: (t) => process.stderr.write(t),
            tty: process.stderr.isTTY === true,
          });
          out(v.json ? `${JSON.stringify(artifact, null, 2)}\n` : `created ${artifact.name} ${artifact.version}: ${artifact.id}\n`);
        } else if (sub === "list") {
          const artifacts = await client.artifacts.list.query();
          out(v.json ? `${JSON.stringify(artifacts, null, 2)}\n` : `${artifactTable(artifacts)}\n`);
        } else if (sub === "rm") {
          if (!rest[0]) fail("usage: orchard artifact rm ID", 2);
          let target;
          try {
            target = resolveArtifact(await client.artifacts.list.query(), rest[0]);
          } catch (e) {
            fail((e as Error).message, 2);
          }
          await client.artifacts.remove.mutate({ id: target.id });
          out(v.json ? `${JSON.stringify({ deleted: target.id })}\n` : `deleted ${target.name} ${target.version} (${target.id})\n`);
        } else {
          fail(`usage: orchard artifact push|list|rm\n\n${USAGE}`, 2);
        }
        break;
      }
      case "rollout": {
        const [, sub, id] = parsed.positionals;
        const v = parsed.values;
        const io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t) };
        const show = (r: Awaited<ReturnType<typeof client.rollouts.get.query>>) =>
          io.out(v.json ? `${JSON.stringify(r, null, 2)}\n` : rollout.render(r));
        const follow = async (rolloutId: string) => {
          const r = await rollout.waitForRollout(client, rolloutId, io);
          show(r);
          process.exitCode = rollout.exitCodeFor(r);
        };
        if (sub === "create") {
          let input;
          try {
            const artifactId = v.artifact ? resolveArtifact(await client.artifacts.list.query(), v.artifact).id : undefined;
            input = rollout.createInput(
              {
                artifact: artifactId,
                devices: v.device,
                tags: v.tag,
                name: v.name,
                canary: v.canary,
                batch: v.batch,
                maxDownloads: v["max-downloads"],
                failureThreshold: v["failure-threshold"],
                timeout: v.timeout,
                retries: v.retries,
              },
              await client.devices.list.query(),
            );
          } catch (e) {
            fail((e as Error).message, 2);
          }
          const created = await client.rollouts.create.mutate(input);
          if (!v.wait) {
            show(created);
            break;
          }
          io.err(`started ${created.name} (${created.id})\n`);
          await follow(created.id);
        } else if (sub === "list") {
          const list = await client.rollouts.list.query();
          io.out(v.json ? `${JSON.stringify(list, null, 2)}\n` : `${rollout.listTable(list)}\n`);
        } else if (sub === "status") {
          if (!id) fail("usage: orchard rollout status ID [--wait]", 2);
          if (v.wait) await follow(id);
          else show(await client.rollouts.get.query({ id }));
        } else if (sub === "pause" || sub === "resume" || sub === "abort") {
          if (!id) fail(`usage: orchard rollout ${sub} ID`, 2);
          show(await client.rollouts[sub].mutate({ id }));
        } else if (sub === "rollback") {
          if (!id) fail("usage: orchard rollout rollback ID [--device ID-or-name]", 2);
          if (v.device.length > 1) fail("roll back one --device at a time, or the whole rollout without --device", 2);
          if (v.device.length === 1) {
            let deviceId: string;
            try {
              deviceId = resolveDevice(await client.devices.list.query(), v.device[0]!).id;
            } catch (e) {
              fail((e as Error).message, 2);
            }
            show(await client.rollouts.rollbackDevice.mutate({ id, deviceId }));
          } else {
            show(await client.rollouts.rollback.mutate({ id }));
          }
        } else {
          fail(`usage: orchard rollout create|list|status|pause|resume|abort|rollback\n\n${USAGE}`, 2);
        }
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
