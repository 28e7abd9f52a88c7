import { describe, expect, it } from "vitest";
import { encodeRunnerRequest, parseRunnerLine } from "./runner.ts";

describe("runner protocol", () => {
  it("encodes requests as one JSON line with defaults filled in", () => {
    const line = encodeRunnerRequest({ type: "generate", id: "r1", messages: [{ role: "user", content: "hi" }] });
    expect(line.endsWith("\n")).toBe(true);
    expect(line.indexOf("\n")).toBe(line.length - 1);
    expect(JSON.parse(line)).toEqual({
      type: "generate",
      id: "r1",
      messages: [{ role: "user", content: "hi" }],
      max_new_tokens: 256,
      temperature: 0,
      top_p: 1,
    });
  });

  it("refuses a generate with both or neither of messages and prompt", () => {
    expect(() => encodeRunnerRequest({ type: "generate", id: "r1" })).toThrow(/exactly one of messages, prompt or rendered/);
    expect(() => encodeRunnerRequest({ type: "generate", id: "r1", prompt: "x", messages: [{ role: "user", content: "y" }] })).toThrow(
      /exactly one of messages, prompt or rendered/,
    );
  });

  it("parses every runner message and rejects anything else with the line quoted", () => {
    expect(parseRunnerLine('{"type":"token","id":"r1","text":"é","token_id":195}')).toEqual({
      type: "token",
      id: "r1",
      text: "é",
      token_id: 195,
    });
    expect(parseRunnerLine('{"type":"error","code":"busy","message":"one at a time"}').type).toBe("error");
    expect(() => parseRunnerLine("loading model...")).toThrow(/not JSON: loading model/);
    expect(() => parseRunnerLine('{"type":"token","id":"r1"}')).toThrow(/unknown message/);
    expect(() => parseRunnerLine('{"type":"error","code":"nope","message":"x"}')).toThrow(/unknown message/);
  });
});
