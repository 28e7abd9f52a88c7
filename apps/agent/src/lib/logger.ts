/**
 * The agent's one logger: a level, text or JSON lines on stderr (stdout is kept
 * for command output such as `status --json`). Secrets never reach a log line:
 * fields named like credentials are redacted, and credentials inside URLs are cut.
 */

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
// Field names that hold credentials (not e.g. `generatedTokens`, which is a count).
const SECRET_KEY = /(password|passwd|secret|apikey)$|^(authorization|credentials?|token|enrollToken)$/i;
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi;

export function redactString(value: string): string {
  return value.replace(URL_USERINFO, "$1***@");
}

function clean(key: string, value: unknown): unknown {
  if (SECRET_KEY.test(key) && value !== undefined && value !== null) return "[redacted]";
  if (typeof value === "string") return redactString(value);
  if (value instanceof Error) return redactString(value.message);
  return value;
}

function formatText(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value === undefined) return "undefined";
  return JSON.stringify(value) ?? String(value);
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const threshold = RANK[options.level ?? "info"];
  const format = options.format ?? "text";
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const now = options.now ?? (() => new Date());

  const log = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    const all: LogFields = {};
    for (const [k, v] of Object.entries({ ...bound, ...fields })) {
      if (v !== undefined) all[k] = clean(k, v);
    }
    const ts = now().toISOString();
    const text = redactString(message);
    if (format === "json") {
      write(`${JSON.stringify({ ts, level, msg: text, ...all })}\n`);
    } else {
      const rest = Object.entries(all)
        .map(([k, v]) => `${k}=${formatText(v)}`)
        .join(" ");
      write(`${ts} ${level.toUpperCase().padEnd(5)} ${text}${rest ? ` ${rest}` : ""}\n`);
    }
  };

  return {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/** A logger that drops everything (tests that do not look at logs). */
export const silentLogger: Logger = createLogger({ level: "error", write: () => undefined });
