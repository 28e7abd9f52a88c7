/**
 * Which certificate authorities the agent trusts for https:// (enrollment, model downloads)
 * and mqtts:// (the broker): the system's, plus one CA file when the fleet uses its own
 * (a lab CA made with infra/tls/make-lab-ca.sh is the common case). The file is given to
 * `orchard-agent enroll --ca FILE`, copied into the data dir and named in agent.json.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import tls from "node:tls";
import type { Dispatcher } from "undici";

export interface Trust {
  /** The extra CA file, or null for the system's CAs only. */
  readonly caFile: string | null;
  /** For TLS sockets (mqtt.js `ca`): the system's CAs plus the file's; undefined means the defaults. */
  readonly ca: string[] | undefined;
  /** fetch() with this trust. */
  readonly fetch: typeof fetch;
}

export class TrustError extends Error {
  override readonly name = "TrustError";
}

/** The system's CAs only. */
export const SYSTEM_TRUST: Trust = { caFile: null, ca: undefined, fetch: (input, init) => fetch(input, init) };

/** Reads a PEM file of one or more CA certificates; every failure names the file and what is wrong. */
export async function readCaFile(caFile: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(caFile, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TrustError(
      `cannot read the CA file ${caFile}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message}`,
    );
  }
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new TrustError(`${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  for (const pem of pems) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (err) {
      throw new TrustError(`${caFile} holds a certificate that cannot be parsed: ${(err as Error).message}`);
    }
    if (!cert.ca)
      throw new TrustError(`${caFile}: ${cert.subject.replace(/\n/g, ", ")} is not a CA certificate (basicConstraints CA:FALSE)`);
  }
  return pems;
}

/** Trust in the system's CAs plus those in `caFile` (null: the system's only). */
export async function loadTrust(caFile: string | null): Promise<Trust> {
  if (caFile === null) return SYSTEM_TRUST;
  const ca = [...tls.rootCertificates, ...(await readCaFile(caFile))];
  // Node's fetch is undici; this package is pinned to the version Node 20 bundles, so its dispatcher fits.
  // Imported only here: an agent without its own CA (the common case) never loads it (about 10 MiB of RSS).
  const { Agent } = await import("undici");
  const dispatcher: Dispatcher = new Agent({ connect: { ca } });
  return {
    caFile,
    ca,
    fetch: (input, init) => fetch(input, { ...init, dispatcher } as RequestInit),
  };
}

const CERTIFICATE_ERRORS = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
]);

/**
 * What to tell an operator when a TLS handshake failed on the certificate (the `code` of a
 * fetch failure's cause, or of a socket error); null for other errors.
 */
export function describeCertificateError(code: string | undefined, trust: Trust): string | null {
  if (code === undefined) return null;
  if (CERTIFICATE_ERRORS.has(code)) {
    return trust.caFile === null
      ? `the server's certificate is not signed by a CA this device trusts (${code}): enroll with --ca FILE, the CA that signed it (ca.crt from infra/tls/make-lab-ca.sh)`
      : `the server's certificate is not signed by the CA in ${trust.caFile} (${code})`;
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return "the server's certificate does not name the host in the URL (ERR_TLS_CERT_ALTNAME_INVALID): reissue it with that name or use a name it has";
  }
  if (code === "CERT_HAS_EXPIRED") return "the server's certificate has expired (CERT_HAS_EXPIRED)";
  return null;
}
