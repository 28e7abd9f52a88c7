import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TelemetrySample } from "@orchard/contracts";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../lib/clock.js";
import { silentLogger } from "../lib/logger.js";
import { cpuPercent, parseProcStat, readCpuTimes } from "./cpu.js";
import { readDiskSpace } from "./disk.js";
import { parseLoadAvg, readLoadAverage } from "./load.js";
import { parseMeminfo, readMemory } from "./memory.js";
import { TelemetrySampler } from "./sampler.js";
import { parseMillidegrees, readSocTemperature } from "./thermal.js";
import { decodeThrottled, parseGetThrottled } from "./throttle.js";
import { TokenRates } from "./token-rate.js";
import { parseMeasureClock, parsePmicReadAdc, runVcgencmd, Vcgencmd } from "./vcgencmd.js";

const fixture = (name: string) => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const PI5 = fixture("pi5");
const VM = fixture("x86-vm");

describe("CPU (/proc/stat)", () => {
  it("reads busy and total jiffies from the aggregate cpu line", async () => {
    expect(await readCpuTimes(PI5)).toEqual({ busy: 170_490, total: 10_048_267 });
  });

  it("computes the busy share between two readings", async () => {
    const before = (await readCpuTimes(PI5))!;
    const after = (await readCpuTimes(fixture("pi5-later")))!;
    expect(cpuPercent(before, after)).toBe(20);
  });

  it("gives null when no time passed or counters went backwards (never a made-up 0 %)", () => {
    const t = { busy: 10, total: 100 };
    expect(cpuPercent(t, t)).toBeNull();
    expect(cpuPercent({ busy: 20, total: 200 }, t)).toBeNull();
  });

  it("leaves guest time out of the total (it is already in user)", () => {
    expect(parseProcStat("cpu  100 0 0 900 0 0 0 0 50 0\n")).toEqual({ busy: 100, total: 1000 });
  });

  it("is null for a missing file or a malformed line", async () => {
    expect(await readCpuTimes("/nonexistent-root")).toBeNull();
    expect(parseProcStat("cpu0 1 2 3 4\n")).toBeNull();
    expect(parseProcStat("cpu  a b c d\n")).toBeNull();
  });
});

describe("load (/proc/loadavg)", () => {
  it("reads the three averages", async () => {
    expect(await readLoadAverage(PI5)).toEqual({ load1: 0.52, load5: 0.58, load15: 0.59 });
    expect(parseLoadAvg("garbage")).toBeNull();
  });
});

describe("memory (/proc/meminfo)", () => {
  it("reads MemTotal, MemAvailable and swap in bytes", async () => {
    expect(await readMemory(PI5)).toEqual({
      memTotalBytes: 8_245_364 * 1024,
      memAvailableBytes: 7_345_678 * 1024,
      swapTotalBytes: 204_796 * 1024,
      swapUsedBytes: (204_796 - 153_600) * 1024,
    });
  });

  it("reports a machine without swap as 0 swap", async () => {
    expect(await readMemory(VM)).toMatchObject({ swapTotalBytes: 0, swapUsedBytes: 0 });
  });

  it("is null when a required line is missing", () => {
    expect(parseMeminfo("MemTotal: 100 kB\nMemFree: 50 kB\n")).toBeNull();
  });
});

describe("disk (statfs of the data dir)", () => {
  it("reports total and free space of the filesystem", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-agent-disk-"));
    try {
      const disk = await readDiskSpace(dir);
      expect(disk).not.toBeNull();
      expect(disk!.diskTotalBytes).toBeGreaterThan(0);
      expect(disk!.diskFreeBytes).toBeGreaterThanOrEqual(0);
      expect(disk!.diskFreeBytes).toBeLessThanOrEqual(disk!.diskTotalBytes);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("is null when statfs fails", async () => {
    expect(await readDiskSpace("/nonexistent/data/dir")).toBeNull();
  });
});

describe("SoC temperature (/sys/class/thermal)", () => {
  it("reads the Pi 5 cpu-thermal zone in °C", async () => {
    expect(await readSocTemperature(PI5)).toBe(51.9);
  });

  it("prefers the cpu-thermal zone, in numeric zone order", async () => {
    expect(await readSocTemperature(fixture("multi-zone"))).toBe(63.1);
  });

  it("falls back to the first zone when none is cpu-thermal", async () => {
    expect(await readSocTemperature(fixture("no-cpu-thermal"))).toBe(27.8);
  });

  it("is null without any thermal zone (VM), and for an impossible reading", async () => {
    expect(await readSocTemperature(VM)).toBeNull();
    expect(await readSocTemperature(fixture("broken-sensor"))).toBeNull();
  });

  it("parses millidegrees", () => {
    expect(parseMillidegrees("51850\n")).toBe(51.9);
    expect(parseMillidegrees("-5000")).toBe(-5);
    expect(parseMillidegrees("hot")).toBeNull();
    expect(parseMillidegrees("200000")).toBeNull();
  });
});

describe("throttling (vcgencmd get_throttled)", () => {
  it("decodes the current bits 0-3 and the occurred bits 16-19", () => {
    expect(decodeThrottled(0x50005)).toEqual({
      raw: 0x50005,
      underVoltage: true,
      armFreqCapped: false,
      throttled: true,
      softTempLimit: false,
      underVoltageOccurred: true,
      armFreqCappedOccurred: false,
      throttledOccurred: true,
      softTempLimitOccurred: false,
    });
    expect(Object.values(decodeThrottled(0)).filter((v) => v === true)).toEqual([]);
    const all = decodeThrottled(0xf000f);
    expect(Object.entries(all).filter(([, v]) => v === false)).toEqual([]);
    expect(decodeThrottled(0x8)).toMatchObject({ softTempLimit: true, underVoltage: false });
    expect(decodeThrottled(0x20000)).toMatchObject({ armFreqCappedOccurred: true, armFreqCapped: false });
  });

  it("parses the command output and rejects anything else", () => {
    expect(parseGetThrottled("throttled=0x50005\n")?.raw).toBe(0x50005);
    expect(parseGetThrottled("throttled=0x0\n")?.raw).toBe(0);
    expect(parseGetThrottled('error=1 error_msg="Command not registered"')).toBeNull();
    expect(parseGetThrottled("")).toBeNull();
  });

  it("runs vcgencmd asynchronously", async () => {
    const flags = await new Vcgencmd({ command: path.join(PI5, "bin/vcgencmd") }).throttle();
    expect(flags).toMatchObject({ raw: 0x50005, underVoltage: true, throttledOccurred: true });
  });

  it("reports a machine without vcgencmd as unavailable with null readings, and stops asking", async () => {
    expect(await runVcgencmd(["get_throttled"], { command: "/nonexistent/vcgencmd" })).toEqual({ stdout: null, available: false });
    const vc = new Vcgencmd({ command: "/nonexistent/vcgencmd" });
    let told = 0;
    vc.onUnavailable = () => (told += 1);
    expect(await vc.throttle()).toBeNull();
    expect(await vc.armClockHz()).toBeNull();
    expect(await vc.boardPowerW()).toBeNull();
    expect(vc.available).toBe(false);
    expect(told).toBe(1);
  });

  it("gives up on a hanging vcgencmd after the timeout, without blocking the event loop", async () => {
    let ticks = 0;
    const interval = setInterval(() => (ticks += 1), 20);
    const started = Date.now();
    const output = await runVcgencmd(["get_throttled"], { command: path.join(PI5, "bin/vcgencmd-hangs"), timeoutMs: 300 });
    clearInterval(interval);
    expect(output).toEqual({ stdout: null, available: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(ticks).toBeGreaterThan(3);
  });
});

describe("CPU clock and board power (vcgencmd measure_clock arm, pmic_read_adc)", () => {
  it("parses the ARM clock and rejects anything else", () => {
    expect(parseMeasureClock("frequency(0)=2400000000\n")).toBe(2_400_000_000);
    expect(parseMeasureClock("frequency(48)=1500345728")).toBe(1_500_345_728);
    expect(parseMeasureClock('error=2 error_msg="Invalid arguments"')).toBeNull();
  });

  it("sums current × voltage over the PMIC rails that report both", () => {
    const out = [
      "     VDD_CORE_A current(7)=2.00000000A",
      "     3V3_SYS_A current(1)=0.10000000A",
      "     VDD_CORE_V volt(15)=0.80000000V",
      "     3V3_SYS_V volt(9)=3.30000000V",
      "     EXT5V_V volt(24)=5.13762000V", // input voltage only: no pair, not counted
      "     HDMI_A current(22)=0.00000000A", // current only: not counted
    ].join("\n");
    expect(parsePmicReadAdc(out)).toBe(1.93); // 2 × 0.8 + 0.1 × 3.3
    expect(parsePmicReadAdc('error=1 error_msg="Command not registered"')).toBeNull();
    expect(parsePmicReadAdc("")).toBeNull();
  });

  it("reads both from the Pi 5 fixture's vcgencmd", async () => {
    const vc = new Vcgencmd({ command: path.join(PI5, "bin/vcgencmd") });
    expect(await vc.armClockHz()).toBe(2_400_000_000);
    expect(await vc.boardPowerW()).toBe(3.032);
  });

  it("stops asking for a reading the firmware does not support (a Pi 4 has no PMIC ADC)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "vcgencmd-"));
    try {
      const log = path.join(dir, "calls");
      const bin = path.join(dir, "vcgencmd");
      await writeFile(
        bin,
        `#!/bin/sh\necho "$*" >> ${log}\n[ "$1" = get_throttled ] && { echo throttled=0x0; exit 0; }\necho 'error=1 error_msg="Command not registered"'\n`,
        { mode: 0o755 },
      );
      const vc = new Vcgencmd({ command: bin });
      for (let i = 0; i < 4; i++) {
        expect(await vc.boardPowerW()).toBeNull();
        expect((await vc.throttle())?.raw).toBe(0);
      }
      const calls = (await readFile(log, "utf8")).trim().split("\n");
      expect(calls.filter((c) => c === "pmic_read_adc")).toHaveLength(2);
      expect(calls.filter((c) => c === "get_throttled")).toHaveLength(4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("TokenRates (fed from the runner's token and done lines)", () => {
  it("is null until something finished, then tokens per second of decode and prefill time over the window", () => {
    const clock = new ManualClock();
    const rates = new TokenRates(60_000, clock);
    expect(rates.decodeTokensPerSecond()).toBeNull();
    expect(rates.prefillTokensPerSecond()).toBeNull();
    rates.recordDone({ prompt_tokens: 100, reused_tokens: 20, prefill_ms: 4_000, generated_tokens: 40, decode_ms: 50_000 });
    rates.recordDone({ prompt_tokens: 10, reused_tokens: 0, prefill_ms: 1_000, generated_tokens: 10, decode_ms: 10_000 });
    expect(rates.decodeTokensPerSecond()).toBe(0.83);
    expect(rates.prefillTokensPerSecond()).toBe(18); // (80 + 10) fed in 5 s
    clock.advance(60_001);
    expect(rates.decodeTokensPerSecond()).toBeNull();
    expect(rates.prefillTokensPerSecond()).toBeNull();
  });

  it("counts streamed tokens between samples", () => {
    const rates = new TokenRates();
    expect(rates.takeGeneratedTokens()).toBe(0);
    for (let i = 0; i < 7; i++) rates.countToken();
    expect(rates.takeGeneratedTokens()).toBe(7);
    expect(rates.takeGeneratedTokens()).toBe(0);
  });
});

describe("TelemetrySampler", () => {
  it("samples a Pi 5 from its /proc, /sys and vcgencmd", async () => {
    const clock = new ManualClock(1_732_780_800_000);
    const rates = new TokenRates(60_000, clock);
    rates.recordDone({ prompt_tokens: 14, reused_tokens: 0, prefill_ms: 2_000, generated_tokens: 9, decode_ms: 10_000 });
    for (let i = 0; i < 9; i++) rates.countToken();
    const sampler = new TelemetrySampler({
      root: PI5,
      dataDir: os.tmpdir(),
      vcgencmd: new Vcgencmd({ command: path.join(PI5, "bin/vcgencmd") }),
      runnerRssBytes: () => 123_456_789,
      rates,
      activeGenerations: () => 1,
      clock,
      logger: silentLogger,
    });
    const sample = (await sampler.sample())!;
    expect(TelemetrySample.parse(sample)).toEqual(sample);
    expect(sample).toMatchObject({
      ts: 1_732_780_800_000,
      cpuPercent: null, // the first reading has nothing to compare with
      load1: 0.52,
      memTotalBytes: 8_245_364 * 1024,
      socTempC: 51.9,
      throttle: { raw: 0x50005 },
      runnerRssBytes: 123_456_789,
      tokensPerSecond: 0.9,
      prefillTokensPerSecond: 7,
      generatedTokens: 9,
      activeGenerations: 1,
      cpuFreqHz: 2_400_000_000,
      boardPowerW: 3.032,
    });
    expect(sample.diskFreeBytes).toBeGreaterThan(0);
  });

  it("reports null — not invented numbers — on a machine without thermal zone, vcgencmd or data dir", async () => {
    const clock = new ManualClock();
    const sampler = new TelemetrySampler({
      root: VM,
      dataDir: "/nonexistent/data/dir",
      vcgencmd: new Vcgencmd({ command: "/nonexistent/vcgencmd" }),
      runnerRssBytes: () => null,
      rates: new TokenRates(60_000, clock),
      activeGenerations: () => 0,
      clock,
      logger: silentLogger,
    });
    await sampler.prime();
    const sample = (await sampler.sample())!;
    expect(TelemetrySample.parse(sample)).toEqual(sample);
    expect(sample).toMatchObject({
      cpuPercent: null, // same /proc/stat twice: no time passed
      socTempC: null,
      throttle: null,
      diskTotalBytes: null,
      diskFreeBytes: null,
      runnerRssBytes: null,
      tokensPerSecond: null,
      prefillTokensPerSecond: null,
      generatedTokens: 0,
      cpuFreqHz: null,
      boardPowerW: null,
      swapTotalBytes: 0,
      load1: 1.05,
    });
  });

  it("skips the sample when /proc itself cannot be read", async () => {
    const clock = new ManualClock();
    const sampler = new TelemetrySampler({
      root: "/nonexistent-root",
      dataDir: os.tmpdir(),
      vcgencmd: new Vcgencmd({ command: "/nonexistent/vcgencmd" }),
      runnerRssBytes: () => null,
      rates: new TokenRates(60_000, clock),
      activeGenerations: () => 0,
      clock,
      logger: silentLogger,
    });
    expect(await sampler.sample()).toBeNull();
  });

  it("reads this machine's real /proc into a valid sample", async () => {
    const sampler = new TelemetrySampler({
      dataDir: os.tmpdir(),
      vcgencmd: new Vcgencmd(),
      runnerRssBytes: () => null,
      rates: new TokenRates(),
      activeGenerations: () => 0,
      logger: silentLogger,
    });
    await sampler.prime();
    await new Promise((r) => setTimeout(r, 50));
    const sample = await sampler.sample();
    expect(sample).not.toBeNull();
    expect(TelemetrySample.safeParse(sample).success).toBe(true);
  });
});
