/**
 * Throttling and under-voltage from the Pi firmware (`vcgencmd get_throttled`, run
 * by vcgencmd.ts): the bits and their parser.
 */
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
