/**
 * Models made from finished uploads, against a real database (PGlite, and PostgreSQL when
 * ORCHARD_TEST_POSTGRES_URL is set), a real store directory, a real signing key and the
 * real fleet service: the manifest, its id and signature; file names that could leave the
 * model's folder refused; deletion refused while a device or an unfinished rollout needs
 * the model; files nobody uses any more deleted from the store.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  type ArtifactManifest,
  SignedBlobChunkList,
  SignedManifest,
  canonicalJson,
  type ActiveModel,
  type RunnerStatus,
} from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import { ArtifactSigner, verifyManifest } from "../artifacts/signing.ts";
import { BlobStore } from "../artifacts/store.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { ArtifactService, type CreateArtifactInput } from "./artifacts.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";
import { DEFAULT_UPLOAD_OPTIONS, UploadService } from "./uploads.ts";

const log = createLogger("error");
const T0 = Date.UTC(2026, 10, 28, 7, 0, 0);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const runner: RunnerStatus = {
  state: "ready",
  backend: "sim",
  model: "sim",
  pid: 1,
  rssBytes: 1,
  maxContext: 2048,
  loadMs: 1,
  restarts: 0,
  lastError: null,
  version: "0.1.0",
};

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

describe.each(DB_KINDS)("artifacts on %s", (kind) => {
  let db: Database;
  let dir: string;
  let store: BlobStore;
  let signer: ArtifactSigner;
  let fleet: FleetService;
  let uploads: UploadService;
  let artifacts: ArtifactService;
  let enrollment: EnrollmentService;

  beforeAll(async () => {
    db = await openTestDatabase(kind);
  });
  afterAll(async () => {
    await db.close();
  });
  beforeEach(async () => {
    for (const table of ["rolloutDevice", "rollout", "artifact", "artifactBlob", "upload", "device"] as const) {
      await (db.prisma[table] as { deleteMany(): Promise<unknown> }).deleteMany();
    }
    dir = await mkdtemp(path.join(os.tmpdir(), "orchard-artifacts-"));
    store = new BlobStore(path.join(dir, "artifacts"));
    await store.init();
    signer = await ArtifactSigner.loadOrCreate(path.join(dir, "keys", "key.pem"));
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => T0);
    await fleet.load();
    enrollment = new EnrollmentService(db.prisma, fleet);
    uploads = new UploadService(db.prisma, store, DEFAULT_UPLOAD_OPTIONS, log);
    artifacts = new ArtifactService(db.prisma, fleet, uploads, store, signer, log, () => T0);
  });
  afterEach(async () => {
    await uploads.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A finished upload of `data`; returns its id. */
  async function uploaded(name: string, data: Uint8Array): Promise<string> {
    const { id } = await uploads.create({ name, size: data.length }, null);
    if (data.length > 0) await uploads.patch(id, 0, once(data), data.length);
    return id;
  }

  async function simModel(version = "1", data = randomBytes(40_000), tokenizer = Buffer.from('{"model":"sim"}')) {
    const input: CreateArtifactInput = {
      name: "sim-small",
      version,
      runtime: "sim",
      runtimeVersion: "1",
      maxContext: 2048,
      reference: { prompt: "The capital of France is", expectedTokenIds: [1, 2, 3] },
      files: [
        { uploadId: await uploaded("sim.bin", data), name: "model.bin", role: "model" },
        { uploadId: await uploaded("tokenizer.json", tokenizer), name: "tokenizer.json", role: "tokenizer" },
      ],
    };
    return { input, data, tokenizer };
  }

  async function deviceRunning(name: string, active: ActiveModel | null, previous: ActiveModel | null = null): Promise<string> {
    const { token } = await enrollment.createToken({ ttlMinutes: 5, createdById: null, deviceName: name });
    const { deviceId } = await enrollment.enroll({ token, hostname: name, arch: "arm64", agentVersion: "1" }, "mqtt://h:1");
    fleet.applyStatus(deviceId, {
      state: "online",
      ts: T0,
      agentVersion: "1",
      hostname: name,
      arch: "arm64",
      runner,
      activeModel: active,
      previousModel: previous,
    });
    return deviceId;
  }
  const modelOf = (id: string): ActiveModel => ({ name: "sim-small", sha256: null, artifactId: id, version: "1", runtime: "sim" });

  it("gives each stored file a signed chunk list (computed once), not for a file it does not have or one damaged on disk", async () => {
    const { input, data } = await simModel("chunks", randomBytes(100_000));
    const created = await artifacts.create(input, null);
    const file = (await artifacts.getSigned(created.id)).manifest.files[0]!;
    const signed = await artifacts.signedChunkList(file.sha256);
    expect(SignedBlobChunkList.parse(signed)).toEqual(signed);
    expect(signed.list).toEqual({
      type: "orchard.blob-chunks",
      sha256: file.sha256,
      size: data.length,
      chunkSize: 8 * 2 ** 20,
      chunks: [file.sha256], // one chunk: the whole file
    });
    expect(signed.keyId).toBe(signer.keyId);
    expect(await artifacts.signedChunkList(file.sha256)).toBe(signed);
    await expect(artifacts.signedChunkList("f".repeat(64))).rejects.toMatchObject({ code: "not_found" });

    const other = await artifacts.create((await simModel("chunks-2", randomBytes(5000))).input, null);
    const damaged = (await artifacts.getSigned(other.id)).manifest.files[0]!;
    await writeFile(store.blobPath(damaged.sha256), randomBytes(5000));
    await expect(artifacts.signedChunkList(damaged.sha256)).rejects.toMatchObject({ code: "unavailable" });
  });

  it("builds, signs and stores the manifest of finished uploads; its id is the sha256 of the canonical manifest", async () => {
    const { input, data, tokenizer } = await simModel();
    const created = await artifacts.create({ ...input, source: "cli" }, null);
    const signed = await artifacts.getSigned(created.id);
    expect(SignedManifest.parse(signed)).toEqual(signed);
    expect(signed.manifest).toEqual({
      schema: 1,
      name: "sim-small",
      version: "1",
      runtime: "sim",
      runtimeVersion: "1",
      profile: null,
      maxContext: 2048,
      files: [
        { name: "model.bin", role: "model", size: data.length, sha256: sha(data) },
        { name: "tokenizer.json", role: "tokenizer", size: tokenizer.length, sha256: sha(tokenizer) },
      ],
      reference: { prompt: "The capital of France is", expectedTokenIds: [1, 2, 3] },
      createdAt: T0,
    } satisfies ArtifactManifest);
    expect(created.id).toBe(sha(Buffer.from(canonicalJson(signed.manifest))));
    expect(signed.keyId).toBe(signer.keyId);
    expect(verifyManifest(signed, signer.publicKey)).toBe(true);
    expect(created).toMatchObject({ totalBytes: data.length + tokenizer.length, source: "cli", devices: [], keyId: signer.keyId });
    // The uploads are used up; their files are the model's now.
    expect(await db.prisma.upload.count()).toBe(0);
    expect((await db.prisma.artifactBlob.findMany()).map((b) => b.sha256).sort()).toEqual([sha(data), sha(tokenizer)].sort());
    expect((await artifacts.list()).map((a) => a.id)).toEqual([created.id]);
  });

  it("refuses file names that could leave the model's folder, and other impossible models, with a clear message", async () => {
    const { input } = await simModel();
    const withName = (name: string) => ({ ...input, files: [{ ...input.files[0]!, name }, input.files[1]!] });
    for (const bad of ["../x", "a/b", "a\\b", ".hidden", ""]) {
      const err = await artifacts.create(withName(bad), null).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe("bad_request");
      expect((err as Error).message).toMatch(/^Invalid model: files\.0\.name: /);
    }
    await expect(artifacts.create(withName("tokenizer.json"), null)).rejects.toThrow("the file name tokenizer.json appears twice");
    await expect(
      artifacts.create({ ...input, files: input.files.map((f) => ({ ...f, role: "tokenizer" as const })) }, null),
    ).rejects.toThrow("an artifact has exactly one file with role model");
    await expect(artifacts.create({ ...input, profile: "llm-standard" }, null)).rejects.toThrow("A simulated (sim) model has no profile.");
    const llama = { ...input, runtime: "llama.cpp" as const, runtimeVersion: "v0.4.0" };
    await expect(artifacts.create({ ...llama, profile: "llm-standard" }, null)).rejects.toThrow("A llama.cpp (GGUF) model has no profile");
    await expect(artifacts.create(llama, null)).rejects.toThrow(/A llama\.cpp model file is a \.gguf, not /);
    await expect(artifacts.create({ ...input, files: [input.files[0]!, input.files[0]!] }, null)).rejects.toThrow(
      "The same upload is listed twice.",
    );
    await expect(
      artifacts.create({ ...input, files: [{ uploadId: "up_missing", name: "model.bin", role: "model" }] }, null),
    ).rejects.toThrow("No upload up_missing (for model.bin); it may have expired. Upload the file again.");
    const { id: partial } = await uploads.create({ name: "half.bin", size: 100 }, null);
    await expect(artifacts.create({ ...input, files: [{ uploadId: partial, name: "model.bin", role: "model" }] }, null)).rejects.toThrow(
      "half.bin is not complete yet (0 of 100 bytes).",
    );
    expect(await db.prisma.artifact.count()).toBe(0);
    // Nothing was used up by the refusals.
    expect((await artifacts.create(input, null)).name).toBe("sim-small");
  });

  /** An ExecuTorch or llama.cpp model of `model` (with these other files), as the dashboard uploads it. */
  async function realModel(
    runtime: "executorch" | "llama.cpp",
    model: Uint8Array,
    others: Record<string, Uint8Array> = {},
    version = "1",
  ): Promise<CreateArtifactInput> {
    const name = runtime === "executorch" ? "model.pte" : "model.gguf";
    const files: CreateArtifactInput["files"] = [{ uploadId: await uploaded(name, model), name, role: "model" }];
    for (const [n, data] of Object.entries(others)) {
      files.push({ uploadId: await uploaded(n, data), name: n, role: n === "tokenizer_config.json" ? "tokenizer_config" : "tokenizer" });
    }
    return {
      name: `${runtime}-small`,
      version,
      runtime,
      runtimeVersion: runtime === "executorch" ? "1.2.0" : "b4000",
      profile: runtime === "executorch" ? "llm-standard" : null,
      files,
    };
  }
  /** The first bytes of an ExecuTorch program (flatbuffer root offset, file identifier "ET12", extended header "eh00"), then random bytes. */
  const pteBytes = () => Buffer.concat([Buffer.from([0x3c, 0, 0, 0]), Buffer.from("ET12eh00"), randomBytes(4000)]);
  const ggufBytes = () => Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), randomBytes(4000)]);
  const tokenizerJson = Buffer.from('{"model":{"type":"BPE"}}');

  it("refuses a model file that is not what its runtime says (random bytes as a .pte or a .gguf), naming what is wrong", async () => {
    const refused = async (input: CreateArtifactInput, message: string) => {
      const err = await artifacts.create(input, null).catch((e: unknown) => e);
      expect(err, message).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe("bad_request");
      expect((err as Error).message).toBe(message);
    };
    await refused(
      await realModel("executorch", randomBytes(40_000), { "tokenizer.json": tokenizerJson }),
      "model.pte is not an ExecuTorch program: the file does not start with the .pte header (bytes 4-7 are a flatbuffer file identifier such as ET12). Export it with ExecuTorch (to_executorch().write_to_file or tools/export).",
    );
    await refused(
      await realModel("executorch", ggufBytes(), { "tokenizer.json": tokenizerJson }),
      "model.pte is not an ExecuTorch program: it is a GGUF file (runtime llama.cpp).",
    );
    await refused(
      await realModel("llama.cpp", randomBytes(40_000)),
      "model.gguf is not a GGUF file: it does not start with the GGUF magic (the 4 bytes 'GGUF').",
    );
    await refused(
      await realModel("llama.cpp", pteBytes()),
      "model.gguf is not a GGUF file: it is an ExecuTorch program (runtime executorch).",
    );
    await refused(
      await realModel("executorch", Buffer.from("ET12")),
      "model.pte is not an ExecuTorch program: it has 4 bytes, fewer than a .pte header.",
    );
    expect(await db.prisma.artifact.count()).toBe(0);
  });

  it("refuses an ExecuTorch model without tokenizer.json beside it", async () => {
    const err = await artifacts
      .create(await realModel("executorch", pteBytes(), { "tokenizer_config.json": Buffer.from("{}") }), null)
      .catch((e: unknown) => e);
    expect((err as AppError).code).toBe("bad_request");
    expect((err as Error).message).toBe(
      "An ExecuTorch model needs tokenizer.json beside it (the runner loads the tokenizer from the model's folder); add it to the model's files.",
    );
    expect(await db.prisma.artifact.count()).toBe(0);
  });

  it("accepts an ExecuTorch program with its tokenizer, and a GGUF file alone", async () => {
    const pte = await artifacts.create(
      await realModel("executorch", pteBytes(), { "tokenizer.json": tokenizerJson, "tokenizer_config.json": Buffer.from("{}") }),
      null,
    );
    expect(pte.files.map((f) => [f.name, f.role])).toEqual([
      ["model.pte", "model"],
      ["tokenizer.json", "tokenizer"],
      ["tokenizer_config.json", "tokenizer_config"],
    ]);
    const gguf = await artifacts.create(await realModel("llama.cpp", ggufBytes()), null);
    expect(gguf.runtime).toBe("llama.cpp");
  });

  it("refuses a second model with the same name and version", async () => {
    await artifacts.create((await simModel("1")).input, null);
    await expect(artifacts.create((await simModel("1")).input, null)).rejects.toThrow(
      "A model named sim-small with version 1 exists already; choose another version.",
    );
    expect((await artifacts.create((await simModel("2")).input, null)).version).toBe("2");
  });

  it("lists the devices that run a model or keep it for a rollback", async () => {
    const v1 = await artifacts.create((await simModel("1")).input, null);
    const v2 = await artifacts.create((await simModel("2")).input, null);
    const a = await deviceRunning("pi-a", modelOf(v2.id), modelOf(v1.id));
    const b = await deviceRunning("pi-b", modelOf(v1.id));
    await deviceRunning("pi-c", null);
    const list = await artifacts.list();
    expect(list.map((x) => x.version).sort()).toEqual(["1", "2"]);
    const byVersion = Object.fromEntries(list.map((x) => [x.version, x.devices]));
    expect(byVersion["2"]).toEqual([{ id: a, name: "pi-a", online: true, role: "active" }]);
    expect(byVersion["1"]).toEqual([
      { id: a, name: "pi-a", online: true, role: "previous" },
      { id: b, name: "pi-b", online: true, role: "active" },
    ]);
  });

  it("refuses to delete a model a device runs or keeps for a rollback, and says which", async () => {
    const v1 = await artifacts.create((await simModel("1")).input, null);
    const a = await deviceRunning("pi-a", modelOf(v1.id));
    await expect(artifacts.remove(v1.id)).rejects.toThrow(
      "sim-small 1 cannot be deleted: pi-a runs it. Roll those devices out to another model first.",
    );
    fleet.applyStatus(a, {
      state: "online",
      ts: T0,
      agentVersion: "1",
      hostname: "pi-a",
      arch: "arm64",
      runner,
      activeModel: null,
      previousModel: modelOf(v1.id),
    });
    await deviceRunning("pi-b", modelOf(v1.id));
    await expect(artifacts.remove(v1.id)).rejects.toThrow(
      "sim-small 1 cannot be deleted: pi-b runs it, and pi-a keeps it to roll back to. Roll those devices out to another model first.",
    );
    expect(await db.prisma.artifact.count()).toBe(1);
  });

  it("refuses to delete a model an unfinished rollout uses; a finished rollout goes with it", async () => {
    const v1 = await artifacts.create((await simModel("1")).input, null);
    const v2 = await artifacts.create((await simModel("2")).input, null);
    const device = await deviceRunning("pi-a", null);
    await db.prisma.rollout.create({ data: { id: "r1", name: "to v1", artifactId: v1.id, strategy: {}, state: "running" } });
    await expect(artifacts.remove(v1.id)).rejects.toThrow(
      "sim-small 1 cannot be deleted: the rollout to v1 (running) uses it. Wait until it finishes or abort it.",
    );
    await db.prisma.rollout.update({ where: { id: "r1" }, data: { state: "paused" } });
    await expect(artifacts.remove(v1.id)).rejects.toThrow("the rollout to v1 (paused) uses it");
    // A running rollout to v2 would roll its devices back to v1.
    await db.prisma.rollout.update({ where: { id: "r1" }, data: { state: "completed" } });
    await db.prisma.rollout.create({
      data: {
        id: "r2",
        name: "to v2",
        artifactId: v2.id,
        strategy: {},
        state: "running",
        devices: { create: { deviceId: device, position: 0, state: "downloading", previousArtifactId: v1.id } },
      },
    });
    await expect(artifacts.remove(v1.id)).rejects.toThrow(
      "sim-small 1 cannot be deleted: devices in the rollout to v2 would roll back to it. Wait until it finishes or abort it.",
    );
    await db.prisma.rollout.update({ where: { id: "r2" }, data: { state: "aborted" } });
    await artifacts.remove(v1.id);
    await expect(artifacts.get(v1.id)).rejects.toThrow(`No model ${v1.id}.`);
    expect((await db.prisma.rollout.findMany()).map((r) => r.id)).toEqual(["r2"]);
  });

  it("deletes files no model uses any more, and keeps files another model shares", async () => {
    const shared = Buffer.from('{"shared":"tokenizer"}');
    const one = await simModel("1", randomBytes(1000), shared);
    const v1 = await artifacts.create(one.input, null);
    const two = await simModel("2", randomBytes(1000), shared);
    const v2 = await artifacts.create(two.input, null);
    expect((await store.list()).length).toBe(3);

    await artifacts.remove(v1.id);
    expect(await store.size(sha(one.data))).toBeNull();
    expect(await store.size(sha(shared))).toBe(shared.length);
    expect(await store.size(sha(two.data))).toBe(two.data.length);
    await artifacts.remove(v2.id);
    expect(await store.list()).toEqual([]);
    expect(await db.prisma.artifactBlob.count()).toBe(0);
  });

  it("garbage collection keeps finished uploads' files and removes strays a crash left", async () => {
    const data = randomBytes(500);
    await uploaded("pending.bin", data);
    const stray = randomBytes(300);
    await writeFile(store.incomingPath("stray"), stray);
    await store.adopt(store.incomingPath("stray"), sha(stray));
    expect(await artifacts.collectGarbage()).toBe(1);
    expect(await store.list()).toEqual([sha(data)]);
  });

  it("says so when a model does not exist", async () => {
    await expect(artifacts.get("0".repeat(64))).rejects.toThrow(`No model ${"0".repeat(64)}.`);
    await expect(artifacts.getSigned("../../etc")).rejects.toThrow("No model ../../etc.");
    await expect(artifacts.remove("nope")).rejects.toThrow("No model nope.");
  });
});
