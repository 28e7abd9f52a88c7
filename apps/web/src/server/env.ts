/**
 * The server's configuration, read from the environment once at start and
 * validated. Nothing else in the server reads process.env.
 */
import path from "node:path";
import { z } from "zod";

const port = z.coerce.number().int().min(0).max(65535);

const EnvSchema = z
  .object({
    NODE_ENV: z.enum(["development", "production", "test"]).default("production"),
    PORT: port.default(3000),
    /** Interface to listen on; 0.0.0.0 so Pis on the LAN can reach the dashboard, enrollment and the broker. */
    HOST: z.string().default("0.0.0.0"),
    MQTT_PORT: port.default(1883),
    /** An external broker (Mosquitto, EMQX); disables the embedded one. */
    MQTT_URL: z.string().url().optional(),
    MQTT_USERNAME: z.string().optional(),
    MQTT_PASSWORD: z.string().optional(),
    /**
     * The admin account of Mosquitto's dynamic security plugin (made by `mosquitto_ctrl dynsec init`): with it the
     * server creates the accounts of devices it enrolls, removes them on deletion and rotates their passwords.
     * Unset with MQTT_URL: device accounts are managed by hand (the server logs the commands).
     */
    MQTT_DYNSEC_USERNAME: z.string().optional(),
    MQTT_DYNSEC_PASSWORD: z.string().optional(),
    /**
     * The URL Pis use to reach this server, for the enrollment commands the dashboard
     * shows; the address the browser used when unset (wrong when that is localhost).
     */
    ORCHARD_PUBLIC_URL: z.string().url().optional(),
    /** What agents are told to connect to at enrollment; derived from the enrollment request when unset. */
    ORCHARD_PUBLIC_MQTT_URL: z.string().url().optional(),
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgresql:// URL (unset it to use the embedded database)")
      .optional(),
    ORCHARD_DATA: z.string().default("./data"),
    ORCHARD_ADMIN_PASSWORD: z.string().min(8, "ORCHARD_ADMIN_PASSWORD must be at least 8 characters").optional(),
    ORCHARD_API_KEY: z.string().min(16, "ORCHARD_API_KEY must be at least 16 characters").optional(),
    /** Set to "1" to serve the UI with `next dev` (hot reload) instead of the production build. */
    ORCHARD_DEV: z.enum(["0", "1"]).default("0"),
    /** How long browser sessions last, in hours. */
    ORCHARD_SESSION_HOURS: z.coerce
      .number()
      .positive()
      .default(24 * 7),
    /**
     * Failed sign-ins of one username from one client address within 15 minutes before further attempts of that
     * username from that address get 429; an address (over all usernames) and a username (over all addresses) are
     * locked at 10 times this (services/login-limiter.ts).
     */
    ORCHARD_LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    /** A device that sent nothing for this long is shown offline even without a last will. */
    ORCHARD_DEVICE_STALE_SECONDS: z.coerce.number().positive().default(60),
    /** How often buffered telemetry and device state are written to the database. */
    ORCHARD_FLUSH_MS: z.coerce.number().int().positive().default(1000),
    /** How long raw telemetry samples are kept, in hours (charts of up to 3 h read them). */
    ORCHARD_TELEMETRY_RAW_HOURS: z.coerce
      .number()
      .positive()
      .max(24 * 365)
      .default(24),
    /** How long per-minute telemetry rollups are kept, in days (charts of longer ranges read them). */
    ORCHARD_TELEMETRY_ROLLUP_DAYS: z.coerce.number().positive().max(3650).default(30),
    /** A temperature alert opens above this SoC temperature (°C) and clears 5 °C below it. */
    ORCHARD_ALERT_TEMP_C: z.coerce.number().min(0).max(150).default(80),
    /** A disk_low alert opens below this share of free disk (%) and clears 2 points above it. */
    ORCHARD_ALERT_DISK_FREE_PERCENT: z.coerce.number().min(0).max(100).default(10),
    /** An alert clears only after its clear condition held this long (seconds), so a flapping value does not spam. */
    ORCHARD_ALERT_CLEAR_HOLD_SECONDS: z.coerce.number().min(0).max(86_400).default(30),
    /** A device that reports no progress on a benchmark for this long fails it (a Pi may spend minutes on one long prompt). */
    ORCHARD_BENCH_STALL_SECONDS: z.coerce.number().positive().max(86_400).default(600),
    /** The ed25519 key model manifests are signed with (created on first start); default `${ORCHARD_DATA}/keys/artifact-signing-key.pem`. */
    ORCHARD_SIGNING_KEY_FILE: z.string().optional(),
    /** Model file downloads the server sends at once; devices asking for more get 503 and retry (the uplink is shared fairly). */
    ORCHARD_MAX_CONCURRENT_DOWNLOADS: z.coerce.number().int().min(1).max(10_000).default(4),
    /** Uploads nobody touched for this long (unfinished, or finished but never made into a model) are deleted, in hours. */
    ORCHARD_UPLOAD_EXPIRY_HOURS: z.coerce
      .number()
      .positive()
      .max(24 * 365)
      .default(72),
    /**
     * "1" lets operators register models by URL on loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
     * link-local and other non-public addresses; unset, such URLs are refused (services/remote-fetch.ts).
     */
    ORCHARD_ALLOW_PRIVATE_MODEL_URLS: z.enum(["0", "1"]).default("0"),
    ORCHARD_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
    /** HTTPS: the server's certificate chain (PEM); needs ORCHARD_TLS_KEY_FILE too. Unset: plain HTTP. */
    ORCHARD_TLS_CERT_FILE: z.string().optional(),
    /** HTTPS: the private key (PEM) of ORCHARD_TLS_CERT_FILE. */
    ORCHARD_TLS_KEY_FILE: z.string().optional(),
  })
  .refine((e) => (e.ORCHARD_TLS_CERT_FILE === undefined) === (e.ORCHARD_TLS_KEY_FILE === undefined), {
    message: "set both ORCHARD_TLS_CERT_FILE and ORCHARD_TLS_KEY_FILE for HTTPS, or neither",
    path: ["ORCHARD_TLS_CERT_FILE"],
  })
  .refine((e) => (e.MQTT_DYNSEC_USERNAME === undefined) === (e.MQTT_DYNSEC_PASSWORD === undefined), {
    message: "set both MQTT_DYNSEC_USERNAME and MQTT_DYNSEC_PASSWORD (Mosquitto's dynamic-security admin), or neither",
    path: ["MQTT_DYNSEC_USERNAME"],
  })
  .refine(
    (e) =>
      e.MQTT_DYNSEC_USERNAME === undefined || (e.MQTT_URL !== undefined && e.MQTT_USERNAME !== undefined && e.MQTT_PASSWORD !== undefined),
    {
      message:
        "MQTT_DYNSEC_USERNAME needs MQTT_URL (the Mosquitto broker) and MQTT_USERNAME/MQTT_PASSWORD (the server's own account, created if missing)",
      path: ["MQTT_DYNSEC_USERNAME"],
    },
  );

export type Env = z.infer<typeof EnvSchema> & {
  /** Absolute data directory. */
  dataDir: string;
  /** The web app's directory (where .next lives). */
  webDir: string;
};

export function loadEnv(source: NodeJS.ProcessEnv, webDir: string): Env {
  // Empty strings in the environment mean "unset" (as in `MQTT_URL= npm start`).
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ""));
  const result = EnvSchema.safeParse(cleaned);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join("\n")}`);
  }
  return { ...result.data, dataDir: path.resolve(result.data.ORCHARD_DATA), webDir };
}
