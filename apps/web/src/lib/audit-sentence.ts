/**
 * An audit entry as one sentence, from its action and detail: "admin renamed device pi-3 to
 * kitchen-pi", "alice signed in from 10.0.0.7", "bob was locked out …". One phrase per action
 * in AUDIT_ACTIONS (the Record below makes a missing one a type error); an action this
 * dashboard does not know (a newer server) falls back to the action's name and its detail.
 */
import { AUDIT_ACTIONS, type AuditAction } from "@orchard/client";

export interface AuditEntryLike {
  actor: { username: string; via: string };
  action: string;
  target: { type: string; id: string | null };
  detail: Record<string, unknown> | null;
}

type Detail = Record<string, unknown>;

function text(d: Detail, key: string): string | null {
  const v = d[key];
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return null;
}

function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

const fromIp = (d: Detail) => (text(d, "ip") ? ` from ${text(d, "ip")}` : "");
const shortId = (id: string | null) => (id ? (id.length > 16 ? `${id.slice(0, 12)}…` : id) : "?");
const model = (d: Detail) => [text(d, "name"), text(d, "version")].filter(Boolean).join(" ") || "a model";
const rollout = (d: Detail, e: AuditEntryLike) => `rollout ${text(d, "name") ?? shortId(e.target.id)}`;
const username = (d: Detail, e: AuditEntryLike) => text(d, "username") ?? shortId(e.target.id);

/** The rest of the sentence after the actor's name. */
const PHRASES: Record<AuditAction, (d: Detail, e: AuditEntryLike) => string> = {
  "enrollment.token_created": (d) => {
    const minutes = text(d, "ttlMinutes");
    const name = text(d, "deviceName");
    return `created an enrollment token${name ? ` for a device named ${name}` : ""}${minutes ? ` (valid ${minutes} min)` : ""}`;
  },
  "device.enrolled": (d) => {
    const about = [text(d, "hostname") ? `hostname ${text(d, "hostname")}` : null, text(d, "arch")].filter(Boolean).join(", ");
    return `enrolled as a device with an enrollment token${about ? ` (${about})` : ""}`;
  },
  "device.renamed": (d, e) => `renamed device ${text(d, "from") ?? shortId(e.target.id)} to ${text(d, "to") ?? "?"}`,
  "device.deleted": (d, e) => `deleted device ${text(d, "name") ?? shortId(e.target.id)}`,
  "device.credentials_rotated": (d, e) =>
    `gave device ${shortId(e.target.id)} new credentials${text(d, "state") === "pending" ? " (the old ones work until it confirms)" : ""}`,
  "rollout.created": (d, e) => {
    const devices = typeof d.devices === "number" ? ` to ${count(d.devices, "device")}` : "";
    return `started ${rollout(d, e)}${text(d, "artifactId") ? ` of model ${shortId(text(d, "artifactId"))}` : ""}${devices}`;
  },
  "rollout.paused": (d, e) => `paused ${rollout(d, e)}`,
  "rollout.resumed": (d, e) => `resumed ${rollout(d, e)}`,
  "rollout.aborted": (d, e) => `aborted ${rollout(d, e)}`,
  "rollout.rolled_back": (d, e) => `rolled back every device of ${rollout(d, e)}`,
  "rollout.device_rolled_back": (d, e) => `rolled device ${shortId(text(d, "deviceId"))} back to its previous model in ${rollout(d, e)}`,
  "artifact.created": (d) => `added model ${model(d)}`,
  "artifact.deleted": (d) => `deleted model ${model(d)}`,
  "user.created": (d, e) => `created user ${username(d, e)}${text(d, "role") ? ` (${text(d, "role")})` : ""}`,
  "user.role_changed": (d, e) => `changed ${username(d, e)}'s role from ${text(d, "from") ?? "?"} to ${text(d, "to") ?? "?"}`,
  "user.password_reset": (d, e) => `reset ${username(d, e)}'s password`,
  "user.password_changed": () => "changed their password (their other sessions ended)",
  "user.deleted": (d, e) => `deleted user ${username(d, e)}${text(d, "role") ? ` (${text(d, "role")})` : ""}`,
  "api_key.created": (d) =>
    `created API key ${text(d, "name") ?? "?"}${text(d, "prefix") ? ` (${text(d, "prefix")}…)` : ""}${text(d, "owner") ? ` for ${text(d, "owner")}` : ""}`,
  "api_key.revoked": (d) => `revoked API key ${text(d, "name") ?? "?"}${text(d, "owner") ? ` of ${text(d, "owner")}` : ""}`,
  "auth.signed_in": (d) => `signed in${fromIp(d)}`,
  "auth.sessions_revoked": (d) => {
    const n = typeof d.count === "number" ? d.count : 1;
    return d.others === true
      ? `signed out everywhere else (${count(n, "session")} ended)`
      : `ended ${n === 1 ? "one" : n} of their sessions`;
  },
  "auth.locked_out": (d) => `was locked out after too many failed sign-ins${fromIp(d)}`,
};

const KNOWN = new Set<string>(AUDIT_ACTIONS);

export function isKnownAuditAction(action: string): action is AuditAction {
  return KNOWN.has(action);
}

export function auditSentence(e: AuditEntryLike): string {
  const d = e.detail ?? {};
  if (isKnownAuditAction(e.action)) return `${e.actor.username} ${PHRASES[e.action](d, e)}`;
  return `${e.actor.username}: ${e.action}${e.detail ? ` ${JSON.stringify(e.detail)}` : ""}`;
}
