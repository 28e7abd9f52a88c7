/** A small leveled logger: one line per event, never secrets. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(scope: string): Logger;
}

export function createLogger(level: LogLevel, scope = "orchard"): Logger {
  const emit = (at: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[at] < order[level]) return;
    const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : "";
    const line = `${new Date().toISOString()} ${at.padEnd(5)} [${scope}] ${msg}${extra}\n`;
    (at === "error" || at === "warn" ? process.stderr : process.stdout).write(line);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (s) => createLogger(level, `${scope}:${s}`),
  };
}

/**
 * Wraps a log call so the same key logs at most once per interval: a misbehaving
 * device must not be able to flood the server's log.
 */
export function throttled(intervalMs: number, now: () => number = Date.now) {
  const last = new Map<string, number>();
  return (key: string, log: () => void): void => {
    const t = now();
    if ((last.get(key) ?? -Infinity) > t - intervalMs) return;
    if (last.size > 10_000) last.clear();
    last.set(key, t);
    log();
  };
}
