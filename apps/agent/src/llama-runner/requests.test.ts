import { describe, expect, it } from "vitest";
import { parseRequestLine } from "./requests.ts";

describe("parseRequestLine", () => {
  it("parses every request type with the contract's defaults", () => {
    const generate = parseRequestLine('{"type":"generate","id":"r1","prompt":"hi"}');
    expect(generate).toEqual({
      ok: true,
      request: { type: "generate", id: "r1", prompt: "hi", max_new_tokens: 256, temperature: 0, top_p: 1 },
    });
    expect(parseRequestLine('{"type":"cancel","id":"r1"}')).toEqual({ ok: true, request: { type: "cancel", id: "r1" } });
    expect(parseRequestLine('{"type":"reset"}')).toEqual({ ok: true, request: { type: "reset" } });
    expect(parseRequestLine('{"type":"stats"}')).toEqual({ ok: true, request: { type: "stats" } });
    expect(parseRequestLine('{"type":"shutdown"}')).toEqual({ ok: true, request: { type: "shutdown" } });
  });

  it("explains what is wrong, with the id when it had a valid one", () => {
    expect(parseRequestLine("nope")).toMatchObject({ ok: false, message: expect.stringContaining("not JSON") });
    expect(parseRequestLine("[1]")).toMatchObject({ ok: false, message: expect.stringContaining("JSON object") });
    expect(parseRequestLine('{"type":"launch"}')).toMatchObject({
      ok: false,
      message: expect.stringContaining('unknown request type "launch"'),
    });
    const both = parseRequestLine('{"type":"generate","id":"r2","prompt":"a","messages":[{"role":"user","content":"b"}]}');
    expect(both).toMatchObject({ ok: false, id: "r2", message: expect.stringContaining("exactly one of messages, prompt or rendered") });
    const badTokens = parseRequestLine('{"type":"generate","id":"r3","prompt":"a","max_new_tokens":0}');
    expect(badTokens).toMatchObject({ ok: false, id: "r3", message: expect.stringContaining("max_new_tokens") });
    expect(parseRequestLine('{"type":"cancel"}')).toMatchObject({ ok: false, message: expect.stringContaining("id") });
  });
});
