/**
 * Streamed answer text made safe for a terminal, piece by piece. Pieces arrive as the
 * server sent them; a piece may end in half of a surrogate pair (an emoji) or in "\r"
 * before its "\n", which are held until the next piece. Control characters other than
 * newline and tab (a byte-level model with random weights emits NUL, ESC, BEL…) would
 * move the cursor, clear the screen or print garbage: they are written as U+FFFD.
 */

const REPLACEMENT = "\uFFFD";
/** C0 controls except \t and \n, DEL, and the C1 controls. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

export class TerminalText {
  #held = "";

  /** The part of `piece` (with what was held) that can be written now. */
  push(piece: string): string {
    let text = this.#held + piece;
    this.#held = "";
    const last = text.charCodeAt(text.length - 1);
    if (text.length > 0 && ((last >= 0xd800 && last <= 0xdbff) || last === 0x0d)) {
      this.#held = text.slice(-1);
      text = text.slice(0, -1);
    }
    return clean(text);
  }

  /** What is still held at the end of the answer. */
  end(): string {
    const rest = this.#held;
    this.#held = "";
    return clean(rest);
  }
}

function clean(text: string): string {
  return (
    text
      .replace(/\r\n/g, "\n")
      // A surrogate without its other half is not a character.
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, REPLACEMENT)
      .replace(CONTROL, REPLACEMENT)
  );
}
