/**
 * A real Mosquitto 2 for tests, run from the shipped infra/mosquitto/mosquitto.conf:
 * the copy differs only in its listener ports (loopback, picked at random) and its
 * file paths (a temp folder), which is checked line by line. The dynamic security
 * file is made with `mosquitto_ctrl dynsec init`, TLS material with the shipped
 * infra/tls/make-lab-ca.sh. As root, mosquitto drops to the mosquitto user, so the
 * folder is handed to that user.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, cp, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Proc, ROOT, freePort, removeDir, waitFor } from "./harness.ts";

const run = promisify(execFile);

export const SHIPPED_CONF = path.join(ROOT, "infra/mosquitto/mosquitto.conf");
const MAKE_LAB_CA = path.join(ROOT, "infra/tls/make-lab-ca.sh");

/** Directives a test copy may change: ports and paths. Everything else must stay as shipped. */
const ADAPTABLE = new Set(["listener", "plugin", "plugin_opt_config_file", "persistence_location", "cafile", "certfile", "keyfile"]);

export interface ConfPaths {
  port: number;
  tlsPort: number;
  pluginPath: string;
  dynsecFile: string;
  persistenceDir: string;
  tlsDir: string;
}

/** The shipped conf with its ports and paths replaced; throws if any other line would differ. */
export function adaptShippedConf(shipped: string, p: ConfPaths): string {
  const out = shipped.split("\n").map((line) => {
    const [directive, ...rest] = line.trim().split(/\s+/);
    switch (directive) {
      case "listener":
        return rest[0] === "8883" ? `listener ${p.tlsPort} 127.0.0.1` : `listener ${p.port} 127.0.0.1`;
      case "plugin":
        return `plugin ${p.pluginPath}`;
      case "plugin_opt_config_file":
        return `plugin_opt_config_file ${p.dynsecFile}`;
      case "persistence_location":
        return `persistence_location ${p.persistenceDir}/`;
      case "cafile":
      case "certfile":
      case "keyfile":
        return `${directive} ${path.join(p.tlsDir, path.basename(rest[0] ?? ""))}`;
      default:
        return line;
    }
  });
  const shippedLines = shipped.split("\n");
  out.forEach((line, i) => {
    if (line === shippedLines[i]) return;
    const directive = shippedLines[i]!.trim().split(/\s+/)[0]!;
    if (!ADAPTABLE.has(directive)) throw new Error(`the test copy of mosquitto.conf changed line ${i + 1} (${shippedLines[i]})`);
  });
  return out.join("\n");
}

/** Why Mosquitto tests cannot run here, or null when they can. */
export function mosquittoMissing(): string | null {
  for (const bin of ["mosquitto", "mosquitto_ctrl", "openssl"]) {
    const found = spawnSync("sh", ["-c", `command -v ${bin} || ls /usr/sbin/${bin}`], { encoding: "utf8" });
    if (found.status !== 0) return `${bin} is not installed (apt-get install mosquitto openssl)`;
  }
  return pluginPathSync() ? null : "mosquitto_dynamic_security.so is not installed (apt-get install mosquitto)";
}

function pluginPathSync(): string | null {
  const found = spawnSync(
    "sh",
    ["-c", "ls /usr/lib/*/mosquitto_dynamic_security.so /usr/lib/mosquitto_dynamic_security.so 2>/dev/null | head -n 1"],
    {
      encoding: "utf8",
    },
  );
  return found.stdout.trim() || null;
}

let labCa: Promise<string> | null = null;
/** One lab CA + localhost certificate per test process (RSA key generation takes a moment). */
function labCaDir(): Promise<string> {
  labCa ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-lab-ca-"));
    await run(MAKE_LAB_CA, [dir, "localhost", "127.0.0.1"]);
    return dir;
  })();
  return labCa;
}

export interface TestMosquitto {
  /** mqtt://127.0.0.1:port (plain listener). */
  url: string;
  port: number;
  /** mqtts://localhost:tlsPort, signed by `caFile`. */
  tlsUrl: string;
  caFile: string;
  admin: { username: string; password: string };
  dir: string;
  conf: string;
  proc: Proc;
  stop(): Promise<void>;
}

export async function startMosquitto(): Promise<TestMosquitto> {
  const missing = mosquittoMissing();
  if (missing) throw new Error(`cannot start Mosquitto: ${missing}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), "orchard-mosquitto-"));
  try {
    const [port, tlsPort] = [await freePort(), await freePort()];
    const tlsDir = path.join(dir, "tls");
    await cp(await labCaDir(), tlsDir, { recursive: true });
    const admin = { username: "admin", password: randomBytes(12).toString("hex") };
    const dynsecFile = path.join(dir, "dynamic-security.json");
    await run("mosquitto_ctrl", ["dynsec", "init", dynsecFile, admin.username, admin.password]);
    const conf = adaptShippedConf(await readFile(SHIPPED_CONF, "utf8"), {
      port,
      tlsPort,
      pluginPath: pluginPathSync()!,
      dynsecFile,
      persistenceDir: dir,
      tlsDir,
    });
    const confFile = path.join(dir, "mosquitto.conf");
    await writeFile(confFile, conf);
    if (process.getuid?.() === 0) await giveTo("mosquitto", dir);

    const child = spawn("mosquitto", ["-c", confFile], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    });
    const proc = new Proc("mosquitto", child);
    await waitFor(
      `mosquitto to listen on ${port} and ${tlsPort}`,
      async () => {
        if (!proc.running) throw new Error(`mosquitto exited:\n${proc.output.slice(-3000)}`);
        return (await canConnect(port)) && (await canConnect(tlsPort));
      },
      20_000,
    ).catch(async (err: Error) => {
      await proc.stop();
      throw new Error(`${err.message}\n--- mosquitto output ---\n${proc.output.slice(-3000)}`);
    });
    return {
      url: `mqtt://127.0.0.1:${port}`,
      port,
      tlsUrl: `mqtts://localhost:${tlsPort}`,
      caFile: path.join(tlsDir, "ca.crt"),
      admin,
      dir,
      conf,
      proc,
      stop: async () => {
        await proc.stop("SIGTERM", 10_000);
        await removeDir(dir);
      },
    };
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

async function giveTo(user: string, dir: string): Promise<void> {
  const { stdout } = await run("id", ["-u", user]);
  const { stdout: gid } = await run("id", ["-g", user]);
  const [uid, g] = [Number(stdout.trim()), Number(gid.trim())];
  await chmod(dir, 0o755);
  const walk = async (d: string): Promise<void> => {
    await chown(d, uid, g);
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else await chown(p, uid, g);
    }
  };
  await walk(dir);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
