/**
 * Device accounts on the MQTT broker. Enrollment provisions one, device deletion
 * removes it (and cuts the device's live connection at once), credential rotation
 * changes its password. Three brokers, one interface:
 *
 * - embedded (Aedes in this process): the database is the source of truth and the
 *   broker checks it on every connect, so there is nothing to provision; removing or
 *   re-keying a device disconnects it.
 * - dynsec (Mosquitto 2 with the dynamic security plugin, MQTT_DYNSEC_*): one client
 *   (username = client id = device id) and one role per device whose ACLs are the
 *   device's own subtree (contracts' deviceBrokerAcl); the server's own account gets
 *   the `orchard-server` role. At start, reconcile() brings the broker in line with
 *   the database.
 * - manual (MQTT_URL without MQTT_DYNSEC_*): the server cannot change the broker; it
 *   logs the exact mosquitto_ctrl commands an operator has to run (never a password).
 */
import { SERVER_BROKER_ACL, deviceBrokerAcl } from "@orchard/contracts";
import { AppError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { DynsecClient, DynsecError, redact, type Acl, type DynsecOptions } from "./dynsec.ts";

export type BrokerAccountsMode = "embedded" | "dynsec" | "manual";

export interface ReconcileReport {
  /** Device roles that were missing and were created. */
  rolesCreated: number;
  /** Devices in the database without a broker account: they cannot connect until re-enrolled (their password is stored hashed). */
  missing: string[];
  /** Broker accounts of devices no longer in the database, removed. */
  removed: string[];
}

export interface BrokerAccounts {
  readonly mode: BrokerAccountsMode;
  /** Creates the device's account limited to its own subtree, or, when it exists, sets this password and its role. */
  provisionDevice(deviceId: string, password: string): Promise<void>;
  /** Removes the device's account and disconnects it at once; a device without an account is fine. */
  removeDevice(deviceId: string): Promise<void>;
  /** Makes `password` the device's only broker password and disconnects it, so it logs in again with it. */
  setDevicePassword(deviceId: string, password: string): Promise<void>;
  /** At start: accounts for the database's devices, none for deleted ones. */
  reconcile(deviceIds: readonly string[]): Promise<ReconcileReport>;
  close(): Promise<void>;
}

export const SERVER_ROLE = "orchard-server";
export const DEVICE_ROLE_PREFIX = "orchard-device-";
export const deviceRole = (deviceId: string) => `${DEVICE_ROLE_PREFIX}${deviceId}`;

export function deviceAcls(deviceId: string): Acl[] {
  const acl = deviceBrokerAcl(deviceId);
  return [
    ...acl.publish.map((topic): Acl => ({ acltype: "publishClientSend", topic, allow: true })),
    ...acl.subscribe.map((topic): Acl => ({ acltype: "subscribePattern", topic, allow: true })),
  ];
}

export function serverAcls(): Acl[] {
  return [
    ...SERVER_BROKER_ACL.publish.map((topic): Acl => ({ acltype: "publishClientSend", topic, allow: true })),
    ...SERVER_BROKER_ACL.subscribe.map((topic): Acl => ({ acltype: "subscribePattern", topic, allow: true })),
  ];
}

// ------------------------------------------------------------ embedded

export function embeddedAccounts(broker: { disconnect(clientId: string): void }): BrokerAccounts {
  return {
    mode: "embedded",
    provisionDevice: async () => undefined, // the broker reads the database's hash on every connect
    removeDevice: async (id) => broker.disconnect(id),
    setDevicePassword: async (id) => broker.disconnect(id),
    reconcile: async () => ({ rolesCreated: 0, missing: [], removed: [] }),
    close: async () => undefined,
  };
}

// ------------------------------------------------------------ manual

/** The mosquitto_ctrl commands that give a device its account; `<password>` is the one in the Pi's agent.json. */
export function manualDeviceCommands(url: string, deviceId: string): string[] {
  const ctrl = mosquittoCtrl(url);
  const role = deviceRole(deviceId);
  return [
    `${ctrl} createRole ${role}`,
    ...deviceAcls(deviceId).map((a) => `${ctrl} addRoleACL ${role} ${a.acltype} '${a.topic}' allow`),
    `${ctrl} createClient ${deviceId} -c ${deviceId} -p '<password from the Pi's agent.json>'`,
    `${ctrl} addClientRole ${deviceId} ${role}`,
  ];
}

export function manualServerCommands(url: string, username: string): string[] {
  const ctrl = mosquittoCtrl(url);
  return [
    `${ctrl} createRole ${SERVER_ROLE}`,
    ...serverAcls().map((a) => `${ctrl} addRoleACL ${SERVER_ROLE} ${a.acltype} '${a.topic}' allow`),
    `${ctrl} createClient ${username} -p '<MQTT_PASSWORD>'`,
    `${ctrl} addClientRole ${username} ${SERVER_ROLE}`,
  ];
}

function mosquittoCtrl(url: string): string {
  let host = "localhost";
  let port = "1883";
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = u.port || (u.protocol === "mqtts:" ? "8883" : "1883");
  } catch {
    // keep the defaults
  }
  return `mosquitto_ctrl -h ${host} -p ${port} -u <admin> dynsec`;
}

export function manualAccounts(url: string, serverUsername: string | undefined, log: Logger): BrokerAccounts {
  log.warn(
    "MQTT_URL is set without MQTT_DYNSEC_USERNAME/MQTT_DYNSEC_PASSWORD: device accounts on this broker must be managed by hand " +
      "(each enrollment and deletion logs the mosquitto_ctrl commands to run; credential rotation is unavailable)",
    { broker: redact(url) },
  );
  if (serverUsername) log.warn("the server's own account needs these permissions", { commands: manualServerCommands(url, serverUsername) });
  return {
    mode: "manual",
    provisionDevice: async (id) =>
      log.warn("create this device's broker account by hand", { device: id, commands: manualDeviceCommands(url, id) }),
    removeDevice: async (id) =>
      log.warn("remove this device's broker account by hand", {
        device: id,
        commands: [`${mosquittoCtrl(url)} deleteClient ${id}`, `${mosquittoCtrl(url)} deleteRole ${deviceRole(id)}`],
      }),
    setDevicePassword: async () => {
      throw new AppError(
        "conflict",
        "This server cannot change passwords on its MQTT broker (MQTT_DYNSEC_USERNAME/MQTT_DYNSEC_PASSWORD are not set): rotate the device's credentials by re-enrolling it, or give the server the broker's dynamic-security admin account.",
      );
    },
    reconcile: async () => ({ rolesCreated: 0, missing: [], removed: [] }),
    close: async () => undefined,
  };
}

// ------------------------------------------------------------ Mosquitto dynamic security

const notFound = (err: unknown) => err instanceof DynsecError && /not found/i.test(err.reason);
const exists = (err: unknown) => err instanceof DynsecError && /already exists/i.test(err.reason);

export class DynsecAccounts implements BrokerAccounts {
  readonly mode = "dynsec" as const;

  private constructor(
    private readonly client: DynsecClient,
    private readonly log: Logger,
  ) {}

  static async connect(opts: DynsecOptions, log: Logger): Promise<DynsecAccounts> {
    return new DynsecAccounts(await DynsecClient.connect(opts), log);
  }

  /** The server's own account: created with the `orchard-server` role when missing (an existing one keeps its password). */
  async ensureServerAccount(username: string, password: string): Promise<"created" | "exists"> {
    await this.ensureRole(SERVER_ROLE, serverAcls());
    const existing = await this.client.getClient(username);
    if (!existing) {
      await this.client.createClient({ username, password, roles: [SERVER_ROLE] });
      this.log.info("created the server's broker account", { username, role: SERVER_ROLE });
      return "created";
    }
    if (!existing.roles.some((r) => r.rolename === SERVER_ROLE)) await this.client.addClientRole(username, SERVER_ROLE);
    return "exists";
  }

  /** Creates the role, or adds the ACLs it lacks (Mosquitto disconnects the role's clients when its ACLs change, so only when needed). */
  private async ensureRole(rolename: string, acls: Acl[]): Promise<"created" | "exists"> {
    const current = await this.client.getRoleAcls(rolename);
    if (current === null) {
      try {
        await this.client.createRole(rolename, acls);
        return "created";
      } catch (err) {
        if (!exists(err)) throw err;
        return this.ensureRole(rolename, acls);
      }
    }
    for (const acl of acls) {
      const has = current.some((c) => c.acltype === acl.acltype && c.topic === acl.topic && c.allow === acl.allow);
      if (!has) await this.client.addRoleAcl(rolename, acl);
    }
    return "exists";
  }

  async provisionDevice(deviceId: string, password: string): Promise<void> {
    const role = deviceRole(deviceId);
    await this.ensureRole(role, deviceAcls(deviceId));
    const existing = await this.client.getClient(deviceId);
    if (!existing) {
      try {
        await this.client.createClient({ username: deviceId, password, clientid: deviceId, roles: [role] });
        return;
      } catch (err) {
        if (!exists(err)) throw err;
      }
    }
    await this.client.setClientPassword(deviceId, password);
    if (!existing?.roles.some((r) => r.rolename === role)) await this.client.addClientRole(deviceId, role);
  }

  async removeDevice(deviceId: string): Promise<void> {
    // Deleting the client disconnects it at once; the role goes after it.
    await this.client.deleteClient(deviceId).catch((err: unknown) => {
      if (!notFound(err)) throw err;
    });
    await this.client.deleteRole(deviceRole(deviceId)).catch((err: unknown) => {
      if (!notFound(err)) throw err;
    });
  }

  async setDevicePassword(deviceId: string, password: string): Promise<void> {
    try {
      await this.client.setClientPassword(deviceId, password);
    } catch (err) {
      if (!notFound(err)) throw err;
      this.log.warn("the device had no broker account; created it with its new password", { device: deviceId });
      await this.provisionDevice(deviceId, password);
    }
  }

  async reconcile(deviceIds: readonly string[]): Promise<ReconcileReport> {
    const wanted = new Set(deviceIds);
    const clients = await this.client.listClients();
    const roles = new Set(await this.client.listRoles());
    const report: ReconcileReport = { rolesCreated: 0, missing: [], removed: [] };
    const accounts = new Set(clients.map((c) => c.username));
    for (const id of deviceIds) {
      if (!roles.has(deviceRole(id))) {
        await this.client.createRole(deviceRole(id), deviceAcls(id));
        report.rolesCreated++;
      }
      if (!accounts.has(id)) report.missing.push(id);
    }
    // Only accounts this server made (they carry an orchard-device role) are ever removed.
    for (const c of clients) {
      const ours = c.roles.some((r) => r.rolename === deviceRole(c.username));
      if (ours && !wanted.has(c.username)) {
        await this.removeDevice(c.username);
        report.removed.push(c.username);
      }
    }
    for (const role of roles) {
      if (role.startsWith(DEVICE_ROLE_PREFIX) && !wanted.has(role.slice(DEVICE_ROLE_PREFIX.length))) {
        await this.client.deleteRole(role).catch((err: unknown) => {
          if (!notFound(err)) throw err;
        });
      }
    }
    return report;
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
