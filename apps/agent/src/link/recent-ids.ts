/** The last N command ids seen, so a re-delivered command (QoS 1 is at-least-once) runs only once. */
export class RecentIds {
  readonly #ids = new Set<string>();

  constructor(readonly capacity = 100) {}

  /** Records `id`; false when it was already among the last `capacity` ids. */
  add(id: string): boolean {
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > this.capacity) {
      // A Set iterates in insertion order: the first one is the oldest.
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }

  has(id: string): boolean {
    return this.#ids.has(id);
  }

  get size(): number {
    return this.#ids.size;
  }
}
