import { describe, expect, it } from "vitest";
import { AUDIT_ACTIONS, type AuditAction } from "@orchard/client";
import { auditSentence } from "./audit-sentence.ts";

/** Each action with the detail its recorder writes (routers/*.ts, http/routes.ts). */
const SAMPLES: Record<AuditAction, { actor?: string; via?: string; target?: string | null; detail: Record<string, unknown> | null }> = {
  "enrollment.token_created": { detail: { deviceName: "pi-3", ttlMinutes: 60 } },
  "device.enrolled": { actor: "pi-3", via: "enrollment_token", detail: { name: "pi-3", hostname: "pi-3", arch: "arm64" } },
  "device.renamed": { detail: { from: "pi-3", to: "kitchen-pi" } },
  "device.deleted": { detail: { name: "pi-3" } },
  "device.credentials_rotated": { target: "dev-abc", detail: { state: "pending" } },
  "rollout.created": { detail: { name: "spring", artifactId: "a".repeat(64), devices: 3 } },
  "rollout.paused": { detail: { name: "spring" } },
  "rollout.resumed": { detail: { name: "spring" } },
  "rollout.aborted": { detail: { name: "spring" } },
  "rollout.rolled_back": { detail: { name: "spring" } },
  "rollout.device_rolled_back": { detail: { name: "spring", deviceId: "dev-abc" } },
  "artifact.created": { detail: { name: "gemma", version: "2" } },
  "artifact.deleted": { detail: { name: "gemma", version: "2" } },
  "user.created": { detail: { username: "bob", role: "operator" } },
  "user.role_changed": { detail: { username: "bob", from: "viewer", to: "operator" } },
  "user.password_reset": { detail: { username: "bob" } },
  "user.password_changed": { actor: "bob", detail: null },
  "user.deleted": { detail: { username: "bob", role: "operator" } },
  "api_key.created": { detail: { name: "scraper", owner: "admin", prefix: "orch_ab12" } },
  "api_key.revoked": { detail: { name: "scraper", owner: "admin" } },
  "auth.signed_in": { actor: "alice", via: "login", detail: { ip: "10.0.0.7" } },
  "auth.sessions_revoked": { actor: "alice", detail: { count: 2, others: true } },
  "auth.locked_out": { actor: "bob", via: "login", detail: { ip: "10.0.0.9" } },
};

const sentence = (action: string, s: { actor?: string; via?: string; target?: string | null; detail: Record<string, unknown> | null }) =>
  auditSentence({
    actor: { username: s.actor ?? "admin", via: s.via ?? "session" },
    action,
    target: { type: action.split(".")[0]!, id: s.target ?? "t-1" },
    detail: s.detail,
  });

describe("auditSentence", () => {
  it.each(AUDIT_ACTIONS.map((a) => [a]))("writes %s as a sentence, never as raw JSON", (action) => {
    const s = SAMPLES[action];
    const text = sentence(action, s);
    expect(text.startsWith(`${s.actor ?? "admin"} `)).toBe(true);
    expect(text).not.toMatch(/[{}[\]"]|undefined|null|\?/);
    expect(text).not.toContain(action);
    // Every string the detail holds (but ids, which are shortened) is in the sentence.
    for (const [k, v] of Object.entries(s.detail ?? {})) {
      if (typeof v === "string" && k !== "artifactId" && k !== "state") expect(text, `${action}: ${k}`).toContain(v);
    }
  });

  it("reads as the examples", () => {
    expect(sentence("device.renamed", SAMPLES["device.renamed"])).toBe("admin renamed device pi-3 to kitchen-pi");
    expect(sentence("auth.signed_in", SAMPLES["auth.signed_in"])).toBe("alice signed in from 10.0.0.7");
    expect(sentence("auth.locked_out", SAMPLES["auth.locked_out"])).toBe("bob was locked out after too many failed sign-ins from 10.0.0.9");
    expect(sentence("rollout.created", SAMPLES["rollout.created"])).toBe(
      "admin started rollout spring of model aaaaaaaaaaaa… to 3 devices",
    );
    expect(sentence("user.role_changed", SAMPLES["user.role_changed"])).toBe("admin changed bob's role from viewer to operator");
    expect(sentence("auth.sessions_revoked", { actor: "alice", detail: { count: 1 } })).toBe("alice ended one of their sessions");
  });

  it("copes with details missing or of another shape (entries written by older servers)", () => {
    expect(sentence("device.renamed", { detail: null })).toBe("admin renamed device t-1 to ?");
    expect(sentence("auth.signed_in", { actor: "alice", detail: { ip: null } })).toBe("alice signed in");
    expect(sentence("rollout.paused", { target: "r-9", detail: { name: 42 } })).toBe("admin paused rollout 42");
  });

  it("falls back to the action's name and detail for an action this dashboard does not know", () => {
    expect(sentence("device.teleported", { detail: { to: "mars" } })).toBe('admin: device.teleported {"to":"mars"}');
  });
});
