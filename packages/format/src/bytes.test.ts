import { describe, expect, it } from "vitest";
import { bytesIn, formatByteRate, formatBytes } from "./bytes.ts";

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe("formatBytes", () => {
  it("writes binary units: one decimal below 100, none from 100, whole bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(64 * KiB)).toBe("64.0 KiB");
    expect(formatBytes(128 * MiB)).toBe("128 MiB");
    expect(formatBytes(3.7 * GiB)).toBe("3.7 GiB");
    expect(formatBytes(23.5 * GiB)).toBe("23.5 GiB");
    expect(formatBytes(24 * GiB)).toBe("24.0 GiB");
    expect(formatBytes(512 * GiB)).toBe("512 GiB");
    expect(formatBytes(2 * 1024 * GiB)).toBe("2.0 TiB");
  });

  it("the dashboard's 4.6 GB / 23.5 GB and the CLI's 3.7 GiB/24 GiB figures now read alike", () => {
    // 4.6 GiB used of a 23.5 GiB machine, as both now print it.
    expect(`${formatBytes(4.6 * GiB)} / ${formatBytes(23.5 * GiB)}`).toBe("4.6 GiB / 23.5 GiB");
  });

  it("carries to the next unit when rounding reaches 1024", () => {
    expect(formatBytes(1023.6)).toBe("1.0 KiB");
    expect(formatBytes(1024 * MiB - 1)).toBe("1.0 GiB");
    expect(formatBytes(1023 * MiB)).toBe("1023 MiB");
  });

  it("takes digits, a trimmed .0 for axes, and a word for what was not measured", () => {
    expect(formatBytes(1.25 * GiB, { digits: 2 })).toBe("1.25 GiB");
    expect(formatBytes(2 * GiB, { trimZero: true })).toBe("2 GiB");
    expect(formatBytes(1.5 * GiB, { trimZero: true })).toBe("1.5 GiB");
    expect(formatBytes(null)).toBe("—");
    expect(formatBytes(undefined, { missing: "unknown" })).toBe("unknown");
    expect(formatBytes(-1)).toBe("?");
    expect(formatBytes(Number.NaN)).toBe("?");
  });

  it("rates and fixed-unit numbers use the same units", () => {
    expect(formatByteRate(8 * MiB)).toBe("8.0 MiB/s");
    expect(formatByteRate(null)).toBe("—");
    expect(bytesIn(3 * MiB, "MiB")).toBe(3);
    expect(bytesIn(GiB, "KiB")).toBe(1024 * 1024);
  });
});
