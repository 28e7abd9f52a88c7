import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../lib/logger.js";
import { type AgentFile, NotEnrolledError, loadAgentFile, publicMqttUrl, saveAgentFile } from "./agent-file.js";

let tmp: string;
beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-file-"));
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const agent: AgentFile = {
  version: 1,
  serverUrl: "http://127.0.0.1:3000",
  deviceId: "pi-kitchen-01",
  name: "kitchen",
  mqtt: { url: "mqtt://127.0.0.1:1883", username: "pi-kitchen-01", password: "correct horse battery staple" },
  enrolledAt: "2025-01-01T00:00:00.000Z",
};

describe("agent.json", () => {
  it("is saved 0600 in a 0700 data dir and loads back identical", async () => {
    const dir = path.join(tmp, "data");
    const file = await saveAgentFile(dir, agent);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await loadAgentFile(dir)).toEqual(agent);
  });

  it("missing: says how to enroll", async () => {
    await expect(loadAgentFile(tmp)).rejects.toThrow(NotEnrolledError);
    await expect(loadAgentFile(tmp)).rejects.toThrow(/^not enrolled: run orchard-agent enroll --server URL --token T --data-dir /);
  });

  it("damaged or from something else: says to enroll again", async () => {
    await writeFile(path.join(tmp, "agent.json"), "{not json");
    await expect(loadAgentFile(tmp)).rejects.toThrow(/not valid JSON: enroll again/);
    await writeFile(path.join(tmp, "agent.json"), JSON.stringify({ ...agent, deviceId: "Bad/Id" }));
    await expect(loadAgentFile(tmp)).rejects.toThrow(/deviceId.*enroll again/);
  });

  it("warns when agent.json is readable by others, without printing the password", async () => {
    await saveAgentFile(tmp, agent);
    await chmod(path.join(tmp, "agent.json"), 0o644);
    const lines: string[] = [];
    await loadAgentFile(tmp, createLogger({ write: (l) => lines.push(l) }));
    expect(lines.join("")).toMatch(/readable by other users/);
    expect(lines.join("")).not.toContain(agent.mqtt.password);
  });

  it("the file holds the password, and nothing but agent.json is in the data dir", async () => {
    await saveAgentFile(tmp, agent);
    expect(JSON.parse(await readFile(path.join(tmp, "agent.json"), "utf8")).mqtt.password).toBe(agent.mqtt.password);
  });

  it("publicMqttUrl strips credentials", () => {
    expect(publicMqttUrl("mqtt://u:p@broker:1883")).toBe("mqtt://broker:1883");
  });
});
