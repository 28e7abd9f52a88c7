/**
 * A client for Mosquitto's dynamic security plugin (mosquitto 2.x): JSON commands
 * published on `$CONTROL/dynamic-security/v1` with the plugin's admin account, each
 * answered on `…/response` and matched to its request by correlation data. Every
 * call times out with a sentence that says what to check; the plugin's own refusals
 * ("Client not found" …) come back as DynsecError with its text. Passwords are sent
 * to the broker and never logged.
 */
import { randomBytes } from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import { z } from "zod";

const CONTROL_TOPIC = "$CONTROL/dynamic-security/v1";
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;

export type AclType =
  "publishClientSend" | "publishClientReceive" | "subscribeLiteral" | "subscribePattern" | "unsubscribeLiteral" | "unsubscribePattern";

export interface Acl {
  acltype: AclType;
  topic: string;
  allow: boolean;
  priority?: number;
}

/** A command the plugin answered with an error. */
export class DynsecError extends Error {
  override readonly name = "DynsecError";
  constructor(
    readonly command: string,
    /** The plugin's own words, e.g. "Client not found". */
    readonly reason: string,
  ) {
    super(`Mosquitto dynamic security refused ${command}: ${reason}`);
  }
}

const ResponseMessage = z.object({
  responses: z.array(
    z.object({
      command: z.string(),
      error: z.string().optional(),
      data: z.unknown().optional(),
      correlationData: z.string().optional(),
    }),
  ),
});

const ClientInfo = z.object({
  username: z.string(),
  clientid: z.string().optional(),
  disabled: z.boolean().optional(),
  roles: z.array(z.object({ rolename: z.string() })).default([]),
});
export type DynsecClientInfo = z.infer<typeof ClientInfo>;

export interface DynsecOptions {
  url: string;
  username: string;
  password: string;
  /** How long one command may wait for its answer. */
  timeoutMs?: number;
  /** How long connecting may take. */
  connectTimeoutMs?: number;
  /** A CA certificate (PEM) for an mqtts:// broker signed by a private CA. */
  ca?: Buffer;
}

interface Waiter {
  command: string;
  resolve: (data: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class DynsecClient {
  private readonly waiters = new Map<string, Waiter>();
  private seq = 0;

  private constructor(
    private readonly client: MqttClient,
    private readonly opts: DynsecOptions,
  ) {
    client.on("message", (topic, payload) => {
      if (topic === RESPONSE_TOPIC) this.onResponse(payload);
    });
    client.on("close", () => {
      // A command in flight when the connection drops would otherwise wait for its timeout.
      for (const [id, w] of this.waiters) {
        this.waiters.delete(id);
        clearTimeout(w.timer);
        w.reject(new Error(`lost the connection to the MQTT broker at ${redact(opts.url)} during ${w.command}; try again`));
      }
    });
  }

  /** Connects with the admin account and subscribes to the plugin's answers; fails with a sentence an operator can act on. */
  static async connect(opts: DynsecOptions): Promise<DynsecClient> {
    const client = mqtt.connect(opts.url, {
      clientId: `orchard-dynsec-${randomBytes(4).toString("hex")}`,
      username: opts.username,
      password: opts.password,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    client.on("error", () => undefined); // reported through connect's rejection or each command's
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no answer from the MQTT broker at ${redact(opts.url)} within ${opts.connectTimeoutMs ?? 10_000} ms`)),
          (opts.connectTimeoutMs ?? 10_000) + 500,
        );
        client.once("connect", () => {
          clearTimeout(timer);
          resolve();
        });
        client.once("error", (err: Error & { code?: number }) => {
          clearTimeout(timer);
          const refused = err.code === 4 || err.code === 5 || /not authori[sz]ed|bad user/i.test(err.message);
          reject(
            new Error(
              refused
                ? `the MQTT broker at ${redact(opts.url)} refused the dynamic-security admin "${opts.username}": check MQTT_DYNSEC_USERNAME / MQTT_DYNSEC_PASSWORD (the account made by \`mosquitto_ctrl dynsec init\`)`
                : `cannot connect to the MQTT broker at ${redact(opts.url)}: ${err.message}`,
            ),
          );
        });
      });
      const granted = await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
      if (granted.some((g) => g.qos === 128)) {
        throw new Error(
          `"${opts.username}" may not read ${RESPONSE_TOPIC}: is the dynamic security plugin loaded, and is this its admin account?`,
        );
      }
    } catch (err) {
      client.end(true);
      throw err;
    }
    return new DynsecClient(client, opts);
  }

  /** Sends one command and resolves with its `data` (undefined for commands without any). */
  command(command: string, fields: Record<string, unknown> = {}): Promise<unknown> {
    const correlationData = `${process.pid}-${++this.seq}-${randomBytes(3).toString("hex")}`;
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      if (!this.client.connected) {
        reject(new Error(`not connected to the MQTT broker at ${redact(this.opts.url)} (${command} not sent); try again`));
        return;
      }
      const timer = setTimeout(() => {
        this.waiters.delete(correlationData);
        reject(
          new Error(
            `Mosquitto did not answer ${command} within ${timeoutMs} ms: is the dynamic security plugin loaded (plugin … mosquitto_dynamic_security.so in mosquitto.conf)?`,
          ),
        );
      }, timeoutMs);
      this.waiters.set(correlationData, { command, resolve, reject, timer });
      this.client.publish(CONTROL_TOPIC, JSON.stringify({ commands: [{ command, ...fields, correlationData }] }), { qos: 1 }, (err) => {
        if (!err) return;
        clearTimeout(timer);
        this.waiters.delete(correlationData);
        reject(new Error(`sending ${command} to the MQTT broker failed: ${err.message}`));
      });
    });
  }

  private onResponse(payload: Buffer): void {
    let parsed: z.infer<typeof ResponseMessage>;
    try {
      parsed = ResponseMessage.parse(JSON.parse(payload.toString("utf8")));
    } catch {
      return; // not an answer we can read; the command it answers times out with a clear message
    }
    for (const r of parsed.responses) {
      const w = r.correlationData === undefined ? undefined : this.waiters.get(r.correlationData);
      if (!w) continue; // another admin's answer
      this.waiters.delete(r.correlationData!);
      clearTimeout(w.timer);
      if (r.error) w.reject(new DynsecError(r.command, r.error));
      else w.resolve(r.data);
    }
  }

  // ------------------------------------------------------------ typed commands

  async createRole(rolename: string, acls: Acl[]): Promise<void> {
    await this.command("createRole", { rolename, acls });
  }

  async deleteRole(rolename: string): Promise<void> {
    await this.command("deleteRole", { rolename });
  }

  async addRoleAcl(rolename: string, acl: Acl): Promise<void> {
    await this.command("addRoleACL", { rolename, ...acl });
  }

  async getRoleAcls(rolename: string): Promise<Acl[] | null> {
    try {
      const data = z
        .object({ role: z.object({ acls: z.array(z.object({ acltype: z.string(), topic: z.string(), allow: z.boolean() })).default([]) }) })
        .parse(await this.command("getRole", { rolename }));
      return data.role.acls as Acl[];
    } catch (err) {
      if (err instanceof DynsecError && /not found/i.test(err.reason)) return null;
      throw err;
    }
  }

  async createClient(input: { username: string; password: string; clientid?: string; roles: string[] }): Promise<void> {
    await this.command("createClient", {
      username: input.username,
      password: input.password,
      ...(input.clientid ? { clientid: input.clientid } : {}),
      roles: input.roles.map((rolename) => ({ rolename, priority: -1 })),
    });
  }

  /** Deletes the account; Mosquitto disconnects its live connections at once. */
  async deleteClient(username: string): Promise<void> {
    await this.command("deleteClient", { username });
  }

  /** Sets the account's only password; Mosquitto disconnects its live connections, which must log in again with it. */
  async setClientPassword(username: string, password: string): Promise<void> {
    await this.command("setClientPassword", { username, password });
  }

  async addClientRole(username: string, rolename: string): Promise<void> {
    await this.command("addClientRole", { username, rolename, priority: -1 });
  }

  async getClient(username: string): Promise<DynsecClientInfo | null> {
    try {
      const data = z.object({ client: ClientInfo }).parse(await this.command("getClient", { username }));
      return data.client;
    } catch (err) {
      if (err instanceof DynsecError && /not found/i.test(err.reason)) return null;
      throw err;
    }
  }

  async listClients(): Promise<DynsecClientInfo[]> {
    const data = z
      .object({ clients: z.array(ClientInfo) })
      .parse(await this.command("listClients", { verbose: true, count: -1, offset: 0 }));
    return data.clients;
  }

  async listRoles(): Promise<string[]> {
    const data = z
      .object({ roles: z.array(z.union([z.string(), z.object({ rolename: z.string() })])) })
      .parse(await this.command("listRoles", { verbose: false, count: -1, offset: 0 }));
    return data.roles.map((r) => (typeof r === "string" ? r : r.rolename));
  }

  async close(): Promise<void> {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new Error("the dynamic-security client was closed"));
    }
    this.waiters.clear();
    await this.client.endAsync();
  }
}

export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}
