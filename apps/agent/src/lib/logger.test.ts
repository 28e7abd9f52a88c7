import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.js";

function capture(format: "text" | "json", level: "debug" | "info" = "info") {
  const lines: string[] = [];
  const logger = createLogger({ format, level, write: (l) => lines.push(l), now: () => new Date("2025-01-01T00:00:00Z") });
  return { logger, lines };
}

describe("logger", () => {
  it("writes text lines with level, message and fields", () => {
    const { logger, lines } = capture("text");
    logger.info("connected to broker", { deviceId: "pi-01", url: "mqtt://127.0.0.1:1883" });
    expect(lines).toEqual(["2025-01-01T00:00:00.000Z INFO  connected to broker deviceId=pi-01 url=mqtt://127.0.0.1:1883\n"]);
  });

  it("writes JSON lines", () => {
    const { logger, lines } = capture("json");
    logger.child({ component: "runner" }).warn("runner exited", { code: 3 });
    expect(JSON.parse(lines[0]!)).toEqual({
      ts: "2025-01-01T00:00:00.000Z",
      level: "warn",
      msg: "runner exited",
      component: "runner",
      code: 3,
    });
  });

  it("drops lines below the level", () => {
    const { logger, lines } = capture("text", "info");
    logger.debug("noise");
    expect(lines).toEqual([]);
  });

  it("never prints credentials: secret fields are redacted, URL credentials are cut", () => {
    const { logger, lines } = capture("json", "debug");
    logger.info("enrolled", {
      password: "hunter2",
      mqttPassword: "s3cret",
      token: "enroll-token-123",
      generatedTokens: 12,
      url: "mqtt://pi-01:s3cret@broker:1883",
    });
    logger.error("failed for mqtt://user:pw@host:1883/x");
    const text = lines.join("");
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain("enroll-token-123");
    expect(text).not.toContain(":pw@");
    const first = JSON.parse(lines[0]!);
    expect(first.generatedTokens).toBe(12);
    expect(first.url).toBe("mqtt://***@broker:1883");
  });

  it("logs an Error by its message", () => {
    const { logger, lines } = capture("text");
    logger.warn("failed", { error: new Error("ECONNREFUSED 127.0.0.1:1883") });
    expect(lines[0]).toContain('error="ECONNREFUSED 127.0.0.1:1883"');
  });
});
