/**
 * Two small pieces the long-running services (benchmarks, rollouts) share:
 *
 * - KeyedSerial: work queued per key (a benchmark run, a rollout) runs one at a time
 *   in the order it was queued, so the database sees a run's events in the order they
 *   arrived; different keys run concurrently. A failing piece of work is reported and
 *   the queue carries on.
 * - CoalescedAnnouncer: "this key changed" collected over a short window, then
 *   announced once per key (the announcer reads the current state and emits it), so a
 *   burst of progress events becomes one socket.io message per window.
 */
export class KeyedSerial {
  readonly #chains = new Map<string, Promise<void>>();

  constructor(private readonly onError: (key: string, error: Error) => void) {}

  /** Queues work for a key. `onError` overrides the default report; `then` runs after the work, whatever happened. */
  enqueue(key: string, work: () => Promise<void>, opts: { onError?: (error: Error) => void; then?: () => void } = {}): void {
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const next: Promise<void> = previous
      .then(work)
      .catch((error: Error) => (opts.onError ? opts.onError(error) : this.onError(key, error)))
      .finally(() => {
        if (this.#chains.get(key) === next) this.#chains.delete(key);
        opts.then?.();
      });
    this.#chains.set(key, next);
  }

  /** Resolves when the key has nothing queued (including work queued while waiting). */
  async settle(key: string): Promise<void> {
    while (this.#chains.has(key)) await this.#chains.get(key);
  }

  /** Resolves when no key has anything queued. */
  async idle(): Promise<void> {
    while (this.#chains.size > 0) await Promise.all([...this.#chains.values()]);
  }
}

export class CoalescedAnnouncer {
  readonly #pending = new Set<string>();
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly windowMs: number,
    private readonly announce: (key: string) => Promise<void>,
    private readonly onError: (key: string, error: Error) => void,
  ) {}

  /** The key changed: announce it at the end of the current window. */
  schedule(key: string): void {
    this.#pending.add(key);
    this.#timer ??= setTimeout(() => void this.flush(), this.windowMs);
  }

  /** Forgets a pending announcement (the key was deleted). */
  cancel(key: string): void {
    this.#pending.delete(key);
  }

  /** Announces everything pending now. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const keys = [...this.#pending];
    this.#pending.clear();
    for (const key of keys) {
      try {
        await this.announce(key);
      } catch (error) {
        this.onError(key, error as Error);
      }
    }
  }

  /** Stops the timer without announcing. */
  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
