/**
 * The chats a device holds: a bounded FIFO whose front is the one that runs (or
 * waits for the runner). Position 0 is the front; the limit counts the running
 * chat and the waiting ones together. Pure: no timers, no I/O.
 */
export interface Queued {
  readonly requestId: string;
}

export class ChatQueue<T extends Queued> {
  readonly #items: T[] = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the chat queue limit must be a positive integer, got ${limit}`);
  }

  get size(): number {
    return this.#items.length;
  }

  get full(): boolean {
    return this.#items.length >= this.limit;
  }

  /** Appends `item`; its position (0 = runs now), or null when the queue is full. */
  add(item: T): number | null {
    if (this.full) return null;
    if (this.has(item.requestId)) throw new Error(`request ${item.requestId} is already queued`);
    this.#items.push(item);
    return this.#items.length - 1;
  }

  front(): T | undefined {
    return this.#items[0];
  }

  get(requestId: string): T | undefined {
    return this.#items.find((item) => item.requestId === requestId);
  }

  has(requestId: string): boolean {
    return this.position(requestId) !== null;
  }

  /** 0 for the front, 1 for the next…; null when not held. */
  position(requestId: string): number | null {
    const index = this.#items.findIndex((item) => item.requestId === requestId);
    return index === -1 ? null : index;
  }

  /** Removes the request; the item, or undefined when it was not held. Those behind it move up. */
  remove(requestId: string): T | undefined {
    const index = this.#items.findIndex((item) => item.requestId === requestId);
    if (index === -1) return undefined;
    return this.#items.splice(index, 1)[0];
  }

  /** Removes and returns everything, front first. */
  drain(): T[] {
    return this.#items.splice(0);
  }

  /** The held items with their positions, front first. */
  entries(): [position: number, item: T][] {
    return this.#items.map((item, index) => [index, item]);
  }
}
