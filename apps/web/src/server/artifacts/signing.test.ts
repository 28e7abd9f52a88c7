/**
 * The signing key: created on first start with tight file modes, loaded unchanged on
 * the next, and signatures that verify exactly the way an agent checks them.
 */
import { createHash, createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SignedManifest, canonicalJson, type ArtifactManifest } from "@orchard/contracts";
import { ArtifactSigner, defaultSigningKeyFile, keyIdOf, verifyManifest } from "./signing.ts";

const manifest: ArtifactManifest = {
  schema: 1,
  name: "gemma4-e2b",
  version: "2026.11.1",
  runtime: "executorch",
  runtimeVersion: "1.2.0",
  profile: "gemma4-e2b-extcache",
  maxContext: 511,
  files: [
    { name: "model.pte", role: "model", size: 5_140_000_000, sha256: "a".repeat(64) },
    { name: "tokenizer.json", role: "tokenizer", size: 33_000_000, sha256: "b".repeat(64) },
  ],
  reference: { prompt: "The capital of France is", expectedTokenIds: [818, 5279, 529, 7001, 563, 5213, 50429, 84750, 106] },
  createdAt: Date.UTC(2026, 10, 28),
};

/** Exactly what the agent does (the shared decision in docs/rollout.md). */
function agentVerifies(signed: SignedManifest, publicKey: string): boolean {
  return verify(
    null,
    Buffer.from(canonicalJson(signed.manifest)),
    createPublicKey({ key: Buffer.from(publicKey, "base64"), format: "der", type: "spki" }),
    Buffer.from(signed.signature, "base64"),
  );
}

describe("artifact signing key", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "orchard-signing-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("creates an ed25519 key on first start: PKCS8 PEM, file 0600 in a 0700 directory", async () => {
    const file = defaultSigningKeyFile(dir);
    expect(file).toBe(path.join(dir, "keys", "artifact-signing-key.pem"));
    const signer = await ArtifactSigner.loadOrCreate(file);
    const pem = await readFile(file, "utf8");
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const spki = Buffer.from(signer.publicKey, "base64");
    expect(createPublicKey({ key: spki, format: "der", type: "spki" }).asymmetricKeyType).toBe("ed25519");
    expect(signer.keyId).toBe(createHash("sha256").update(spki).digest("base64url").slice(0, 16));
    expect(signer.keyId).toBe(keyIdOf(spki));
    expect(signer.keyId).toHaveLength(16);
  });

  it("loads the same key on the next start", async () => {
    const file = defaultSigningKeyFile(dir);
    const first = await ArtifactSigner.loadOrCreate(file);
    const pem = await readFile(file, "utf8");
    const second = await ArtifactSigner.loadOrCreate(file);
    expect(second.publicKey).toBe(first.publicKey);
    expect(second.keyId).toBe(first.keyId);
    expect(await readFile(file, "utf8")).toBe(pem);
  });

  it("two servers starting at once end up with one key", async () => {
    const file = path.join(dir, "custom", "key.pem");
    const [a, b] = await Promise.all([ArtifactSigner.loadOrCreate(file), ArtifactSigner.loadOrCreate(file)]);
    expect(a.publicKey).toBe(b.publicKey);
  });

  it("signs manifests the way agents verify them, whatever order the JSON travelled in", async () => {
    const signer = await ArtifactSigner.loadOrCreate(defaultSigningKeyFile(dir));
    const signed = signer.sign(manifest);
    expect(SignedManifest.parse(signed)).toEqual(signed);
    expect(signed.keyId).toBe(signer.keyId);
    expect(agentVerifies(signed, signer.publicKey)).toBe(true);
    expect(verifyManifest(signed, signer.publicKey)).toBe(true);

    // The same manifest with its keys in another order (as JSON from a database may come back).
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed.manifest).reverse()))) as ArtifactManifest;
    expect(agentVerifies({ ...signed, manifest: reordered }, signer.publicKey)).toBe(true);

    // Any change breaks it: another file hash, another expected id.
    const files = signed.manifest.files.map((f, i) => (i === 0 ? { ...f, sha256: "c".repeat(64) } : f));
    expect(agentVerifies({ ...signed, manifest: { ...signed.manifest, files } }, signer.publicKey)).toBe(false);
    const reference = { prompt: "The capital of France is", expectedTokenIds: [818] };
    expect(agentVerifies({ ...signed, manifest: { ...signed.manifest, reference } }, signer.publicKey)).toBe(false);

    // Another server's key does not verify it.
    const other = await ArtifactSigner.loadOrCreate(path.join(dir, "other.pem"));
    expect(agentVerifies(signed, other.publicKey)).toBe(false);
  });

  it("refuses to sign a manifest that breaks the contract", async () => {
    const signer = await ArtifactSigner.loadOrCreate(defaultSigningKeyFile(dir));
    const bad = { ...manifest, files: [{ ...manifest.files[0]!, name: "../model.pte" }] };
    expect(() => signer.sign(bad)).toThrow(/file name/);
  });

  it("signs a file's chunk list with the same key, over its canonical JSON; a chunk list never passes for a manifest", async () => {
    const signer = await ArtifactSigner.loadOrCreate(defaultSigningKeyFile(dir));
    const list = {
      type: "orchard.blob-chunks" as const,
      sha256: "c".repeat(64),
      size: 100_000,
      chunkSize: 65536,
      chunks: ["d".repeat(64), "e".repeat(64)],
    };
    const signed = signer.signChunkList(list);
    expect(signed).toMatchObject({ list, keyId: signer.keyId });
    const key = createPublicKey({ key: Buffer.from(signer.publicKey, "base64"), format: "der", type: "spki" });
    expect(verify(null, Buffer.from(canonicalJson(signed.list)), key, Buffer.from(signed.signature, "base64"))).toBe(true);
    // Another chunk list under the same signature does not verify.
    const swapped = { ...list, chunks: ["e".repeat(64), "d".repeat(64)] };
    expect(verify(null, Buffer.from(canonicalJson(swapped)), key, Buffer.from(signed.signature, "base64"))).toBe(false);
    expect(SignedManifest.safeParse({ manifest: signed.list, keyId: signed.keyId, signature: signed.signature }).success).toBe(false);
    // One sha256 per chunk, or it is not signed.
    expect(() => signer.signChunkList({ ...list, chunks: ["d".repeat(64)] })).toThrow(/one sha256 per chunk/);
  });

  it("never serializes the private key", async () => {
    const file = defaultSigningKeyFile(dir);
    const signer = await ArtifactSigner.loadOrCreate(file);
    const pemBody = (await readFile(file, "utf8")).split("\n")[1]!;
    const json = JSON.stringify({ signer });
    expect(json).not.toContain("PRIVATE");
    expect(json).not.toContain(pemBody);
    expect(JSON.parse(json)).toEqual({ signer: { publicKey: signer.publicKey, keyId: signer.keyId } });
  });

  it("says what is wrong with a key file that is not an ed25519 private key", async () => {
    const garbage = path.join(dir, "garbage.pem");
    await writeFile(garbage, "not a key\n", { mode: 0o600 });
    await expect(ArtifactSigner.loadOrCreate(garbage)).rejects.toThrow(/is not a PEM private key/);

    const rsa = path.join(dir, "rsa.pem");
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 1024 });
    await writeFile(rsa, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
    await expect(ArtifactSigner.loadOrCreate(rsa)).rejects.toThrow(/is a rsa key; Orchard signs with ed25519/);
  });
});
