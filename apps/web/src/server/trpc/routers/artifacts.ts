import { z } from "zod";
import { ArtifactDto, UploadDto } from "@orchard/client";
import { CreateArtifactInput } from "../../services/artifacts.ts";
import { router, operatorProcedure, viewerProcedure } from "../init.ts";

const artifactId = z.object({ id: z.string().min(1).max(64) });
const uploadId = z.object({ id: z.string().min(1).max(64) });

/**
 * Models (artifacts). Their files come in through the resumable upload endpoints
 * (POST/PATCH/HEAD /api/uploads, see http/artifacts.ts); `create` turns finished uploads
 * into a signed model.
 */
export const artifactsRouter = router({
  /** Newest first, with the devices that run each model or keep it for a rollback. */
  list: viewerProcedure.output(z.array(ArtifactDto)).query(({ ctx }) => ctx.services.artifacts.list()),

  get: viewerProcedure
    .input(artifactId)
    .output(ArtifactDto)
    .query(({ ctx, input }) => ctx.services.artifacts.get(input.id)),

  create: operatorProcedure
    .input(CreateArtifactInput)
    .output(ArtifactDto)
    .mutation(async ({ ctx, input }) => {
      const artifact = await ctx.services.artifacts.create(input, ctx.principal.userId);
      await ctx.services.audit.record(
        ctx.principal,
        "artifact.created",
        { type: "artifact", id: artifact.id },
        { name: artifact.name, version: artifact.version },
      );
      return artifact;
    }),

  /** Refused while a device runs the model or keeps it for a rollback, or an unfinished rollout uses it. */
  remove: operatorProcedure
    .input(artifactId)
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const artifact = await ctx.services.artifacts.get(input.id);
      await ctx.services.artifacts.remove(input.id);
      await ctx.services.audit.record(
        ctx.principal,
        "artifact.deleted",
        { type: "artifact", id: input.id },
        { name: artifact.name, version: artifact.version },
      );
    }),

  /** The key manifests are signed with: what agents verify against. */
  signingKey: viewerProcedure
    .output(z.object({ artifactPublicKey: z.string(), keyId: z.string() }))
    .query(({ ctx }) => ctx.services.artifacts.publicKey),

  /** An upload's progress (bytes received, state, sha256 once complete, the error if it failed). */
  upload: viewerProcedure
    .input(uploadId)
    .output(UploadDto)
    .query(({ ctx, input }) => ctx.services.uploads.get(input.id)),

  /** Recent uploads, newest first. */
  uploads: viewerProcedure.output(z.array(UploadDto)).query(({ ctx }) => ctx.services.uploads.list()),

  /** Cancels an upload (or a download from a URL) and deletes what it received. */
  cancelUpload: operatorProcedure
    .input(uploadId)
    .output(z.void())
    .mutation(({ ctx, input }) => ctx.services.uploads.remove(input.id)),
});
