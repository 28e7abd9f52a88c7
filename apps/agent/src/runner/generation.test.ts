import type { RunnerDone } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { Generation, RunnerRequestError } from "./generation.js";

const done = (id: string): RunnerDone => ({
  type: "done",
  id,
  finish_reason: "stop",
  prompt_tokens: 3,
  reused_tokens: 0,
  generated_tokens: 2,
  ttft_ms: 1,
  prefill_ms: 1,
  decode_ms: 1,
  prefill_tok_s: 1,
  decode_tok_s: 1,
  peak_rss_bytes: 1,
  token_ids: [1, 2],
});

describe("Generation", () => {
  it("yields tokens in order, including ones delivered before iteration started, then resolves result", async () => {
    const { generation, sink } = Generation.create("g1", () => undefined);
    sink.token({ type: "token", id: "g1", text: "Hel", token_id: 1 });
    const texts: string[] = [];
    const loop = (async () => {
      for await (const t of generation) texts.push(t.text);
    })();
    await Promise.resolve();
    sink.token({ type: "token", id: "g1", text: "lo", token_id: 2 });
    sink.done(done("g1"));
    await loop;
    expect(texts).toEqual(["Hel", "lo"]);
    expect((await generation.result).token_ids).toEqual([1, 2]);
    expect(sink.settled()).toBe(true);
  });

  it("throws the runner's error from the loop and rejects result", async () => {
    const { generation, sink } = Generation.create("g2", () => undefined);
    sink.fail(new RunnerRequestError("busy", "a generation is already running"));
    await expect(generation.result).rejects.toMatchObject({ code: "busy" });
    await expect(
      (async () => {
        for await (const _ of generation) void _;
      })(),
    ).rejects.toBeInstanceOf(RunnerRequestError);
  });

  it("breaking out of the loop cancels the request once", async () => {
    let cancels = 0;
    const { generation, sink } = Generation.create("g3", () => (cancels += 1));
    sink.token({ type: "token", id: "g3", text: "a", token_id: 1 });
    sink.token({ type: "token", id: "g3", text: "b", token_id: 2 });
    for await (const _ of generation) break;
    generation.cancel();
    expect(cancels).toBe(1);
  });
});
