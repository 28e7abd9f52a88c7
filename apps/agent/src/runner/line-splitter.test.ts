import { describe, expect, it } from "vitest";
import { LineSplitter } from "./line-splitter.js";
import { parseVmRss, readProcessRss } from "./proc-rss.js";
import { fileURLToPath } from "node:url";

function split(chunks: (string | Buffer)[], max = 1024) {
  const lines: string[] = [];
  const overlong: number[] = [];
  const s = new LineSplitter(
    max,
    (l) => lines.push(l),
    (n) => overlong.push(n),
  );
  for (const c of chunks) s.push(typeof c === "string" ? Buffer.from(c) : c);
  s.end();
  return { lines, overlong };
}

describe("LineSplitter", () => {
  it("splits lines across chunk boundaries and strips CR", () => {
    expect(split(['{"a":', '1}\n{"b"', ":2}\r\n", "tail"]).lines).toEqual(['{"a":1}', '{"b":2}', "tail"]);
  });

  it("never cuts a multi-byte character split between chunks", () => {
    const bytes = Buffer.from("héllo wörld ✓\n");
    const chunks = Array.from(bytes, (b) => Buffer.from([b]));
    expect(split(chunks).lines).toEqual(["héllo wörld ✓"]);
  });

  it("discards an over-long line up to its newline, reports it once, and goes on", () => {
    const { lines, overlong } = split(["x".repeat(30), "x".repeat(30), "\nok\n"], 50);
    expect(lines).toEqual(["ok"]);
    expect(overlong).toHaveLength(1);
  });
});

describe("runner RSS fallback (/proc/<pid>/status)", () => {
  it("reads VmRSS in bytes", async () => {
    const root = fileURLToPath(new URL("../../test/fixtures/pi5", import.meta.url));
    expect(await readProcessRss(4242, root)).toBe(5_012_345 * 1024);
    expect(await readProcessRss(999_999, root)).toBeNull();
    expect(parseVmRss("Name: x\n")).toBeNull();
  });

  it("reads this process's own RSS from the real /proc", async () => {
    expect(await readProcessRss(process.pid)).toBeGreaterThan(1024 * 1024);
  });
});
