/**
 * TLS material for tests, made by the script operators use (infra/tls/make-lab-ca.sh):
 * a lab CA and a server certificate for 127.0.0.1 and localhost.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const SCRIPT = fileURLToPath(new URL("../../../../infra/tls/make-lab-ca.sh", import.meta.url));

export interface LabCa {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

export async function makeLabCa(names: string[] = ["127.0.0.1", "localhost"]): Promise<LabCa> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-lab-ca-"));
  await promisify(execFile)("bash", [SCRIPT, dir, ...names]);
  const certFile = path.join(dir, "server.crt");
  const keyFile = path.join(dir, "server.key");
  return { dir, caFile: path.join(dir, "ca.crt"), certFile, keyFile, cert: await readFile(certFile), key: await readFile(keyFile) };
}
