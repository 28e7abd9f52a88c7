/**
 * Credential rotation end to end: the real server (embedded broker, or Mosquitto
 * + PostgreSQL with ORCHARD_TEST_MODE=production) and a real agent. Online, the
 * agent stores the new password, logs in with it and keeps working, and the old
 * one is refused by the broker and by the device HTTP API; offline, the rotation
 * waits (the old password still works) and completes when the agent reconnects.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollAgent, removeDir, startServer, waitFor, type TestAgent, type TestServer } from "../support/harness.ts";

let server: TestServer;
let agent: TestAgent;

interface AgentJson {
  mqtt: { url: string; username: string; password: string; nextPassword?: string };
}
const agentJson = async (a: TestAgent): Promise<AgentJson> =>
  JSON.parse(await readFile(path.join(a.dataDir, "agent.json"), "utf8")) as AgentJson;

/** The device HTTP API (Basic device id : broker password) answers 200 or 401. */
async function httpStatus(deviceId: string, password: string): Promise<number> {
  const res = await fetch(`${server.url}/api/device/artifact-key`, {
    headers: { authorization: `Basic ${Buffer.from(`${deviceId}:${password}`).toString("base64")}` },
  });
  await res.arrayBuffer();
  return res.status;
}

/** Whether the broker accepts the password (only ever asked with a password it must refuse, so the agent is not taken over). */
async function brokerAccepts(url: string, deviceId: string, password: string): Promise<boolean> {
  const client = mqtt.connect(url, { clientId: deviceId, username: deviceId, password, protocolVersion: 4, reconnectPeriod: 0 });
  return new Promise<boolean>((resolve) => {
    client.once("connect", () => {
      client.end(true);
      resolve(true);
    });
    client.once("error", () => {
      client.end(true);
      resolve(false);
    });
  });
}

async function online(a: TestAgent): Promise<void> {
  await waitFor(`${a.name} online`, async () => (await server.client.devices.get.query({ id: a.deviceId })).online);
}

beforeAll(async () => {
  server = await startServer();
  agent = await enrollAgent(server, "rotating");
  agent.start();
  await online(agent);
});

afterAll(async () => {
  await agent?.proc?.stop();
  await server?.stop();
  if (agent) await removeDir(agent.dataDir);
  if (server) await removeDir(server.dataDir);
});

describe("credential rotation", () => {
  it("rotates an online device: it keeps working with the new password and the old one is refused", async () => {
    const before = await agentJson(agent);
    const oldPassword = before.mqtt.password;
    expect(await httpStatus(agent.deviceId, oldPassword)).toBe(200);

    const result = await server.client.devices.rotateCredentials.mutate({ id: agent.deviceId });
    expect(result.state).toBe("applied");

    // The agent logged in again with the new password and forgot the old one.
    const after = await waitFor("agent.json to hold only the new password", async () => {
      const a = await agentJson(agent);
      return a.mqtt.password !== oldPassword && a.mqtt.nextPassword === undefined ? a : null;
    });
    await online(agent);
    // Still working: fresh telemetry arrives after the rotation.
    const rotatedAt = Date.now();
    await waitFor("telemetry after the rotation", async () => {
      const d = await server.client.devices.get.query({ id: agent.deviceId });
      return d.online && (d.telemetry?.ts ?? 0) > rotatedAt;
    });
    expect(await httpStatus(agent.deviceId, after.mqtt.password)).toBe(200);
    expect(await httpStatus(agent.deviceId, oldPassword)).toBe(401);
    expect(await brokerAccepts(after.mqtt.url, agent.deviceId, oldPassword)).toBe(false);
    expect(agent.proc!.output).not.toContain(after.mqtt.password);
    expect(server.proc.output).not.toContain(after.mqtt.password);
  });

  it("keeps a rotation for an offline device pending, with the old password working, and completes it when it reconnects", async () => {
    await agent.proc!.stop();
    await waitFor("the device offline", async () => !(await server.client.devices.get.query({ id: agent.deviceId })).online);
    const oldPassword = (await agentJson(agent)).mqtt.password;

    const result = await server.client.devices.rotateCredentials.mutate({ id: agent.deviceId });
    expect(result).toMatchObject({ state: "pending", message: expect.stringMatching(/offline/) });
    expect(await httpStatus(agent.deviceId, oldPassword)).toBe(200);

    agent.start();
    const after = await waitFor(
      "the rotation to complete after the agent reconnects",
      async () => {
        const a = await agentJson(agent);
        return a.mqtt.password !== oldPassword && a.mqtt.nextPassword === undefined ? a : null;
      },
      60_000,
    );
    await online(agent);
    await waitFor("the old password to stop working over HTTP", async () => (await httpStatus(agent.deviceId, oldPassword)) === 401);
    expect(await httpStatus(agent.deviceId, after.mqtt.password)).toBe(200);
    expect(await brokerAccepts(after.mqtt.url, agent.deviceId, oldPassword)).toBe(false);
  });

  it("refuses to rotate a device that does not exist", async () => {
    await expect(server.client.devices.rotateCredentials.mutate({ id: "pi-nosuchdevice" })).rejects.toThrow(/No device pi-nosuchdevice/);
  });
});
