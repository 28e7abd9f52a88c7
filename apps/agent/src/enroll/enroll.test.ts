import { generateKeyPairSync } from "node:crypto";
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { EnrollRequest } from "@orchard/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollCommand } from "../commands/enroll.js";
import { loadAgentFile } from "../config/agent-file.js";
import { silentLogger } from "../lib/logger.js";
import { EnrollError, requestEnrollment } from "./enroll.js";

/** A real HTTP server on loopback standing in for the Orchard server's /api/enroll. */
type Handler = (body: unknown, res: ServerResponse) => void;
let handler: Handler;
let server: ReturnType<typeof createServer>;
let base: string;
const received: unknown[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/api/enroll") {
        res.writeHead(404).end("not found");
        return;
      }
      const body = JSON.parse(data) as unknown;
      received.push(body);
      handler(body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));

const granted = {
  deviceId: "pi-01",
  name: "kitchen",
  mqttUrl: "mqtt://127.0.0.1:1883",
  mqttUsername: "pi-01",
  mqttPassword: "s3cret-broker-password",
};

const params = { token: "tok_abcdefgh", hostname: "raspberrypi", arch: "arm64", agentVersion: "0.1.0" };

describe("requestEnrollment", () => {
  it("posts an EnrollRequest and returns the EnrollResponse on 201", async () => {
    handler = (_body, res) => json(res, 201, granted);
    expect(await requestEnrollment({ ...params, serverUrl: `${base}/` })).toEqual(granted);
    expect(EnrollRequest.parse(received.at(-1))).toEqual(params);
  });

  it("prints the server's message for a reused or expired token", async () => {
    handler = (_b, res) => json(res, 410, { error: { code: "token_used", message: "this enrollment token was already used" } });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(
      new EnrollError("enrollment refused: this enrollment token was already used (token_used)"),
    );
  });

  it("reports a non-JSON error with its status", async () => {
    handler = (_b, res) => res.writeHead(502).end("Bad Gateway");
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(/answered HTTP 502: Bad Gateway/);
  });

  it("refuses a 201 without a usable enrollment", async () => {
    handler = (_b, res) => json(res, 201, { deviceId: "pi-01" });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(/without a valid enrollment/);
    handler = (_b, res) => json(res, 201, { ...granted, deviceId: "../../#" });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(/device id this agent cannot use/);
    handler = (_b, res) => json(res, 201, { ...granted, mqttUrl: "http://127.0.0.1:3000" });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(/broker URL this agent cannot use/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "der", type: "spki" }).toString("base64");
    handler = (_b, res) => json(res, 201, { ...granted, artifactPublicKey: rsa });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(
      /artifact key this agent cannot use \(.*expected ed25519\)/,
    );
    handler = (_b, res) => json(res, 201, { ...granted, artifactPublicKey: "bm90IGEga2V5" });
    await expect(requestEnrollment({ ...params, serverUrl: base })).rejects.toThrow(
      /artifact key this agent cannot use \(.*not a valid SPKI key/,
    );
  });

  it("says when the server cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(requestEnrollment({ ...params, serverUrl: `http://127.0.0.1:${port}` })).rejects.toThrow(
      `cannot reach http://127.0.0.1:${port}: connection refused`,
    );
  });

  it("times out instead of hanging", async () => {
    handler = () => undefined; // never answers
    await expect(requestEnrollment({ ...params, serverUrl: base, timeoutMs: 200 })).rejects.toThrow(/no answer from .* within 200 ms/);
  });
});

describe("orchard-agent enroll", () => {
  it("stores the identity 0600 and refuses to replace it without --force", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-enroll-"));
    try {
      handler = (_b, res) => json(res, 201, granted);
      const printed: string[] = [];
      const command = {
        name: "enroll" as const,
        log: { level: "info" as const, format: "text" as const },
        dataDir: dir,
        serverUrl: base,
        token: "tok_abcdefgh",
        force: false,
        caFile: null,
      };
      expect(await enrollCommand(command, silentLogger, (l) => printed.push(l))).toBe(0);
      expect(printed.join("\n")).toContain("enrolled as kitchen (pi-01)");
      expect(printed.join("\n")).not.toContain(granted.mqttPassword);
      const stored = await loadAgentFile(dir);
      expect(stored).toMatchObject({ serverUrl: base, deviceId: "pi-01", mqtt: { password: granted.mqttPassword } });
      expect(stored.artifactPublicKey).toBeUndefined(); // a server older than rollouts: fetched later by `run`
      expect((await stat(path.join(dir, "agent.json"))).mode & 0o777).toBe(0o600);

      await expect(enrollCommand(command, silentLogger, () => undefined)).rejects.toThrow(
        /already enrolled as device kitchen \(pi-01\).*--force/,
      );
      const key = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" }).toString("base64");
      handler = (_b, res) => json(res, 201, { ...granted, deviceId: "pi-02", name: "garage", artifactPublicKey: key });
      await enrollCommand({ ...command, force: true }, silentLogger, () => undefined);
      expect(JSON.parse(await readFile(path.join(dir, "agent.json"), "utf8"))).toMatchObject({ deviceId: "pi-02", artifactPublicKey: key });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
