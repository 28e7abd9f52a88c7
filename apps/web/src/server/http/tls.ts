/**
 * HTTPS for the dashboard, the API and socket.io: ORCHARD_TLS_CERT_FILE (PEM, the server's
 * certificate followed by any intermediates) and ORCHARD_TLS_KEY_FILE (PEM private key).
 * A lab CA made with infra/tls/make-lab-ca.sh is the common case (docs/operations.md).
 */
import { readFile } from "node:fs/promises";
import tls from "node:tls";

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Reads and checks the pair; every failure names the file and what is wrong with it. */
export async function loadTlsOptions(files: TlsFiles): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string, variable: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message;
      throw new Error(`cannot read the TLS ${what} ${file} (${variable}): ${reason}`);
    }
  };
  const cert = await read(files.certFile, "certificate", "ORCHARD_TLS_CERT_FILE");
  const key = await read(files.keyFile, "private key", "ORCHARD_TLS_KEY_FILE");
  try {
    // Parses both and checks that the key belongs to the certificate.
    tls.createSecureContext({ cert, key });
  } catch (err) {
    const message = (err as Error).message;
    const hint = /key values mismatch/i.test(message)
      ? "the private key does not belong to the certificate"
      : /PEM|no start line|bad base64|DECODER/i.test(message)
        ? "not a PEM certificate and private key"
        : message;
    throw new Error(`cannot use ${files.certFile} with ${files.keyFile} for HTTPS: ${hint}`);
  }
  return { cert, key };
}
