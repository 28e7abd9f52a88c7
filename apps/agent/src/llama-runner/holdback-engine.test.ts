/**
 * The llama.cpp runner's text, at the point where token bytes become text: with the real
 * node-llama-cpp detokenizer on the tiny GGUF (a byte-level vocabulary, so "é" is the two
 * byte tokens <0xC3><0xA9> and "🍎" four), a character split across tokens comes out whole
 * in one token's text, never as two invalid halves (U+FFFD).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Llama, LlamaModel, Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyGguf } from "../../../../scripts/tiny-gguf.ts";
import { loadLlama } from "./engine.ts";
import { TextHoldback } from "./plan.ts";

let dir: string;
let llama: Llama;
let model: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-holdback-"));
  const { file } = await writeTinyGguf({ file: path.join(dir, "tiny.gguf") });
  llama = await loadLlama(1, () => undefined);
  model = await llama.loadModel({ modelPath: file });
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("TextHoldback on node-llama-cpp's detokenizer", () => {
  it("a token stream that splits é, ñ and an emoji across tokens comes out whole", () => {
    const text = "café ñ 🍎 déjà vu";
    const tokens = model.tokenize(text) as number[];
    // The vocabulary has no piece for these characters: each is split into its bytes.
    expect(tokens.length).toBeGreaterThan([...text].length);
    const alone = tokens.map((t) => model.detokenize([t as Token]));
    expect(alone.filter((piece) => piece.includes("\uFFFD")).length, "decoded one at a time, the halves are invalid").toBeGreaterThan(0);

    const holdback = new TextHoldback((held, last) => model.detokenize(held as Token[], false, last as Token[]));
    const pieces = tokens.map((t) => holdback.push(t));
    expect(pieces.filter((p) => p.includes("\uFFFD"))).toEqual([]);
    expect(pieces.join("").trim()).toBe(text);
    expect(pieces).toContain(pieces.find((p) => p.includes("🍎")));
    expect(holdback.heldTokens).toBe(0);
  });
});
