/**
 * The server's manifest signature: ed25519 over canonicalJson(manifest), checked
 * with the public key the agent learnt at enrollment (SPKI DER, base64). The key id
 * is base64url(sha256(SPKI DER)), first 16 characters, as the server computes it.
 */
import { type KeyObject, createHash, createPublicKey, verify } from "node:crypto";
import { type SignedBlobChunkList, type SignedManifest, canonicalJson } from "@orchard/contracts";

export class ArtifactKeyError extends Error {
  override readonly name = "ArtifactKeyError";
}

/** Parses a base64 SPKI DER ed25519 public key; throws ArtifactKeyError for anything else. */
export function parseArtifactPublicKey(base64: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(base64, "base64"), format: "der", type: "spki" });
  } catch (error) {
    throw new ArtifactKeyError(`the artifact public key is not a valid SPKI key: ${(error as Error).message}`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ArtifactKeyError(`the artifact public key is ${key.asymmetricKeyType ?? "of an unknown type"}, expected ed25519`);
  }
  return key;
}

export function artifactKeyId(base64: string): string {
  return createHash("sha256").update(Buffer.from(base64, "base64")).digest("base64url").slice(0, 16);
}

/** Null when the manifest's signature verifies with the key, else why not (for a person). */
export function signatureProblem(signed: SignedManifest, publicKeyBase64: string): string | null {
  return signedProblem("manifest", canonicalJson(signed.manifest), signed, publicKeyBase64);
}

/** Null when a chunk list's signature verifies with the key (the same one as manifests'), else why not. */
export function chunkListProblem(signed: SignedBlobChunkList, publicKeyBase64: string): string | null {
  return signedProblem("chunk list", canonicalJson(signed.list), signed, publicKeyBase64);
}

function signedProblem(
  what: string,
  canonical: string,
  signed: { keyId: string; signature: string },
  publicKeyBase64: string,
): string | null {
  let key: KeyObject;
  try {
    key = parseArtifactPublicKey(publicKeyBase64);
  } catch (error) {
    return (error as Error).message;
  }
  const ours = artifactKeyId(publicKeyBase64);
  if (signed.keyId !== ours) {
    return `the ${what} was signed with key ${signed.keyId}, but this device trusts key ${ours} (the server it enrolled with); enroll it again if the server's key changed`;
  }
  let ok = false;
  try {
    ok = verify(null, Buffer.from(canonical), key, Buffer.from(signed.signature, "base64"));
  } catch (error) {
    return `the signature could not be checked: ${(error as Error).message}`;
  }
  return ok
    ? null
    : `the ${what}'s signature does not verify with the server's key ${ours}: it was changed after signing, or signed by another server`;
}
