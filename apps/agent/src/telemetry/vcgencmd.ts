/**
 * The Raspberry Pi firmware's `vcgencmd`: throttle bits (`get_throttled`), the ARM
 * clock (`measure_clock arm`) and, on a Pi 5, the PMIC's per-rail currents and
 * voltages (`pmic_read_adc`). Every call runs asynchronously with a timeout so a
 * wedged firmware call cannot stall telemetry or an answer. On a machine without
 * vcgencmd every reading is null and the command is not tried again; a reading the
 * firmware does not support (e.g. `pmic_read_adc` on a Pi 4) is null too.
 */
import { execFile } from "node:child_process";
import type { ThrottleFlags } from "@orchard/contracts";
import { parseGetThrottled } from "./throttle.js";

/**
 * How long one vcgencmd call may take. It answers in milliseconds on an idle Pi, but a
 * benchmark or an answer keeps every core busy, and spawning it can then take longer
 * than a second; a wedged call still gives up after this (the reading is null).
 */
export const VCGENCMD_TIMEOUT_MS = 3_000;

export interface VcgencmdOptions {
  /** The vcgencmd binary; found on PATH by default. */
  command?: string;
  /** Default VCGENCMD_TIMEOUT_MS. */
  timeoutMs?: number;
}

export interface VcgencmdOutput {
  /** What the command printed; null when it failed, timed out or does not exist. */
  stdout: string | null;
  /** false: the command does not exist here (or cannot be run), so callers can stop asking. */
  available: boolean;
}

/** Runs `vcgencmd ...args` once. */
export function runVcgencmd(args: readonly string[], options: VcgencmdOptions = {}): Promise<VcgencmdOutput> {
  const command = options.command ?? "vcgencmd";
  const timeoutMs = options.timeoutMs ?? VCGENCMD_TIMEOUT_MS;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (output: VcgencmdOutput) => {
      if (settled) return;
      settled = true;
      clearTimeout(backstop);
      resolve(output);
    };
    // execFile's timeout kills the process, but its callback waits for stdout to close,
    // which a leftover grandchild could hold open: answer null on our own clock too.
    const backstop = setTimeout(() => settle({ stdout: null, available: true }), timeoutMs + 250);
    execFile(command, [...args], { timeout: timeoutMs, encoding: "utf8" }, (error, stdout) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        settle({ stdout: null, available: !(code === "ENOENT" || code === "EACCES") });
        return;
      }
      settle({ stdout, available: true });
    });
  });
}

/** Parses `frequency(0)=2400000000` (the number in parentheses is the firmware's clock id); null for anything else. */
export function parseMeasureClock(output: string): number | null {
  const m = /^\s*frequency\(\d+\)=(\d+)\s*$/.exec(output);
  if (!m) return null;
  const hz = Number(m[1]);
  return Number.isSafeInteger(hz) ? hz : null;
}

/**
 * Board power from `vcgencmd pmic_read_adc` (Pi 5): the sum of current × voltage over
 * every rail the PMIC reports both for (`VDD_CORE_A current(7)=0.75984000A` and
 * `VDD_CORE_V volt(15)=0.72038000V`). Rails with only a voltage (EXT5V_V, BATT_V) do not
 * count. This is what the PMIC supplies, not what the wall socket delivers: conversion
 * losses and USB peripherals come on top (community calibrations put the wall figure at
 * about 1.15 × this + 0.6 W). null when no rail pair is found (not a Pi 5, or an error).
 */
export function parsePmicReadAdc(output: string): number | null {
  const amps = new Map<string, number>();
  const volts = new Map<string, number>();
  for (const line of output.split("\n")) {
    const m = /^\s*(\S+)_([AV])\s+(current|volt)\(\d+\)=([0-9.]+)([AV])\s*$/.exec(line);
    if (!m || m[2] !== m[5]) continue;
    const value = Number(m[4]);
    if (!Number.isFinite(value)) continue;
    (m[2] === "A" ? amps : volts).set(m[1]!, value);
  }
  let watts = 0;
  let pairs = 0;
  for (const [rail, a] of amps) {
    const v = volts.get(rail);
    if (v === undefined) continue;
    watts += a * v;
    pairs++;
  }
  return pairs > 0 ? Math.round(watts * 1000) / 1000 : null;
}

/**
 * The readings Orchard takes through vcgencmd, for one machine. Remembers when the
 * command does not exist so it is not spawned again, and when a sub-command is not
 * supported (no output it can parse twice in a row) so a Pi 4 stops being asked for PMIC data.
 */
export class Vcgencmd {
  readonly #opts: VcgencmdOptions;
  #available = true;
  readonly #unsupported = new Map<string, number>();
  /** Called once when the command turns out not to exist. */
  onUnavailable: (() => void) | null = null;

  constructor(options: VcgencmdOptions = {}) {
    this.#opts = options;
  }

  get available(): boolean {
    return this.#available;
  }

  async #read<T>(args: readonly string[], parse: (stdout: string) => T | null): Promise<T | null> {
    const key = args.join(" ");
    if (!this.#available || (this.#unsupported.get(key) ?? 0) >= 2) return null;
    const out = await runVcgencmd(args, this.#opts);
    if (!out.available) {
      if (this.#available) {
        this.#available = false;
        this.onUnavailable?.();
      }
      return null;
    }
    const value = out.stdout === null ? null : parse(out.stdout);
    // A reply that does not parse (e.g. "error=2 error_msg=Command not registered") counts towards "unsupported";
    // a timeout (stdout null) does not.
    if (out.stdout !== null) this.#unsupported.set(key, value === null ? (this.#unsupported.get(key) ?? 0) + 1 : 0);
    return value;
  }

  throttle(): Promise<ThrottleFlags | null> {
    return this.#read(["get_throttled"], parseGetThrottled);
  }

  armClockHz(): Promise<number | null> {
    return this.#read(["measure_clock", "arm"], parseMeasureClock);
  }

  boardPowerW(): Promise<number | null> {
    return this.#read(["pmic_read_adc"], parsePmicReadAdc);
  }
}
