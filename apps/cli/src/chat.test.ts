/**
 * `orchard chat` writes what a real server streams: here a local HTTP server speaking the
 * OpenAI stream (server-sent events) the way Orchard's does, with the awkward cases of a
 * byte-level model (the tiny random-weights GGUF prints control bytes; a character can
 * arrive in two pieces).
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { chat } from "./chat.ts";

let server: Server | null = null;

afterEach(async () => {
  server?.close();
  server = null;
});

/** Serves one streamed answer: `pieces` as delta contents, each event's bytes written in `split` parts. */
async function serve(pieces: string[], split: (bytes: Buffer) => Buffer[] = (b) => [b]): Promise<string> {
  server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
    void (async () => {
      const events = [
        ...pieces.map((content) => ({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })),
        { choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 3, completion_tokens: pieces.length } },
      ];
      for (const event of events) {
        // JSON.stringify writes a lone surrogate as \ud83c: a piece may end in half an emoji.
        for (const part of split(Buffer.from(`data: ${JSON.stringify(event)}\n\n`, "utf8"))) {
          res.write(part);
          await new Promise((r) => setImmediate(r));
        }
      }
      res.end("data: [DONE]\n\n");
    })();
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function run(url: string): Promise<{ written: string[]; text: string }> {
  const written: string[] = [];
  const text = await chat({
    url,
    apiKey: "k",
    deviceId: "d",
    prompt: "hi",
    maxTokens: 16,
    temperature: 0,
    json: false,
    out: (t) => written.push(t),
    err: () => undefined,
  });
  return { written, text };
}

/** What a terminal receives: text that survives UTF-8 encoding unchanged (no lone surrogate). */
const wellFormed = (s: string) => Buffer.from(s, "utf8").toString("utf8") === s;

describe("orchard chat output", () => {
  it("a character split across pieces and network chunks is written whole", async () => {
    const apple = "🍎";
    // "é" split inside its UTF-8 bytes by the network; the emoji split between two events.
    const url = await serve(["caf", "é ", apple[0]!, `${apple[1]!} ok`], (b) => {
      const at = b.indexOf(0xc3);
      return at > 0 ? [b.subarray(0, at + 1), b.subarray(at + 1)] : [b];
    });
    const { written, text } = await run(url);
    expect(
      written.filter((w) => !wellFormed(w)),
      "every write is whole characters",
    ).toEqual([]);
    expect(written.join("")).toBe("café 🍎 ok\n");
    expect(text).toBe("café 🍎 ok");
  });

  it("control bytes a model emits reach the terminal as U+FFFD, not as escape sequences", async () => {
    const url = await serve(["a\u0001b", "\u001b[2J", "tab\tok\r\n", "end\r", "x"]);
    const { written } = await run(url);
    const out = written.join("");
    // eslint-disable-next-line no-control-regex -- no control character may reach the terminal
    expect(out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(out).toBe("a\uFFFDb\uFFFD[2Jtab\tok\nend\uFFFDx\n");
  });
});
