import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type TestArtifact, bytes, makeArtifact, makeSigner } from "../../test/helpers/rollout.js";
import type { RunnerConfig } from "../config/cli.js";
import { createLogger, silentLogger } from "../lib/logger.js";
import { ModelStore, NO_MODELS, UnsafeFileNameError, describeModel } from "./model-store.js";
import { artifactKeyId, signatureProblem } from "./signature.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-models-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const signer = makeSigner();
const CLI: RunnerConfig = {
  backend: "executorch",
  bin: { path: "orchard-runner", source: "PATH" },
  model: "/opt/models/cli.pte",
  tokenizer: "/opt/models/tok",
  profile: null,
  extraArgs: ["--threads", "4"],
  llamaThreads: 2,
};

async function stage(store: ModelStore, a: TestArtifact): Promise<void> {
  await mkdir(store.artifactDir(a.artifactId), { recursive: true });
  for (const f of a.files) await writeFile(store.filePath(a.artifactId, f.name), f.data);
}

describe("ModelStore", () => {
  it("keeps every file name inside its artifact's folder", () => {
    const store = new ModelStore({ dataDir: dir, quotaBytes: null, logger: silentLogger });
    const id = "a".repeat(64);
    expect(store.filePath(id, "model.pte")).toBe(path.join(dir, "models", id, "model.pte"));
    for (const bad of ["../agent.json", "a/b", "..", ".partial", "x\\y", ""]) {
      expect(() => store.filePath(id, bad)).toThrow(UnsafeFileNameError);
    }
    expect(() => store.artifactDir("../../etc")).toThrow();
  });

  it("current.json round-trips; missing is no model; damaged is logged and no model", async () => {
    const lines: string[] = [];
    const store = new ModelStore({
      dataDir: dir,
      quotaBytes: null,
      logger: createLogger({ level: "error", format: "json", write: (l) => lines.push(l) }),
    });
    expect(await store.readCurrent()).toEqual(NO_MODELS);
    const a = makeArtifact(signer, { seed: 1 });
    const current = { version: 1 as const, active: { artifactId: a.artifactId, signed: a.signed }, previous: null, updatedAt: 5 };
    await store.writeCurrent(current);
    expect(await store.readCurrent()).toEqual(current);
    await writeFile(store.currentFile, "{torn");
    expect(await store.readCurrent()).toEqual(NO_MODELS);
    expect(lines.join("\n")).toMatch(/current\.json is not valid/);
  });

  it("counts what is on disk against the quota and deletes only what it is not told to keep", async () => {
    const store = new ModelStore({ dataDir: dir, quotaBytes: 1_000_000, logger: silentLogger });
    const a = makeArtifact(signer, { seed: 1, size: 300_000 });
    const b = makeArtifact(signer, { seed: 2, size: 200_000 });
    await stage(store, a);
    await mkdir(store.partialDir(b.artifactId), { recursive: true });
    await writeFile(store.partialPath(b.artifactId, b.manifest.files[0]!.sha256), bytes(50_000, 3));
    expect(await store.isInstalled({ artifactId: a.artifactId, signed: a.signed })).toBe(true);
    expect(await store.isInstalled({ artifactId: b.artifactId, signed: b.signed })).toBe(false);
    expect(await store.presentBytes(b.artifactId, b.manifest)).toBe(50_000);
    expect(await store.usedBytes()).toBe(350_000);
    const room = await store.freeBytes();
    expect(room.quotaLeft).toBe(650_000);
    expect(room.free).toBe(Math.min(650_000, room.diskFree));

    expect(await store.prune(new Set([a.artifactId]))).toBe(50_000);
    expect(existsSync(store.artifactDir(b.artifactId))).toBe(false);
    expect(existsSync(store.artifactDir(a.artifactId))).toBe(true);
  });

  it("stages a finished download durably, and again after a crash is a no-op", async () => {
    const store = new ModelStore({ dataDir: dir, quotaBytes: null, logger: silentLogger });
    const a = makeArtifact(signer, { seed: 4 });
    const file = { ...a.manifest.files[0]! };
    await mkdir(store.partialDir(a.artifactId), { recursive: true });
    await writeFile(store.partialPath(a.artifactId, file.sha256), a.files[0]!.data);
    await store.stageFile(a.artifactId, file);
    expect(await readFile(store.filePath(a.artifactId, file.name))).toEqual(a.files[0]!.data);
    await store.stageFile(a.artifactId, file);
    await rm(store.filePath(a.artifactId, file.name));
    await expect(store.stageFile(a.artifactId, file)).rejects.toThrow(/neither the download .* nor the staged file is there/);
  });

  it("launches a rolled-out model in place of the command line's, with the right flags per runtime", () => {
    const store = new ModelStore({ dataDir: dir, quotaBytes: null, logger: silentLogger });
    expect(store.launchFor(null, CLI)).toEqual({
      backend: "executorch",
      model: CLI.model,
      tokenizer: CLI.tokenizer,
      profile: null,
      extraArgs: ["--threads", "4"],
    });
    const et = makeArtifact(signer, {
      runtime: "executorch",
      runtimeVersion: "1.2.0",
      profile: "gemma4-e2b-extcache",
      files: [
        { name: "tokenizer.json", role: "tokenizer", data: Buffer.from("{}") },
        { name: "gemma.pte", role: "model", data: bytes(10, 1) },
      ],
    });
    expect(store.launchFor({ artifactId: et.artifactId, signed: et.signed }, CLI)).toEqual({
      backend: "executorch",
      model: path.join(dir, "models", et.artifactId, "gemma.pte"),
      tokenizer: path.join(dir, "models", et.artifactId),
      profile: "gemma4-e2b-extcache",
      extraArgs: ["--threads", "4"],
    });
    const sim = makeArtifact(signer, { seed: 5 });
    // --runner-arg flags were written for the executorch runner: not passed to a sim model.
    expect(store.launchFor({ artifactId: sim.artifactId, signed: sim.signed }, CLI)).toEqual({
      backend: "sim",
      model: path.join(dir, "models", sim.artifactId, "model.bin"),
      tokenizer: null,
      profile: null,
      extraArgs: [],
    });
    // A llama.cpp artifact runs on the llamacpp backend whatever --runner says (a rollout switches runtimes).
    const gguf = makeArtifact(signer, {
      runtime: "llama.cpp",
      runtimeVersion: "b6000",
      files: [{ name: "tiny.gguf", role: "model", data: bytes(10, 2) }],
    });
    expect(store.launchFor({ artifactId: gguf.artifactId, signed: gguf.signed }, CLI)).toEqual({
      backend: "llamacpp",
      model: path.join(dir, "models", gguf.artifactId, "tiny.gguf"),
      tokenizer: null,
      profile: null,
      extraArgs: [],
    });
    expect(store.launchFor({ artifactId: gguf.artifactId, signed: gguf.signed }, { ...CLI, backend: "llamacpp" }).extraArgs).toEqual([
      "--threads",
      "4",
    ]);
    expect(describeModel({ artifactId: et.artifactId, signed: et.signed })).toEqual({
      name: "test-model",
      sha256: et.manifest.files[1]!.sha256,
      artifactId: et.artifactId,
      version: "v1",
      runtime: "executorch",
    });
  });
});

describe("manifest signatures", () => {
  it("verify with the server's key; another key, a changed manifest or a bad key are refused with why", () => {
    const a = makeArtifact(signer, { seed: 1 });
    expect(signatureProblem(a.signed, signer.publicKey)).toBeNull();
    expect(signer.keyId).toBe(artifactKeyId(signer.publicKey));
    expect(signer.keyId).toHaveLength(16);
    const other = makeSigner();
    expect(signatureProblem(a.signed, other.publicKey)).toMatch(
      `signed with key ${signer.keyId}, but this device trusts key ${other.keyId}`,
    );
    const changed = { ...a.signed, manifest: { ...a.manifest, name: "other" } };
    expect(signatureProblem(changed, signer.publicKey)).toMatch(/does not verify with the server's key/);
    // Key order does not matter: the signature covers the canonical JSON.
    const reordered = { ...a.signed, manifest: Object.fromEntries(Object.entries(a.manifest).reverse()) as typeof a.manifest };
    expect(signatureProblem(reordered, signer.publicKey)).toBeNull();
    expect(signatureProblem(a.signed, "bm90IGEga2V5")).toMatch(/not a valid SPKI key/);
  });
});
