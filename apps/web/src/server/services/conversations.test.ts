import { describe, expect, it } from "vitest";
import { historyForModel, storableText } from "./conversations.ts";

describe("historyForModel", () => {
  it("keeps question-answer pairs that produced text, drops a question whose answer failed", () => {
    expect(
      historyForModel([
        { role: "user", content: "a", status: "complete" },
        { role: "assistant", content: "b", status: "complete" },
        { role: "user", content: "c", status: "complete" },
        { role: "assistant", content: "partial", status: "error" },
        { role: "user", content: "d", status: "complete" },
        { role: "assistant", content: "stopped early", status: "cancelled" },
        { role: "user", content: "e", status: "complete" },
        { role: "assistant", content: "", status: "cancelled" },
      ]),
    ).toEqual([
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: "d" },
      { role: "assistant", content: "stopped early" },
    ]);
  });
});

describe("storableText", () => {
  it("replaces the NUL a model can emit (PostgreSQL text cannot hold it) and leaves other text alone", () => {
    expect(storableText("a\u0000b\u0000")).toBe("a\uFFFDb\uFFFD");
    expect(storableText("plain ✓ text")).toBe("plain ✓ text");
  });
});
