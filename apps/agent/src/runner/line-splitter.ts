/**
 * Splits a byte stream into lines. A line longer than the limit is discarded up
 * to its newline and reported once, so a runner that floods its stdout cannot
 * make the agent buffer without bound. Lines split on the byte 0x0A, so a
 * multi-byte character is never cut in half.
 */
export class LineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #discarding = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytesSoFar: number) => void = () => undefined,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl === -1) break;
      this.#append(chunk.subarray(start, nl));
      this.#emit();
      start = nl + 1;
    }
    if (start < chunk.length) this.#append(chunk.subarray(start));
  }

  /** The stream ended: a last line without a newline still counts. */
  end(): void {
    if (this.#pendingBytes > 0 || this.#discarding) this.#emit();
  }

  #append(part: Buffer): void {
    if (this.#discarding || part.length === 0) return;
    if (this.#pendingBytes + part.length > this.maxLineBytes) {
      this.onOverlong(this.#pendingBytes + part.length);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#discarding = true;
      return;
    }
    this.#pending.push(part);
    this.#pendingBytes += part.length;
  }

  #emit(): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    let line = Buffer.concat(this.#pending, this.#pendingBytes).toString("utf8");
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    this.onLine(line);
  }
}
