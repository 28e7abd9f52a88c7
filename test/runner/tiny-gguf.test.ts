/**
 * The tiny GGUF fixture generator (scripts/tiny-gguf.ts): the file parses back with
 * an independent minimal GGUF reader (v3, little-endian, the metadata types llama.cpp
 * checks, 32-byte aligned tensors), and node-llama-cpp loads it, renders its chat
 * template and tokenizes any text.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { getLlama, LlamaLogLevel, resolveChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTinyGguf, TINY_CHAT_TEMPLATE, TINY_GGUF_NAME, writeTinyGguf } from "../../scripts/tiny-gguf.ts";

type Value = { type: number; value: unknown };
type Parsed = {
  version: number;
  metadata: Map<string, Value>;
  tensors: { name: string; dims: number[]; type: number; offset: number }[];
  dataStart: number;
};

/** A minimal GGUF reader, independent of the writer. */
function parseGguf(buf: Buffer): Parsed {
  let pos = 0;
  const u32 = () => ((pos += 4), buf.readUInt32LE(pos - 4));
  const u64 = () => ((pos += 8), Number(buf.readBigUInt64LE(pos - 8)));
  const str = () => {
    const n = u64();
    pos += n;
    return buf.toString("utf8", pos - n, pos);
  };
  const scalar = (type: number): unknown => {
    switch (type) {
      case 4:
        return u32();
      case 5:
        return ((pos += 4), buf.readInt32LE(pos - 4));
      case 6:
        return ((pos += 4), buf.readFloatLE(pos - 4));
      case 7:
        return ((pos += 1), buf[pos - 1] === 1);
      case 8:
        return str();
      default:
        throw new Error(`unexpected metadata type ${type}`);
    }
  };
  expect(buf.toString("ascii", 0, 4)).toBe("GGUF");
  pos = 4;
  const version = u32();
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, Value>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    if (type === 9) {
      const elementType = u32();
      const n = u64();
      const items: unknown[] = [];
      for (let j = 0; j < n; j++) items.push(scalar(elementType));
      metadata.set(key, { type: 9, value: { elementType, items } });
    } else {
      metadata.set(key, { type, value: scalar(type) });
    }
  }
  const tensors: Parsed["tensors"] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const nDims = u32();
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(u64());
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  return { version, metadata, tensors, dataStart: Math.ceil(pos / 32) * 32 };
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "orchard-tiny-gguf-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("tiny GGUF generator", () => {
  it("writes a GGUF v3 with typed metadata and aligned tensors that parses back", async () => {
    const result = await writeTinyGguf({ file: path.join(dir, "a.gguf"), seed: 7 });
    const buf = await readFile(result.file);
    expect(result.sizeBytes).toBe(buf.length);
    expect(result.sha256).toBe(createHash("sha256").update(buf).digest("hex"));

    const gguf = parseGguf(buf);
    expect(gguf.version).toBe(3);
    const meta = (key: string) => gguf.metadata.get(key);
    expect(meta("general.architecture")).toEqual({ type: 8, value: "llama" });
    expect(meta("general.name")).toEqual({ type: 8, value: TINY_GGUF_NAME });
    for (const key of [
      "llama.context_length",
      "llama.embedding_length",
      "llama.block_count",
      "llama.attention.head_count",
      "tokenizer.ggml.eot_token_id",
    ]) {
      expect(meta(key)?.type, key).toBe(4); // UINT32
    }
    expect(meta("llama.attention.layer_norm_rms_epsilon")?.type).toBe(6); // FLOAT32
    expect(meta("llama.rope.dimension_count")?.value).toBe(64 / 4);
    expect(meta("tokenizer.chat_template")).toEqual({ type: 8, value: TINY_CHAT_TEMPLATE });

    const tokens = meta("tokenizer.ggml.tokens")!.value as { elementType: number; items: string[] };
    const types = meta("tokenizer.ggml.token_type")!.value as { elementType: number; items: number[] };
    expect(tokens.elementType).toBe(8);
    expect(types.elementType).toBe(5); // INT32
    expect(tokens.items).toHaveLength(512);
    expect(new Set(tokens.items).size).toBe(tokens.items.length);
    expect(types.items.filter((t) => t === 6)).toHaveLength(256); // a byte token for every byte
    for (const key of ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"]) {
      expect(types.items[meta(key)!.value as number], key).toBe(3); // CONTROL
    }

    let expectedOffset = 0;
    for (const tensor of gguf.tensors) {
      expect(tensor.type).toBe(0); // F32
      expect(tensor.offset, tensor.name).toBe(expectedOffset);
      expect(tensor.offset % 32).toBe(0);
      expectedOffset += Math.ceil((tensor.dims.reduce((a, b) => a * b, 1) * 4) / 32) * 32;
    }
    expect(gguf.tensors.find((t) => t.name === "token_embd.weight")?.dims).toEqual([64, 512]);
    expect(gguf.tensors.find((t) => t.name === "blk.1.ffn_down.weight")?.dims).toEqual([256, 64]);
    expect(gguf.dataStart + expectedOffset).toBe(buf.length);
  });

  it("is deterministic for a seed and differs between seeds", () => {
    expect(buildTinyGguf({ seed: 3 }).equals(buildTinyGguf({ seed: 3 }))).toBe(true);
    expect(buildTinyGguf({ seed: 3 }).equals(buildTinyGguf({ seed: 4 }))).toBe(false);
  });

  it("refuses an embedding size the heads do not divide", () => {
    expect(() => buildTinyGguf({ embedding: 30, heads: 4 })).toThrow(/multiple of heads/);
  });

  it("loads in node-llama-cpp, renders its chat template and tokenizes any text", async () => {
    const { file } = await writeTinyGguf({ file: path.join(dir, "b.gguf") });
    const llama = await getLlama({ gpu: false, maxThreads: 1, build: "never", logLevel: LlamaLogLevel.error });
    try {
      const model = await llama.loadModel({ modelPath: file });
      expect(model.trainContextSize).toBe(512);
      const text = "Grüße, 世界! 🍐 tab\there";
      const tokens = model.tokenize(text, false);
      expect(model.detokenize(tokens)).toBe(text);
      const wrapper = resolveChatWrapper(model)!;
      const rendered = wrapper.generateContextState({
        chatHistory: [
          { type: "user", text: "hi" },
          { type: "model", response: [] },
        ],
      }).contextText;
      expect(rendered.toString()).toContain("<|user|>\nhi<|end|>\n<|assistant|>\n");
      const ids = rendered.tokenize(model.tokenizer);
      expect(ids).toContain(model.tokens.eot);
      await model.dispose();
    } finally {
      await llama.dispose();
    }
  });
});
