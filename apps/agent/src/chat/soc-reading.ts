/**
 * SoC temperature and throttle bits at the end of an answer, through the telemetry
 * readers (thermal zone; `vcgencmd get_throttled`, asynchronous with a timeout).
 * null where the source does not exist; a machine without vcgencmd stops being asked.
 */
import { readSocTemperature } from "../telemetry/thermal.js";
import { readThrottle } from "../telemetry/throttle.js";

export interface SocReading {
  socTempC: number | null;
  throttleRaw: number | null;
}

export interface SocReaderOptions {
  /** Where /sys is looked for ("/" on a device). */
  root?: string;
  /** The vcgencmd binary (PATH lookup by default). */
  vcgencmd?: string;
  /** An answer's `done` waits for this at most. */
  vcgencmdTimeoutMs?: number;
}

export class SocReader {
  readonly #opts: SocReaderOptions;
  #vcgencmdAvailable = true;

  constructor(options: SocReaderOptions = {}) {
    this.#opts = options;
  }

  async read(): Promise<SocReading> {
    const [socTempC, throttleRaw] = await Promise.all([readSocTemperature(this.#opts.root).catch(() => null), this.#throttle()]);
    return { socTempC, throttleRaw };
  }

  async #throttle(): Promise<number | null> {
    if (!this.#vcgencmdAvailable) return null;
    const reading = await readThrottle({ command: this.#opts.vcgencmd, timeoutMs: this.#opts.vcgencmdTimeoutMs ?? 1_000 });
    if (!reading.available) this.#vcgencmdAvailable = false;
    return reading.flags?.raw ?? null;
  }
}
