/**
 * A bounded FIFO that drops its oldest item when full and counts what it dropped.
 * Holds telemetry taken while the broker is unreachable, and the runner's stderr tail.
 */
export class RingBuffer<T> {
  readonly #items: (T | undefined)[];
  #head = 0; // index of the oldest item
  #size = 0;
  #dropped = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.#items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Items dropped because the buffer was full, since it was created. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Appends an item; returns the oldest item when it had to be dropped to make room. */
  push(item: T): T | undefined {
    let evicted: T | undefined;
    if (this.#size === this.capacity) {
      evicted = this.#items[this.#head];
      this.#items[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.capacity;
      this.#size -= 1;
      this.#dropped += 1;
    }
    this.#items[(this.#head + this.#size) % this.capacity] = item;
    this.#size += 1;
    return evicted;
  }

  /** Up to `count` of the oldest items, oldest first, without removing them. */
  peek(count: number = this.#size): T[] {
    const n = Math.min(Math.max(count, 0), this.#size);
    const out: T[] = [];
    for (let i = 0; i < n; i += 1) out.push(this.#items[(this.#head + i) % this.capacity] as T);
    return out;
  }

  /** Removes up to `count` of the oldest items (after they were delivered). */
  discard(count: number): void {
    const n = Math.min(Math.max(count, 0), this.#size);
    for (let i = 0; i < n; i += 1) {
      this.#items[this.#head] = undefined;
      this.#head = (this.#head + 1) % this.capacity;
    }
    this.#size -= n;
  }

  toArray(): T[] {
    return this.peek(this.#size);
  }

  clear(): void {
    this.discard(this.#size);
  }
}
