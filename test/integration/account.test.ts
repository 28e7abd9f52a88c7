/**
 * The account procedures through the real server (tRPC over HTTP, session cookies):
 * a user lists their own sessions (address and User-Agent kept from the sign-in, this
 * one marked), ends another one (its cookie is refused from the next request on) or all
 * others, and cannot end someone else's; sign-ins are in the audit log; the bootstrap
 * key shows to admins on the API keys page's procedure, never the key itself.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { removeDir, startServer, type TestServer } from "../support/harness.ts";

let server: TestServer;

interface Session {
  id: string;
  createdAt: number;
  lastSeenAt: number;
  ip: string | null;
  userAgent: string | null;
  current: boolean;
}

async function signIn(username: string, password: string, userAgent: string): Promise<string> {
  const res = await fetch(`${server.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: server.url, "user-agent": userAgent },
    body: JSON.stringify({ username, password }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

async function query<T>(name: string, cookie: string): Promise<{ status: number; data: T; message?: string }> {
  const res = await fetch(`${server.url}/api/trpc/${name}`, { headers: { cookie } });
  const body = (await res.json()) as { result?: { data: T }; error?: { message: string } };
  return { status: res.status, data: body.result?.data as T, message: body.error?.message };
}

async function mutate<T>(name: string, cookie: string, input?: unknown): Promise<{ status: number; data: T; message?: string }> {
  const res = await fetch(`${server.url}/api/trpc/${name}`, {
    method: "POST",
    headers: { "content-type": "application/json", cookie, origin: server.url },
    ...(input === undefined ? {} : { body: JSON.stringify(input) }),
  });
  const body = (await res.json()) as { result?: { data: T }; error?: { message: string } };
  return { status: res.status, data: body.result?.data as T, message: body.error?.message };
}

beforeAll(async () => {
  server = await startServer();
  await server.client.users.create.mutate({ username: "alice", password: "alice-password", role: "viewer" });
  await server.client.users.create.mutate({ username: "bob", password: "bob-password", role: "operator" });
});

afterAll(async () => {
  await server?.stop();
  if (server) await removeDir(server.dataDir);
});

describe("account sessions", () => {
  it("lists only your own sessions, with where they came from and this one marked", async () => {
    const laptop = await signIn("alice", "alice-password", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36");
    const phone = await signIn("alice", "alice-password", "Mozilla/5.0 (iPhone) Version/17.0 Mobile Safari/604.1");
    await signIn("bob", "bob-password", "bob-browser");
    const mine = await query<Session[]>("account.sessions", laptop);
    expect(mine.status).toBe(200);
    expect(mine.data).toHaveLength(2);
    expect(mine.data.filter((s) => s.current).map((s) => s.userAgent)).toEqual([
      "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
    ]);
    expect(mine.data.map((s) => s.userAgent).sort()).toEqual([
      "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
      "Mozilla/5.0 (iPhone) Version/17.0 Mobile Safari/604.1",
    ]);
    for (const s of mine.data) {
      expect(s.ip).toBe("127.0.0.1");
      expect(s.id).toMatch(/^[0-9a-f]{64}$/);
    }
    // The same list from the phone marks the phone.
    const fromPhone = await query<Session[]>("account.sessions", phone);
    expect(fromPhone.data.find((s) => s.current)?.userAgent).toContain("iPhone");
  });

  it("ends another of your sessions: its cookie is refused at its next request; this one goes on", async () => {
    const keep = await signIn("alice", "alice-password", "keep");
    const other = await signIn("alice", "alice-password", "other");
    expect((await query("auth.me", other)).status).toBe(200);
    const target = (await query<Session[]>("account.sessions", keep)).data.find((s) => s.userAgent === "other")!;
    const revoked = await mutate("account.revokeSession", keep, { id: target.id });
    expect(revoked.status, revoked.message).toBe(200);
    expect((await query("auth.me", other)).status).toBe(401);
    expect((await query("auth.me", keep)).status).toBe(200);
    expect((await query<Session[]>("account.sessions", keep)).data.some((s) => s.id === target.id)).toBe(false);
    // This session is ended by signing out, not here.
    const self = (await query<Session[]>("account.sessions", keep)).data.find((s) => s.current)!;
    const refused = await mutate("account.revokeSession", keep, { id: self.id });
    expect(refused.status).toBe(400);
    expect(refused.message).toBe("That is this session: sign out to end it.");
  });

  it("cannot end someone else's session, not even as an admin: it is answered as unknown and keeps working", async () => {
    const bob = await signIn("bob", "bob-password", "bob-laptop");
    const bobSession = (await query<Session[]>("account.sessions", bob)).data.find((s) => s.current)!;
    const alice = await signIn("alice", "alice-password", "alice-laptop");
    const admin = await signIn("admin", server.adminPassword, "admin-laptop");
    for (const cookie of [alice, admin]) {
      const refused = await mutate("account.revokeSession", cookie, { id: bobSession.id });
      expect(refused.status).toBe(404);
      expect(refused.message).toBe("No such session of yours (it may have ended already).");
    }
    expect((await query("auth.me", bob)).status).toBe(200);
    // An admin's own list holds only the admin's sessions.
    const adminSessions = (await query<Session[]>("account.sessions", admin)).data;
    expect(adminSessions.length).toBeGreaterThan(0);
    expect(adminSessions.some((s) => s.id === bobSession.id)).toBe(false);
  });

  it("signs you out everywhere else, and says how many sessions ended", async () => {
    const here = await signIn("bob", "bob-password", "here");
    const there = await signIn("bob", "bob-password", "there");
    const before = (await query<Session[]>("account.sessions", here)).data.length;
    const ended = await mutate<{ count: number }>("account.revokeOtherSessions", here);
    expect(ended.status, ended.message).toBe(200);
    expect(ended.data.count).toBe(before - 1);
    expect((await query("auth.me", there)).status).toBe(401);
    expect((await query<Session[]>("account.sessions", here)).data.map((s) => s.userAgent)).toEqual(["here"]);
    // With an API key there is no "this session" to keep: refused, and nothing ends.
    const key = await mutate<{ key: string }>("apiKeys.create", here, { name: "bob's script" });
    const withKey = await fetch(`${server.url}/api/trpc/account.revokeOtherSessions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key.data.key}`, "content-type": "application/json" },
    });
    expect(withKey.status).toBe(400);
    expect(((await withKey.json()) as { error: { message: string } }).error.message).toBe(
      "Sign in with a browser to end your other sessions: an API key is no session, so it has no others.",
    );
    expect((await query("auth.me", here)).status).toBe(200);
  });

  it("changing your password keeps ending your other sessions", async () => {
    const here = await signIn("alice", "alice-password", "pw-here");
    const there = await signIn("alice", "alice-password", "pw-there");
    const changed = await mutate("auth.changePassword", here, { currentPassword: "alice-password", newPassword: "alice-password-2" });
    expect(changed.status, changed.message).toBe(200);
    expect((await query("auth.me", there)).status).toBe(401);
    expect((await query<Session[]>("account.sessions", here)).data.map((s) => s.userAgent)).toEqual(["pw-here"]);
  });
});

describe("audit and the bootstrap key", () => {
  it("logs each successful sign-in with its address, and writes the revocations", async () => {
    await signIn("bob", "bob-password", "audited");
    const { items } = await server.client.audit.list.query({ action: "auth.signed_in", actor: "bob" });
    expect(items.length).toBeGreaterThan(0);
    expect(items[0]).toMatchObject({ action: "auth.signed_in", actor: { username: "bob", via: "session" }, detail: { ip: "127.0.0.1" } });
    const revoked = await server.client.audit.list.query({ action: "auth.sessions_revoked" });
    expect(revoked.items.map((e) => [e.actor.username, e.detail])).toEqual(
      expect.arrayContaining([
        ["alice", { count: 1 }],
        ["bob", expect.objectContaining({ others: true })],
      ]),
    );
  });

  it("shows admins that the bootstrap key is configured, by its last 4 characters only", async () => {
    const info = await server.client.apiKeys.bootstrap.query();
    // The harness's ORCHARD_API_KEY, which this client uses: used just now.
    expect(info).toEqual({ last4: server.apiKey.slice(-4), lastUsedAt: expect.any(Number) });
    expect(JSON.stringify(info)).not.toContain(server.apiKey.slice(0, -4));
    const alice = await signIn("alice", "alice-password-2", "bootstrap-check");
    expect((await query("apiKeys.bootstrap", alice)).data).toBeNull();
  });
});
