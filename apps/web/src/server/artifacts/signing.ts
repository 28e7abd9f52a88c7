/**
 * The server's artifact-signing key: ed25519, created on first start and kept as a
 * PKCS8 PEM file readable by the server's user only (file 0600 in a 0700 directory).
 * Every manifest the server creates is signed with it; agents get the public key at
 * enrollment (or from GET /api/device/artifact-key) and refuse manifests it did not sign.
 *
 * Public key: SPKI DER, base64. keyId: base64url(sha256(SPKI DER)), first 16 characters.
 * Signature: base64 of ed25519 over canonicalJson(manifest) (and over canonicalJson(list)
 * for a file's chunk hashes, contracts BlobChunkList). The private key never
 * leaves this module and is never logged.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { chmod, mkdir, open, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ArtifactManifest, BlobChunkList, type SignedBlobChunkList, type SignedManifest, canonicalJson } from "@orchard/contracts";
import type { Logger } from "../log.ts";

/** Where the key lives unless ORCHARD_SIGNING_KEY_FILE says otherwise. */
export function defaultSigningKeyFile(dataDir: string): string {
  return path.join(dataDir, "keys", "artifact-signing-key.pem");
}

export function keyIdOf(spkiDer: Buffer): string {
  return createHash("sha256").update(spkiDer).digest("base64url").slice(0, 16);
}

/** Checks a signed manifest against a public key (SPKI DER, base64), as an agent does. */
export function verifyManifest(signed: SignedManifest, publicKeyBase64: string): boolean {
  const key = createPublicKey({ key: Buffer.from(publicKeyBase64, "base64"), format: "der", type: "spki" });
  return verify(null, Buffer.from(canonicalJson(signed.manifest)), key, Buffer.from(signed.signature, "base64"));
}

export class ArtifactSigner {
  /** SPKI DER, base64: what agents verify with. */
  readonly publicKey: string;
  readonly keyId: string;

  private constructor(private readonly privateKey: KeyObject) {
    const der = createPublicKey(privateKey).export({ format: "der", type: "spki" });
    this.publicKey = der.toString("base64");
    this.keyId = keyIdOf(der);
  }

  /**
   * Loads the key from `file`, or creates it when the file does not exist. A key file
   * that others can read is used (the key is what it is) but logged as a warning.
   */
  static async loadOrCreate(file: string, log?: Logger): Promise<ArtifactSigner> {
    const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw new Error(`cannot read the artifact signing key ${file}: ${err.message}`);
    });
    if (existing !== null) return ArtifactSigner.fromPem(existing, file, log, await stat(file));
    const dir = path.dirname(file);
    const dirExisted = await stat(dir).then(
      () => true,
      () => false,
    );
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!dirExisted) await chmod(dir, 0o700); // mkdir's mode is filtered by the umask
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ format: "pem", type: "pkcs8" });
    // "wx": two servers starting on the same data dir cannot both create a key; the loser reads the winner's.
    const handle = await open(file, "wx", 0o600).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "EEXIST") return null;
      throw new Error(`cannot create the artifact signing key ${file}: ${err.message}`);
    });
    if (!handle) return ArtifactSigner.loadOrCreate(file, log);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(pem, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    log?.info("created the artifact signing key", {
      file,
      keyId: keyIdOf(createPublicKey(privateKey).export({ format: "der", type: "spki" })),
    });
    return new ArtifactSigner(privateKey);
  }

  private static fromPem(pem: string, file: string, log: Logger | undefined, st: { mode: number }): ArtifactSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: "pem" });
    } catch {
      throw new Error(
        `the artifact signing key ${file} is not a PEM private key; restore it from a backup, or delete it to create a new one (agents then need the new public key: re-enroll them)`,
      );
    }
    if (key.asymmetricKeyType !== "ed25519") {
      throw new Error(`the artifact signing key ${file} is a ${key.asymmetricKeyType ?? "unknown"} key; Orchard signs with ed25519`);
    }
    if ((st.mode & 0o077) !== 0) {
      log?.warn("the artifact signing key can be read by other users; chmod 600 it", { file, mode: (st.mode & 0o777).toString(8) });
    }
    const signer = new ArtifactSigner(key);
    log?.info("loaded the artifact signing key", { file, keyId: signer.keyId });
    return signer;
  }

  sign(manifest: ArtifactManifest): SignedManifest {
    const parsed = ArtifactManifest.parse(manifest);
    const signature = sign(null, Buffer.from(canonicalJson(parsed)), this.privateKey).toString("base64");
    return { manifest: parsed, keyId: this.keyId, signature };
  }

  /** Signs a file's chunk hashes (canonicalJson(list); its `type` keeps it from passing for a manifest). */
  signChunkList(list: BlobChunkList): SignedBlobChunkList {
    const parsed = BlobChunkList.parse(list);
    const signature = sign(null, Buffer.from(canonicalJson(parsed)), this.privateKey).toString("base64");
    return { list: parsed, keyId: this.keyId, signature };
  }

  /** Never the private key, whatever serializes this object. */
  toJSON(): { publicKey: string; keyId: string } {
    return { publicKey: this.publicKey, keyId: this.keyId };
  }
}
