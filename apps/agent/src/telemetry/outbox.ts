/**
 * Telemetry on its way to the broker. Every sample goes through one bounded ring
 * buffer, so samples taken while disconnected are published in order after the
 * reconnect, in batches, and a long outage costs the oldest samples (counted),
 * never memory without bound.
 */
import { TELEMETRY_MAX_SAMPLES_PER_MESSAGE, type TelemetryMessage, type TelemetrySample } from "@orchard/contracts";
import { RingBuffer } from "../lib/ring-buffer.js";
import type { Logger } from "../lib/logger.js";

/** One hour of samples at the default 5 s interval. */
export const TELEMETRY_BUFFER_SAMPLES = 720;

export interface TelemetryOutboxOptions {
  /** Publishes one message; rejects when it could not be handed to the broker connection. */
  publish: (message: TelemetryMessage) => Promise<void>;
  isConnected: () => boolean;
  logger: Logger;
  capacity?: number;
  batchSize?: number;
}

export class TelemetryOutbox {
  // Each sample carries a sequence number so a batch in flight is removed exactly,
  // even when the full buffer dropped some of its samples while it was being sent.
  readonly #buffer: RingBuffer<{ seq: number; sample: TelemetrySample }>;
  #seq = 0;
  readonly #opts: TelemetryOutboxOptions;
  readonly #batchSize: number;
  #flushing: Promise<void> | null = null;
  #lastPublishedAt: number | null = null;

  constructor(options: TelemetryOutboxOptions) {
    this.#opts = options;
    this.#buffer = new RingBuffer(options.capacity ?? TELEMETRY_BUFFER_SAMPLES);
    this.#batchSize = Math.min(options.batchSize ?? TELEMETRY_MAX_SAMPLES_PER_MESSAGE, TELEMETRY_MAX_SAMPLES_PER_MESSAGE);
  }

  add(sample: TelemetrySample): void {
    const dropped = this.#buffer.push({ seq: ++this.#seq, sample });
    if (dropped) {
      const total = this.#buffer.dropped;
      // One line per 100 drops is enough to see an outage in the log without flooding it.
      if (total === 1 || total % 100 === 0) {
        this.#opts.logger.warn("telemetry buffer full: dropping the oldest samples", { dropped: total, capacity: this.#buffer.capacity });
      }
    }
  }

  get buffered(): number {
    return this.#buffer.size;
  }

  get dropped(): number {
    return this.#buffer.dropped;
  }

  /** Timestamp (sample ts) of the newest sample that reached the broker connection. */
  get lastPublishedAt(): number | null {
    return this.#lastPublishedAt;
  }

  /** Publishes everything buffered, oldest first; stops at the first failure and keeps the rest. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => {
      this.#flushing = null;
    });
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#buffer.size > 0 && this.#opts.isConnected()) {
      const batch = this.#buffer.peek(this.#batchSize);
      try {
        await this.#opts.publish({ samples: batch.map((e) => e.sample) });
      } catch (error) {
        this.#opts.logger.debug("telemetry publish failed; kept for the next connection", { error, buffered: this.#buffer.size });
        return;
      }
      const lastSeq = batch[batch.length - 1]!.seq;
      let sent = 0;
      for (const e of this.#buffer.peek(batch.length)) {
        if (e.seq > lastSeq) break;
        sent += 1;
      }
      this.#buffer.discard(sent);
      this.#lastPublishedAt = batch[batch.length - 1]!.sample.ts;
    }
  }
}
