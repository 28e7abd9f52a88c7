/**
 * Building blocks every message schema shares: what a timestamp may be, and the rule
 * that a string stored by the server carries no NUL.
 */
import { z } from "zod";

/**
 * Timestamps are integer milliseconds since the epoch, below 2100-01-01T00:00:00Z.
 *
 * The upper bound is what keeps one message from stopping the server's writes: a JS Date
 * holds at most ±8.64e15 ms (year 275760), so `ts: 9e15` was a valid number but an
 * invalid Date, and the batch that carried it failed on every retry. 2100 is far inside
 * both a Date and PostgreSQL's `timestamp` (year 294276), and a fixed bound keeps parsing
 * independent of anyone's clock (the server refuses telemetry from a wrong clock on its
 * own, see MAX_TELEMETRY_FUTURE_MS in the server's ingestion).
 *
 * There is no lower bound beyond "positive": a Pi has no real-time clock, and before NTP
 * it may think it is 1970. Its events and status still count (they are stored with the
 * date it gave them).
 */
export const MAX_TIMESTAMP_MS = Date.UTC(2100, 0, 1);
export const Timestamp = z
  .number()
  .int()
  .positive()
  .max(MAX_TIMESTAMP_MS - 1, "a timestamp before the year 2100");

const NUL = "\u0000";

/** A string without NUL (U+0000): PostgreSQL refuses it in `text` and in `jsonb`. */
export const noNul = z.string().refine((s) => !s.includes(NUL), "must not contain a NUL character (U+0000)");

/**
 * `text` with every NUL replaced by U+FFFD (the replacement character): for text a device
 * passes on from elsewhere (a runner's stderr, its protocol lines), so that what it reports
 * still passes the contract and reaches the server.
 */
export function withoutNul(text: string): string {
  return text.replaceAll(NUL, "\uFFFD");
}

/**
 * `schema`, also refusing a NUL in any string anywhere in the parsed value (object keys
 * included), with the issue at that string's path. For the messages a device sends that
 * the server stores (status, events): every string in them may end up in a text or jsonb
 * column, and one that PostgreSQL refuses must be refused here, at the door, instead.
 */
export function refuseNul<T extends z.ZodType>(schema: T): T {
  return schema.superRefine((value, ctx) => {
    const path = findNul(value, []);
    if (path) ctx.addIssue({ code: "custom", path, message: "must not contain a NUL character (U+0000)" });
  });
}

/** The path of the first string (or key) containing NUL, or null. */
function findNul(value: unknown, path: (string | number)[]): (string | number)[] | null {
  if (typeof value === "string") return value.includes(NUL) ? path : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findNul(value[i], [...path, i]);
      if (found) return found;
    }
    return null;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      if (key.includes(NUL)) return [...path, key];
      const found = findNul(v, [...path, key]);
      if (found) return found;
    }
  }
  return null;
}
