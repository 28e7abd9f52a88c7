/** `orchard artifact push DIR`: a folder tools/export wrote becomes a push plan from its orchard-model.json. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { planPush, type PushOptions } from "./artifact.ts";

const NONE: PushOptions = {
  files: [],
  name: undefined,
  version: undefined,
  runtime: undefined,
  runtimeVersion: undefined,
  profile: undefined,
  maxContext: undefined,
  referencePrompt: undefined,
  expectedIds: undefined,
};

const MANIFEST = {
  name: "tiny-gemma4",
  version: "0.1.0",
  runtime: "executorch",
  runtimeVersion: "1.5.1",
  profile: "gemma4-extcache",
  maxContext: 63,
  reference: { prompt: "The capital of France is", expectedTokenIds: [284, 748, 157] },
  weights: "random",
  promptTokenIds: [2, 105],
};

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function exportFolder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-export-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

const FOLDER = {
  "orchard-model.json": JSON.stringify(MANIFEST),
  "model.pte": "pte bytes",
  "tokenizer.json": "{}",
  "tokenizer_config.json": "{}",
  "chat_template.jinja": "{{ bos_token }}",
};

describe("planPush of an exported folder", () => {
  it("takes the .pte first, the other files after it, and every option from orchard-model.json", async () => {
    const dir = await exportFolder(FOLDER);
    const plan = await planPush({ ...NONE, files: [dir] });
    expect(plan.files.map((f) => [f.name, f.role])).toEqual([
      ["model.pte", "model"],
      ["chat_template.jinja", "other"],
      ["tokenizer.json", "tokenizer"],
      ["tokenizer_config.json", "tokenizer_config"],
    ]);
    expect(plan).toMatchObject({
      name: "tiny-gemma4",
      version: "0.1.0",
      runtime: "executorch",
      runtimeVersion: "1.5.1",
      profile: "gemma4-extcache",
      maxContext: 63,
      reference: { prompt: "The capital of France is", expectedTokenIds: [284, 748, 157] },
    });
  });

  it("lets the command line override the manifest; another reference prompt drops the manifest's ids", async () => {
    const dir = await exportFolder(FOLDER);
    const plan = await planPush({ ...NONE, files: [dir], version: "2", referencePrompt: "Hello" });
    expect(plan.version).toBe("2");
    expect(plan.reference).toEqual({ prompt: "Hello", expectedTokenIds: null });
  });

  it("says what is wrong with the folder", async () => {
    const bare = await exportFolder({ "model.pte": "x" });
    await expect(planPush({ ...NONE, files: [bare] })).rejects.toThrow(/folder without orchard-model.json/);
    const two = await exportFolder({ ...FOLDER, "other.pte": "y" });
    await expect(planPush({ ...NONE, files: [two] })).rejects.toThrow(/exactly one .pte file \(it has model.pte, other.pte\)/);
    const bad = await exportFolder({ ...FOLDER, "orchard-model.json": JSON.stringify({ ...MANIFEST, maxContext: -1 }) });
    await expect(planPush({ ...NONE, files: [bad] })).rejects.toThrow(/orchard-model.json: maxContext:/);
    const notJson = await exportFolder({ ...FOLDER, "orchard-model.json": "{" });
    await expect(planPush({ ...NONE, files: [notJson] })).rejects.toThrow(/is not JSON/);
  });
});
