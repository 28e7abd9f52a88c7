/**
 * Trust in a lab CA, against real TLS servers on loopback: HTTPS (enrollment's and the
 * rollout's fetch) and MQTT over TLS (an Aedes broker behind tls.createServer), with
 * certificates made by infra/tls/make-lab-ca.sh.
 */
import { readFile, rm, stat } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import tls from "node:tls";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollCommand } from "../commands/enroll.js";
import { loadAgentFile } from "../config/agent-file.js";
import { EnrollError, requestEnrollment } from "../enroll/enroll.js";
import { makeLabCa, type LabCa } from "../../test/helpers/lab-ca.js";
import { silentLogger } from "./logger.js";
import { SYSTEM_TRUST, TrustError, loadTrust, readCaFile } from "./trust.js";

let ca: LabCa;
let server: https.Server;
let base: string;

const granted = {
  deviceId: "pi-tls",
  name: "tls",
  mqttUrl: "mqtts://127.0.0.1:8883",
  mqttUsername: "pi-tls",
  mqttPassword: "tls-broker-password",
};
const params = { token: "tok_abcdefgh", hostname: "raspberrypi", arch: "arm64", agentVersion: "0.1.0" };

beforeAll(async () => {
  ca = await makeLabCa();
  server = https.createServer({ cert: ca.cert, key: ca.key }, (req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify(granted)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  if (ca) await rm(ca.dir, { recursive: true, force: true });
});

describe("trust in a lab CA", () => {
  it("reads a CA file and refuses what is not one, naming the file", async () => {
    expect(await readCaFile(ca.caFile)).toHaveLength(1);
    await expect(readCaFile(path.join(ca.dir, "missing.crt"))).rejects.toThrow(/cannot read the CA file .*missing\.crt: no such file/);
    await expect(readCaFile(ca.keyFile)).rejects.toThrow(TrustError);
    await expect(readCaFile(ca.keyFile)).rejects.toThrow(/holds no PEM certificate/);
    // The server's own certificate is not a CA: trusting it would not do what the operator meant.
    await expect(readCaFile(ca.certFile)).rejects.toThrow(/is not a CA certificate/);
  });

  it("enrollment over https: refused without the CA with a hint to --ca, accepted with it", async () => {
    const refused = await requestEnrollment({ ...params, serverUrl: base }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(EnrollError);
    expect((refused as Error).message).toMatch(
      /not signed by a CA this device trusts \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\): enroll with --ca FILE/,
    );
    const trust = await loadTrust(ca.caFile);
    expect(await requestEnrollment({ ...params, serverUrl: base, trust })).toEqual(granted);
    // The name in the URL must be in the certificate.
    const other = await makeLabCa(["orchard.invalid"]);
    try {
      const wrongName = await requestEnrollment({ ...params, serverUrl: base, trust: await loadTrust(other.caFile) }).catch(
        (e: unknown) => e,
      );
      expect((wrongName as Error).message).toMatch(/not signed by the CA in .*ca\.crt/);
    } finally {
      await rm(other.dir, { recursive: true, force: true });
    }
  });

  it("enroll --ca keeps a copy of the CA in the data dir and names it in agent.json; a bad --ca spends no token", async () => {
    const dataDir = path.join(ca.dir, "agent");
    const command = {
      name: "enroll" as const,
      log: { level: "info" as const, format: "text" as const },
      dataDir,
      serverUrl: base,
      token: "tok_abcdefgh",
      force: false,
      caFile: ca.keyFile,
    };
    let requests = 0;
    server.on("request", () => (requests += 1));
    await expect(enrollCommand(command, silentLogger, () => undefined)).rejects.toThrow(/holds no PEM certificate/);
    expect(requests).toBe(0);

    const printed: string[] = [];
    expect(await enrollCommand({ ...command, caFile: ca.caFile }, silentLogger, (l) => printed.push(l))).toBe(0);
    const stored = await loadAgentFile(dataDir);
    expect(stored.tls).toEqual({ caFile: path.join(dataDir, "ca.crt") });
    expect(await readFile(stored.tls!.caFile, "utf8")).toBe(await readFile(ca.caFile, "utf8"));
    expect((await stat(stored.tls!.caFile)).mode & 0o777).toBe(0o644);
    expect(printed.join("\n")).toContain(`trusting the CA in ${path.join(dataDir, "ca.crt")}`);
    expect(requests).toBe(1);
  });

  it("mqtts: the broker's lab certificate is refused with the system's CAs and accepted with the CA", async () => {
    const broker = await Aedes.createBroker();
    const tlsServer = tls.createServer({ cert: ca.cert, key: ca.key }, broker.handle);
    await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
    const url = `mqtts://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
    try {
      const base = { reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4 as const };
      await expect(mqtt.connectAsync(url, { ...base, ca: SYSTEM_TRUST.ca })).rejects.toThrow(
        /unable to verify the first certificate|self-signed certificate/,
      );
      const trust = await loadTrust(ca.caFile);
      const client = await mqtt.connectAsync(url, { ...base, ca: trust.ca });
      expect(client.connected).toBe(true);
      await client.endAsync();
    } finally {
      await new Promise<void>((r) => tlsServer.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    }
  });
});
