/**
 * A tiny LLaMA-architecture GGUF with random weights, for tests and the demo: real
 * llama.cpp compute in about a second, no downloads. The text it generates is
 * gibberish (the weights are random); `general.name` says so, and so should every
 * place that shows it.
 *
 *   writeTinyGguf({ file, seed?, … })  → { file, sizeBytes, sha256 }
 *
 * CLI: npm run tiny-gguf -- --out FILE [--seed N] [--context N]
 *
 * Format: GGUF v3, little-endian, typed metadata as llama.cpp checks it (UINT32
 * integers, FLOAT32 floats, INT32 token types), a byte-level SentencePiece vocabulary
 * (256 byte tokens, so any text tokenizes, plus unique ASCII pieces), control tokens
 * for a small chat template, f32 tensors at running offsets padded to 32 bytes,
 * dimensions fastest-first.
 */
import { createHash } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";

export const TINY_GGUF_NAME = "orchard tiny random-weights model";

/** The chat template stored in tokenizer.chat_template (rendered by the runner through node-llama-cpp). */
export const TINY_CHAT_TEMPLATE =
  "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}" +
  "{% if add_generation_prompt %}<|assistant|>\n{% endif %}";

const ALIGNMENT = 32;

/** GGUF metadata value types. */
const T = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9 } as const;
/** llama.cpp token types. */
const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;
const GGML_TYPE_F32 = 0;

export const TinyGgufOptions = z.object({
  file: z.string().min(1),
  seed: z.number().int().nonnegative().max(0xffffffff).default(1),
  embedding: z.number().int().positive().max(4096).default(64),
  layers: z.number().int().positive().max(64).default(2),
  heads: z.number().int().positive().max(64).default(4),
  feedForward: z.number().int().positive().max(16384).default(256),
  context: z.number().int().positive().max(32768).default(512),
  vocabulary: z.number().int().min(300).max(4096).default(512),
});
export type TinyGgufOptions = z.input<typeof TinyGgufOptions>;

export type TinyGgufResult = { file: string; sizeBytes: number; sha256: string };

export type TinyVocabulary = { tokens: string[]; scores: number[]; types: number[]; bos: number; eos: number; eot: number; unk: number };

/**
 * The vocabulary: <unk>, <s>, </s>, the chat control tokens, 256 byte tokens, then
 * unique ASCII pieces ("▁" marks a leading space, SentencePiece style) up to `size`.
 */
export function tinyVocabulary(size: number): TinyVocabulary {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const add = (text: string, type: number, score = 0) => {
    tokens.push(text);
    types.push(type);
    scores.push(score);
    return tokens.length - 1;
  };
  const unk = add("<unk>", TOKEN_TYPE.UNKNOWN);
  const bos = add("<s>", TOKEN_TYPE.CONTROL);
  const eos = add("</s>", TOKEN_TYPE.CONTROL);
  for (const role of ["system", "user", "assistant"]) add(`<|${role}|>`, TOKEN_TYPE.CONTROL);
  const eot = add("<|end|>", TOKEN_TYPE.CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, TOKEN_TYPE.BYTE);
  const pieces: string[] = ["▁"];
  const letters = "etaoinshrdlucmfwypvbgkqjxzETAOINSHRDLUCMFWYPVBGKQJXZ0123456789.,!?'\"-:;()";
  for (const c of letters) pieces.push(c);
  for (const c of letters) pieces.push(`▁${c}`);
  const common =
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le ve co me de hi ri ro ic ne ea ra ce";
  for (const pair of common.split(" ")) pieces.push(pair, `▁${pair}`);
  const seen = new Set(tokens);
  let n = 0;
  for (const piece of pieces) {
    if (tokens.length >= size) break;
    if (seen.has(piece)) continue;
    seen.add(piece);
    // Longer pieces score higher so the SentencePiece merge prefers them.
    add(piece, TOKEN_TYPE.NORMAL, -1000 + [...piece].length * 10 - n++ * 0.01);
  }
  // Fill the rest with unique three-letter pieces.
  const alphabet = "abcdefghijklmnopqrstuvwxyz";
  outer: for (const a of alphabet)
    for (const b of alphabet)
      for (const c of alphabet) {
        if (tokens.length >= size) break outer;
        const piece = `▁${a}${b}${c}`;
        if (seen.has(piece)) continue;
        seen.add(piece);
        add(piece, TOKEN_TYPE.NORMAL, -2000 - n++ * 0.01);
      }
  if (tokens.length !== size) throw new Error(`vocabulary of ${size} tokens cannot be built`);
  return { tokens, scores, types, bos, eos, eot, unk };
}

/** mulberry32: a small seeded PRNG, enough for random weights. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Writer {
  readonly parts: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void {
    this.parts.push(buf);
    this.length += buf.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  pad(alignment: number): void {
    const rest = this.length % alignment;
    if (rest !== 0) this.push(Buffer.alloc(alignment - rest));
  }
}

type Meta =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "str"; value: string }
  | { type: "str[]"; value: string[] }
  | { type: "f32[]"; value: number[] }
  | { type: "i32[]"; value: number[] };

function writeMeta(w: Writer, key: string, meta: Meta): void {
  w.str(key);
  switch (meta.type) {
    case "u32":
      w.u32(T.UINT32);
      w.u32(meta.value);
      return;
    case "f32":
      w.u32(T.FLOAT32);
      w.f32(meta.value);
      return;
    case "bool":
      w.u32(T.BOOL);
      w.push(Buffer.from([meta.value ? 1 : 0]));
      return;
    case "str":
      w.u32(T.STRING);
      w.str(meta.value);
      return;
    case "str[]":
      w.u32(T.ARRAY);
      w.u32(T.STRING);
      w.u64(meta.value.length);
      for (const s of meta.value) w.str(s);
      return;
    case "f32[]":
      w.u32(T.ARRAY);
      w.u32(T.FLOAT32);
      w.u64(meta.value.length);
      for (const v of meta.value) w.f32(v);
      return;
    case "i32[]":
      w.u32(T.ARRAY);
      w.u32(T.INT32);
      w.u64(meta.value.length);
      for (const v of meta.value) w.i32(v);
      return;
  }
}

/** Builds the whole file in memory (a few hundred KiB with the defaults). */
export function buildTinyGguf(input: Omit<TinyGgufOptions, "file">): Buffer {
  const o = TinyGgufOptions.omit({ file: true }).parse(input);
  if (o.embedding % o.heads !== 0) throw new Error(`embedding (${o.embedding}) must be a multiple of heads (${o.heads})`);
  const E = o.embedding;
  const F = o.feedForward;
  const V = o.vocabulary;
  const headDim = E / o.heads;
  const vocab = tinyVocabulary(V);

  const metadata: [string, Meta][] = [
    ["general.architecture", { type: "str", value: "llama" }],
    ["general.name", { type: "str", value: TINY_GGUF_NAME }],
    ["general.alignment", { type: "u32", value: ALIGNMENT }],
    ["general.file_type", { type: "u32", value: 0 }],
    ["llama.context_length", { type: "u32", value: o.context }],
    ["llama.embedding_length", { type: "u32", value: E }],
    ["llama.block_count", { type: "u32", value: o.layers }],
    ["llama.feed_forward_length", { type: "u32", value: F }],
    ["llama.attention.head_count", { type: "u32", value: o.heads }],
    ["llama.attention.head_count_kv", { type: "u32", value: o.heads }],
    ["llama.rope.dimension_count", { type: "u32", value: headDim }],
    ["llama.rope.freq_base", { type: "f32", value: 10000 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.vocab_size", { type: "u32", value: V }],
    ["tokenizer.ggml.model", { type: "str", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "str[]", value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "f32[]", value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "i32[]", value: vocab.types }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: vocab.bos }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: vocab.eos }],
    ["tokenizer.ggml.eot_token_id", { type: "u32", value: vocab.eot }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: vocab.unk }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
    ["tokenizer.chat_template", { type: "str", value: TINY_CHAT_TEMPLATE }],
  ];

  // Tensors: [name, dims fastest-first, init] with init "one" (norms) or a random scale.
  const tensors: [string, number[], "one" | number][] = [["token_embd.weight", [E, V], 1]];
  for (let l = 0; l < o.layers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      [`${p}attn_norm.weight`, [E], "one"],
      [`${p}attn_q.weight`, [E, o.heads * headDim], 1 / Math.sqrt(E)],
      [`${p}attn_k.weight`, [E, o.heads * headDim], 1 / Math.sqrt(E)],
      [`${p}attn_v.weight`, [E, o.heads * headDim], 1 / Math.sqrt(E)],
      [`${p}attn_output.weight`, [o.heads * headDim, E], 1 / Math.sqrt(E)],
      [`${p}ffn_norm.weight`, [E], "one"],
      [`${p}ffn_gate.weight`, [E, F], 1 / Math.sqrt(E)],
      [`${p}ffn_up.weight`, [E, F], 1 / Math.sqrt(E)],
      [`${p}ffn_down.weight`, [F, E], 1 / Math.sqrt(F)],
    );
  }
  tensors.push(["output_norm.weight", [E], "one"], ["output.weight", [E, V], 1]);

  const w = new Writer();
  w.push(Buffer.from("GGUF", "ascii"));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, meta] of metadata) writeMeta(w, key, meta);
  let offset = 0;
  const sizes: number[] = [];
  for (const [name, dims] of tensors) {
    w.str(name);
    w.u32(dims.length);
    for (const d of dims) w.u64(d);
    w.u32(GGML_TYPE_F32);
    w.u64(offset);
    const bytes = dims.reduce((a, b) => a * b, 1) * 4;
    sizes.push(bytes);
    offset += Math.ceil(bytes / ALIGNMENT) * ALIGNMENT;
  }
  w.pad(ALIGNMENT);
  const random = prng(o.seed);
  tensors.forEach(([, , init], i) => {
    const bytes = sizes[i]!;
    const data = new Float32Array(bytes / 4);
    for (let j = 0; j < data.length; j++) data[j] = init === "one" ? 1 : (random() * 2 - 1) * init;
    w.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    w.pad(ALIGNMENT);
  });
  return Buffer.concat(w.parts, w.length);
}

/** Writes the model atomically (temp file + rename) and returns its size and sha256. */
export async function writeTinyGguf(options: TinyGgufOptions): Promise<TinyGgufResult> {
  const { file, ...rest } = TinyGgufOptions.parse(options);
  const data = buildTinyGguf(rest);
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  return { file, sizeBytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

const USAGE = `usage: npm run tiny-gguf -- --out FILE [--seed N] [--context N]
Writes a tiny LLaMA GGUF with random weights (gibberish output, real llama.cpp compute)
and prints {"file","sizeBytes","sha256"} as one JSON line.`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: "string" },
      seed: { type: "string" },
      context: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (!values.out) throw new Error(`--out is required\n${USAGE}`);
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
    return Number(v);
  };
  const result = await writeTinyGguf({ file: values.out, seed: int("seed", values.seed), context: int("context", values.context) });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`tiny-gguf: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
