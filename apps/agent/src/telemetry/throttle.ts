/**
 * Throttling and under-voltage from the Pi firmware (`vcgencmd get_throttled`).
 * vcgencmd runs asynchronously with a timeout so a wedged firmware call cannot
 * stall telemetry; on a machine without it the field is null.
 */
import { execFile } from "node:child_process";
import type { ThrottleFlags } from "@orchard/contracts";

const BIT = {
  underVoltage: 0,
  armFreqCapped: 1,
  throttled: 2,
  softTempLimit: 3,
  underVoltageOccurred: 16,
  armFreqCappedOccurred: 17,
  throttledOccurred: 18,
  softTempLimitOccurred: 19,
} as const;

/** Bits the firmware defines; anything above bit 19 is not part of the contract's flags. */
const KNOWN_MASK = 0xfffff;

export function decodeThrottled(raw: number): ThrottleFlags {
  const value = raw & KNOWN_MASK;
  const bit = (n: number) => (value & (1 << n)) !== 0;
  return {
    raw: value,
    underVoltage: bit(BIT.underVoltage),
    armFreqCapped: bit(BIT.armFreqCapped),
    throttled: bit(BIT.throttled),
    softTempLimit: bit(BIT.softTempLimit),
    underVoltageOccurred: bit(BIT.underVoltageOccurred),
    armFreqCappedOccurred: bit(BIT.armFreqCappedOccurred),
    throttledOccurred: bit(BIT.throttledOccurred),
    softTempLimitOccurred: bit(BIT.softTempLimitOccurred),
  };
}

/** Parses `throttled=0x50005`; null for anything else (e.g. an error message from the firmware). */
export function parseGetThrottled(output: string): ThrottleFlags | null {
  const m = /^\s*throttled=0x([0-9a-fA-F]+)\s*$/.exec(output);
  if (!m) return null;
  return decodeThrottled(Number.parseInt(m[1]!, 16));
}

export interface ThrottleReaderOptions {
  /** The vcgencmd binary; found on PATH by default. */
  command?: string;
  timeoutMs?: number;
}

export type ThrottleReading = { flags: ThrottleFlags | null; available: boolean };

/**
 * Reads the flags once. `available: false` means the command does not exist here,
 * so callers can stop asking; a failed or timed-out call is null but still available.
 */
export function readThrottle(options: ThrottleReaderOptions = {}): Promise<ThrottleReading> {
  const command = options.command ?? "vcgencmd";
  const timeoutMs = options.timeoutMs ?? 2_000;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (reading: ThrottleReading) => {
      if (settled) return;
      settled = true;
      clearTimeout(backstop);
      resolve(reading);
    };
    // execFile's timeout kills the process, but its callback waits for stdout to close,
    // which a leftover grandchild could hold open: answer null on our own clock too.
    const backstop = setTimeout(() => settle({ flags: null, available: true }), timeoutMs + 250);
    execFile(command, ["get_throttled"], { timeout: timeoutMs, encoding: "utf8" }, (error, stdout) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        settle({ flags: null, available: !(code === "ENOENT" || code === "EACCES") });
        return;
      }
      settle({ flags: parseGetThrottled(stdout), available: true });
    });
  });
}
