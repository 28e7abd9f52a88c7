/**
 * Takes one telemetry sample from the real system: each reader below reads one
 * source under an injectable root, so tests run them against fixture copies of
 * /proc and /sys. A source that does not exist gives null, never a made-up value.
 */
import { TelemetrySample } from "@orchard/contracts";
import { type Clock, systemClock } from "../lib/clock.js";
import type { Logger } from "../lib/logger.js";
import { type CpuTimes, cpuPercent, readCpuTimes } from "./cpu.js";
import { readDiskSpace } from "./disk.js";
import { readLoadAverage } from "./load.js";
import { readMemory } from "./memory.js";
import { readSocTemperature } from "./thermal.js";
import type { TokenRates } from "./token-rate.js";
import { type Vcgencmd } from "./vcgencmd.js";

export interface TelemetrySamplerOptions {
  /** Where /proc and /sys are looked for ("/" on a device). */
  root?: string;
  /** Disk space is reported for the filesystem holding this directory. */
  dataDir: string;
  /** Firmware readings (throttle bits, ARM clock, PMIC power); shared with the chat and bench readers. */
  vcgencmd: Vcgencmd;
  /** The runner's resident memory, from the runner supervisor. */
  runnerRssBytes: () => number | null;
  /** Token rates and counts, fed from the runner's generations. */
  rates: TokenRates;
  /** Generations the device holds now (running + queued). */
  activeGenerations: () => number;
  clock?: Clock;
  logger: Logger;
}

export class TelemetrySampler {
  readonly #opts: TelemetrySamplerOptions;
  readonly #clock: Clock;
  #lastCpu: CpuTimes | null = null;
  #warned = new Set<string>();

  constructor(options: TelemetrySamplerOptions) {
    this.#opts = options;
    this.#clock = options.clock ?? systemClock;
    options.vcgencmd.onUnavailable ??= () =>
      options.logger.info("vcgencmd not found: throttle flags, CPU clock and board power are reported as null on this machine");
  }

  /** Takes the first CPU reading, so the first sample already has a CPU figure. */
  async prime(): Promise<void> {
    this.#lastCpu = await readCpuTimes(this.#opts.root);
  }

  #warnOnce(key: string, message: string, fields?: Record<string, unknown>): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#opts.logger.warn(message, fields);
  }

  /** One sample, or null when the basics (/proc/meminfo, /proc/loadavg) cannot be read. */
  async sample(): Promise<TelemetrySample | null> {
    const root = this.#opts.root;
    const vc = this.#opts.vcgencmd;
    const [cpu, load, memory, disk, socTempC, throttle, cpuFreqHz, boardPowerW] = await Promise.all([
      readCpuTimes(root),
      readLoadAverage(root),
      readMemory(root),
      readDiskSpace(this.#opts.dataDir),
      readSocTemperature(root),
      vc.throttle(),
      vc.armClockHz(),
      vc.boardPowerW(),
    ]);
    const percent = cpu && this.#lastCpu ? cpuPercent(this.#lastCpu, cpu) : null;
    if (cpu) this.#lastCpu = cpu;

    if (!load || !memory) {
      this.#warnOnce("basics", "cannot read /proc/loadavg or /proc/meminfo: no telemetry is published from this machine", {
        root: root ?? "/",
      });
      return null;
    }

    const candidate = {
      ts: this.#clock.now(),
      cpuPercent: percent,
      ...load,
      ...memory,
      diskTotalBytes: disk?.diskTotalBytes ?? null,
      diskFreeBytes: disk?.diskFreeBytes ?? null,
      socTempC,
      throttle,
      runnerRssBytes: this.#opts.runnerRssBytes(),
      tokensPerSecond: this.#opts.rates.decodeTokensPerSecond(),
      prefillTokensPerSecond: this.#opts.rates.prefillTokensPerSecond(),
      generatedTokens: this.#opts.rates.takeGeneratedTokens(),
      activeGenerations: this.#opts.activeGenerations(),
      cpuFreqHz,
      boardPowerW,
    };
    const parsed = TelemetrySample.safeParse(candidate);
    if (!parsed.success) {
      this.#opts.logger.warn("telemetry sample rejected by the contract; skipped", {
        issue: `${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`,
      });
      return null;
    }
    return parsed.data;
  }
}
