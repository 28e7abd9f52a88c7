/**
 * SoC temperature and throttle bits at the end of an answer, through the telemetry
 * readers (thermal zone; `vcgencmd get_throttled`, asynchronous with a timeout).
 * null where the source does not exist; a machine without vcgencmd stops being asked.
 */
import { readSocTemperature } from "../telemetry/thermal.js";
import { Vcgencmd } from "../telemetry/vcgencmd.js";

export interface SocReading {
  socTempC: number | null;
  throttleRaw: number | null;
}

export interface SocReaderOptions {
  /** Where /sys is looked for ("/" on a device). */
  root?: string;
  /** The firmware readings (shared with telemetry); by default vcgencmd on PATH with a 1 s timeout, since an answer's `done` waits for it. */
  vcgencmd?: Vcgencmd;
}

export class SocReader {
  readonly #root: string | undefined;
  readonly #vcgencmd: Vcgencmd;

  constructor(options: SocReaderOptions = {}) {
    this.#root = options.root;
    this.#vcgencmd = options.vcgencmd ?? new Vcgencmd({ timeoutMs: 1_000 });
  }

  async read(): Promise<SocReading> {
    const [socTempC, throttle] = await Promise.all([readSocTemperature(this.#root).catch(() => null), this.#vcgencmd.throttle()]);
    return { socTempC, throttleRaw: throttle?.raw ?? null };
  }
}
