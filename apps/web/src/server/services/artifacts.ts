/**
 * Artifacts (models): a manifest the server signs, and files in the content-addressed
 * store. An artifact is made from finished uploads plus what the operator says about the
 * model (name, version, runtime and its version, profile, max context, reference prompt
 * and the token ids it must give); its id is the sha256 of the canonical manifest.
 *
 * Deleting one is refused while a device runs it or keeps it for a rollback, or while a
 * rollout that is not finished uses it. Files no artifact (and no finished upload) uses
 * any more are deleted from the store.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import {
  ARTIFACT_FILE_ROLES,
  ArtifactFileName,
  ArtifactManifest,
  ArtifactRuntime,
  ReferenceCheck,
  SignedManifest,
  type SignedBlobChunkList,
  canonicalJson,
  MODEL_HEAD_BYTES,
  missingModelFilesProblem,
  modelFileProblem,
  type ArtifactFile,
  type DeviceSummary,
} from "@orchard/contracts";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ArtifactDeviceRef, ArtifactDto } from "@orchard/client";
import type { ArtifactSigner } from "../artifacts/signing.ts";
import type { BlobStore } from "../artifacts/store.ts";
import type { FleetService } from "./fleet.ts";
import type { UploadService } from "./uploads.ts";

/** Signed chunk lists kept in memory (a few hundred bytes to a few hundred KiB each). */
const CHUNK_LISTS_KEPT = 256;

/** Rollout states in which the rollout no longer needs its artifact (contracts RolloutState). */
const FINISHED_ROLLOUT_STATES = ["completed", "failed", "aborted"];

export const CreateArtifactInput = z
  .object({
    name: z.string().trim().min(1, "A model needs a name.").max(128),
    version: z.string().trim().min(1, "A model needs a version.").max(64),
    runtime: ArtifactRuntime,
    runtimeVersion: z.string().trim().min(1, "Say which runtime version the model was exported for (sim: 1).").max(64),
    profile: z.string().trim().min(1).max(64).nullable().default(null),
    maxContext: z.number().int().positive().max(1_048_576).nullable().default(null),
    reference: ReferenceCheck.nullable().default(null),
    files: z
      .array(
        z.object({
          uploadId: z.string().min(1).max(64),
          /** The name the runner sees on the device: one plain file name. */
          name: ArtifactFileName,
          role: z.enum(ARTIFACT_FILE_ROLES),
        }),
      )
      .min(1, "A model needs at least its model file.")
      .max(16),
    /** How the files came in, for the record (an upload from a URL is recorded as "url" whatever this says). */
    source: z.enum(["upload", "cli"]).default("upload"),
  })
  .superRefine((input, ctx) => {
    if (input.runtime === "sim" && input.profile !== null) {
      ctx.addIssue({ code: "custom", path: ["profile"], message: "A simulated (sim) model has no profile." });
    }
    if (input.runtime === "llama.cpp") {
      if (input.profile !== null) {
        ctx.addIssue({
          code: "custom",
          path: ["profile"],
          message: "A llama.cpp (GGUF) model has no profile: the .gguf says how to run it.",
        });
      }
      const model = input.files.find((f) => f.role === "model");
      if (model && !/\.gguf$/i.test(model.name)) {
        ctx.addIssue({ code: "custom", path: ["files"], message: `A llama.cpp model file is a .gguf, not ${model.name}.` });
      }
    }
  });
export type CreateArtifactInput = z.input<typeof CreateArtifactInput>;

type ArtifactRow = {
  id: string;
  name: string;
  version: string;
  runtime: string;
  manifest: unknown;
  keyId: string;
  signature: string;
  totalBytes: bigint;
  source: string;
  createdAt: Date;
};

export class ArtifactService {
  constructor(
    private readonly prisma: Prisma,
    private readonly fleet: Pick<FleetService, "list">,
    private readonly uploads: UploadService,
    private readonly store: BlobStore,
    private readonly signer: ArtifactSigner,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get publicKey(): { artifactPublicKey: string; keyId: string } {
    return { artifactPublicKey: this.signer.publicKey, keyId: this.signer.keyId };
  }

  /** Newest first. */
  async list(): Promise<ArtifactDto[]> {
    const rows = await this.prisma.artifact.findMany({ orderBy: { createdAt: "desc" } });
    const devices = this.fleet.list();
    return rows.map((r) => this.toDto(r, devices));
  }

  async get(id: string): Promise<ArtifactDto> {
    return this.toDto(await this.row(id), this.fleet.list());
  }

  /** Signed chunk lists by sha256 (blobs never change): computed once each, the newest few kept. */
  private readonly chunkLists = new Map<string, Promise<SignedBlobChunkList>>();

  /**
   * A stored file's chunk hashes, signed (GET /api/artifacts/blobs/{sha256}/chunks): computed
   * from the blob on first request (one read of the file, which also checks its sha256) and
   * kept in memory, so artifacts stored before chunk lists existed get them too.
   */
  async signedChunkList(sha256: string): Promise<SignedBlobChunkList> {
    if ((await this.store.size(sha256)) === null) throw new AppError("not_found", `The server has no file with sha256 ${sha256}.`);
    let list = this.chunkLists.get(sha256);
    if (!list) {
      list = this.store.chunkList(sha256).then((l) => this.signer.signChunkList(l));
      this.chunkLists.set(sha256, list);
      while (this.chunkLists.size > CHUNK_LISTS_KEPT) this.chunkLists.delete(this.chunkLists.keys().next().value!);
      // A failure (a damaged or vanished blob) is not kept: the next request tries again.
      list.catch(() => this.chunkLists.delete(sha256));
    }
    try {
      return await list;
    } catch (err) {
      this.log.warn("no chunk list for a stored file", { sha256, error: (err as Error).message });
      throw new AppError("unavailable", `The server cannot vouch for the chunks of ${sha256} now; check the whole file instead.`);
    }
  }

  /** The manifest with its signature, as rollout.apply carries it. */
  async getSigned(id: string): Promise<SignedManifest> {
    const row = await this.row(id);
    return SignedManifest.parse({ manifest: row.manifest, keyId: row.keyId, signature: row.signature });
  }

  /**
   * Builds, signs and stores the manifest of finished uploads. The uploads are used up
   * (their files now belong to the artifact).
   */
  async create(raw: CreateArtifactInput, createdById: string | null): Promise<ArtifactDto> {
    const parsed = CreateArtifactInput.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new AppError("bad_request", `Invalid model: ${issue.path.join(".")}${issue.path.length ? ": " : ""}${issue.message}`);
    }
    const input = parsed.data;
    const uploadIds = input.files.map((f) => f.uploadId);
    if (new Set(uploadIds).size !== uploadIds.length) throw new AppError("bad_request", "The same upload is listed twice.");

    return this.store.exclusive(async () => {
      const uploads = await this.prisma.upload.findMany({ where: { id: { in: uploadIds } } });
      const byId = new Map(uploads.map((u) => [u.id, u]));
      const files: ArtifactFile[] = [];
      let fromUrl = false;
      for (const f of input.files) {
        const upload = byId.get(f.uploadId);
        if (!upload)
          throw new AppError("not_found", `No upload ${f.uploadId} (for ${f.name}); it may have expired. Upload the file again.`);
        if (upload.state !== "complete" || !upload.sha256) {
          throw new AppError(
            "conflict",
            upload.state === "failed"
              ? `The upload of ${upload.name} failed: ${upload.error ?? "unknown error"}.`
              : `${upload.name} is not complete yet (${upload.received} of ${upload.size} bytes).`,
          );
        }
        if ((await this.store.size(upload.sha256)) === null) {
          throw new AppError("conflict", `The server no longer has the file of ${upload.name}; upload it again.`);
        }
        if (upload.sourceUrl) fromUrl = true;
        files.push({ name: f.name, role: f.role, size: Number(upload.size), sha256: upload.sha256 });
      }
      // The files are what the runtime says (uploaded, pushed by the CLI or fetched from a URL: all end here).
      const model = files.find((f) => f.role === "model");
      if (model) {
        const problem = modelFileProblem(input.runtime, model.name, await this.store.head(model.sha256, MODEL_HEAD_BYTES));
        if (problem) throw new AppError("bad_request", problem);
      }
      const missing = missingModelFilesProblem(
        input.runtime,
        files.map((f) => f.name),
      );
      if (missing) throw new AppError("bad_request", missing);
      const candidate = {
        schema: 1 as const,
        name: input.name,
        version: input.version,
        runtime: input.runtime,
        runtimeVersion: input.runtimeVersion,
        profile: input.profile,
        maxContext: input.maxContext,
        files,
        reference: input.reference,
        createdAt: this.now(),
      };
      const manifest = ArtifactManifest.safeParse(candidate);
      if (!manifest.success) {
        throw new AppError("bad_request", `Invalid model: ${manifest.error.issues.map((i) => i.message).join("; ")}`);
      }
      const signed = this.signer.sign(manifest.data);
      const id = createHash("sha256").update(canonicalJson(signed.manifest)).digest("hex");
      const taken = () =>
        new AppError("conflict", `A model named ${input.name} with version ${input.version} exists already; choose another version.`);
      if (await this.prisma.artifact.findUnique({ where: { name_version: { name: input.name, version: input.version } } })) throw taken();
      const row = await this.prisma
        .$transaction(async (tx) => {
          for (const f of files) {
            await tx.artifactBlob.upsert({ where: { sha256: f.sha256 }, create: { sha256: f.sha256, size: BigInt(f.size) }, update: {} });
          }
          const created = await tx.artifact.create({
            data: {
              id,
              name: input.name,
              version: input.version,
              runtime: input.runtime,
              manifest: signed.manifest as object,
              keyId: signed.keyId,
              signature: signed.signature,
              totalBytes: BigInt(files.reduce((n, f) => n + f.size, 0)),
              source: fromUrl ? "url" : input.source,
              createdById,
            },
          });
          await tx.upload.deleteMany({ where: { id: { in: uploadIds } } });
          return created;
        })
        .catch((err: unknown) => {
          // Another request created the same name and version just now (the unique index decides).
          if ((err as { code?: string }).code === "P2002") throw taken();
          throw err;
        });
      this.log.info("model created", { id, name: input.name, version: input.version, files: files.length });
      return this.toDto(row, this.fleet.list());
    });
  }

  /** Deletes a model nobody needs, and the files only it used. */
  async remove(id: string): Promise<void> {
    const row = await this.row(id);
    const label = `${row.name} ${row.version}`;
    const users = this.devicesWith(id, this.fleet.list());
    if (users.length > 0) {
      const active = users.filter((d) => d.role === "active").map((d) => d.name);
      const kept = users.filter((d) => d.role === "previous").map((d) => d.name);
      const parts = [
        active.length ? `${list(active)} ${active.length === 1 ? "runs" : "run"} it` : null,
        kept.length ? `${list(kept)} ${kept.length === 1 ? "keeps" : "keep"} it to roll back to` : null,
      ].filter(Boolean);
      throw new AppError("conflict", `${label} cannot be deleted: ${parts.join(", and ")}. Roll those devices out to another model first.`);
    }
    const rollouts = await this.prisma.rollout.findMany({
      where: { artifactId: id, state: { notIn: FINISHED_ROLLOUT_STATES } },
      select: { name: true, state: true },
    });
    if (rollouts.length > 0) {
      throw new AppError(
        "conflict",
        `${label} cannot be deleted: ${rollouts.length === 1 ? "the rollout" : "the rollouts"} ${list(rollouts.map((r) => `${r.name} (${r.state})`))} ${rollouts.length === 1 ? "uses" : "use"} it. Wait until ${rollouts.length === 1 ? "it finishes" : "they finish"} or abort ${rollouts.length === 1 ? "it" : "them"}.`,
      );
    }
    const rollingBackTo = await this.prisma.rolloutDevice.findMany({
      where: { previousArtifactId: id, rollout: { state: { notIn: FINISHED_ROLLOUT_STATES } } },
      select: { rollout: { select: { name: true } } },
      distinct: ["rolloutId"],
    });
    if (rollingBackTo.length > 0) {
      throw new AppError(
        "conflict",
        `${label} cannot be deleted: devices in the rollout ${list(rollingBackTo.map((r) => r.rollout.name))} would roll back to it. Wait until it finishes or abort it.`,
      );
    }
    await this.store.exclusive(async () => {
      await this.prisma.$transaction(async (tx) => {
        // Finished rollouts of this model go with it (their history refers to the model).
        await tx.rollout.deleteMany({ where: { artifactId: id, state: { in: FINISHED_ROLLOUT_STATES } } });
        await tx.artifact.delete({ where: { id } });
      });
    });
    this.log.info("model deleted", { id, name: row.name, version: row.version });
    await this.collectGarbage();
  }

  /**
   * Deletes blobs no artifact and no finished upload uses (their rows and files), and
   * files in the store without a row (left by a crash). Returns how many went.
   */
  async collectGarbage(): Promise<number> {
    return this.store.exclusive(async () => {
      const used = new Set<string>();
      for (const a of await this.prisma.artifact.findMany({ select: { manifest: true } })) {
        const m = ArtifactManifest.safeParse(a.manifest);
        if (m.success) for (const f of m.data.files) used.add(f.sha256);
      }
      for (const u of await this.prisma.upload.findMany({ where: { sha256: { not: null } }, select: { sha256: true } }))
        used.add(u.sha256!);
      const rows = await this.prisma.artifactBlob.findMany({ select: { sha256: true } });
      const known = new Set(rows.map((r) => r.sha256));
      const unused = rows.map((r) => r.sha256).filter((sha) => !used.has(sha));
      if (unused.length > 0) await this.prisma.artifactBlob.deleteMany({ where: { sha256: { in: unused } } });
      const strays = (await this.store.list()).filter((sha) => !known.has(sha) && !used.has(sha));
      for (const sha of [...unused, ...strays]) await this.store.remove(sha);
      if (unused.length + strays.length > 0) this.log.info("deleted unused model files", { count: unused.length + strays.length });
      return unused.length + strays.length;
    });
  }

  /** Expired uploads, then files nobody uses (hourly, and at start). */
  async housekeeping(): Promise<void> {
    const expired = await this.uploads.expire();
    if (expired > 0) this.log.info("deleted expired uploads", { count: expired });
    await this.collectGarbage();
  }

  // ------------------------------------------------------------ internals

  private async row(id: string): Promise<ArtifactRow> {
    const row = /^[0-9a-f]{64}$/.test(id) ? await this.prisma.artifact.findUnique({ where: { id } }) : null;
    if (!row) throw new AppError("not_found", `No model ${id}.`);
    return row;
  }

  private devicesWith(id: string, devices: DeviceSummary[]): ArtifactDeviceRef[] {
    const out: ArtifactDeviceRef[] = [];
    for (const d of devices) {
      if (d.activeModel?.artifactId === id) out.push({ id: d.id, name: d.name, online: d.online, role: "active" });
      else if (d.previousModel?.artifactId === id) out.push({ id: d.id, name: d.name, online: d.online, role: "previous" });
    }
    return out;
  }

  private toDto(row: ArtifactRow, devices: DeviceSummary[]): ArtifactDto {
    const m = ArtifactManifest.parse(row.manifest);
    return {
      id: row.id,
      name: row.name,
      version: row.version,
      runtime: m.runtime,
      runtimeVersion: m.runtimeVersion,
      profile: m.profile,
      maxContext: m.maxContext,
      files: m.files,
      reference: m.reference,
      totalBytes: Number(row.totalBytes),
      source: row.source as ArtifactDto["source"],
      keyId: row.keyId,
      createdAt: row.createdAt.getTime(),
      devices: this.devicesWith(row.id, devices),
    };
  }
}

function list(names: string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}
