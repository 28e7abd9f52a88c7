import { describe, expect, it } from "vitest";
import { parseByteSize } from "./byte-size.js";

const MiB = 1024 ** 2;

describe("parseByteSize", () => {
  it("reads bytes, binary and decimal units, any case", () => {
    expect(parseByteSize("67108864")).toBe(64 * MiB);
    expect(parseByteSize("64MiB")).toBe(64 * MiB);
    expect(parseByteSize("256 mib")).toBe(256 * MiB);
    expect(parseByteSize("1.5GiB")).toBe(1.5 * 1024 * MiB);
    expect(parseByteSize("1.5G")).toBe(1.5 * 1024 * MiB);
    expect(parseByteSize("100MB")).toBe(100_000_000);
    expect(parseByteSize("4k")).toBe(4096);
    expect(parseByteSize("2TiB")).toBe(2 * 1024 ** 4);
  });

  it("refuses what is not a whole number of bytes", () => {
    for (const bad of ["", "MiB", "-1", "64 furlongs", "1.5", "0x10", "1e3"]) expect(parseByteSize(bad), bad).toBeNull();
  });
});
