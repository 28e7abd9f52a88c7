import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { ApiKeyService } from "./api-keys.ts";
import { AuditService } from "./audit.ts";
import { ADMIN_USERNAME, AuthService, LoginFailedError, requireRole } from "./auth.ts";
import { LoginLockedError } from "./login-limiter.ts";
import { UserService } from "./users.ts";

describe.each(DB_KINDS)("users, roles and sessions on %s", (kind) => {
  let db: Database;
  let clock: { now: number };
  let auth: AuthService;
  let users: UserService;
  let keys: ApiKeyService;
  beforeEach(async () => {
    db = await openTestDatabase(kind);
    clock = { now: Date.UTC(2026, 0, 1) };
    auth = new AuthService(db.prisma, { sessionHours: 1, loginMaxFailures: 3, now: () => clock.now }, createLogger("error"));
    await auth.ensureAdmin("admin-password");
    users = new UserService(db.prisma, () => clock.now);
    keys = new ApiKeyService(db.prisma);
  });
  afterEach(async () => {
    await db.close();
  });

  it("gives sessions and API keys the role of their user, and follows role changes at once", async () => {
    const viewer = await users.create({ username: "vera", password: "vera-password", role: "viewer" });
    const { token } = await auth.login("vera", "vera-password");
    const session = await auth.fromSession(token);
    expect(session).toMatchObject({ username: "vera", role: "viewer", via: "session" });
    const { key } = await keys.create({ name: "scraper", userId: viewer.id });
    expect(await auth.fromApiKey(key)).toMatchObject({ username: "vera", role: "viewer", via: "api_key" });
    expect(() => requireRole(session, "operator", "Starting a rollout")).toThrow(
      "Starting a rollout needs the operator role; vera is viewer.",
    );

    await users.setRole(viewer.id, "operator");
    expect(await auth.fromSession(token)).toBeNull(); // the role change ended the session
    expect(await auth.fromApiKey(key)).toMatchObject({ role: "operator" }); // the key follows the role
    const { principal } = await auth.login("vera", "vera-password");
    expect(principal.role).toBe("operator");
  });

  it("refuses an expired session and a forged or tampered cookie", async () => {
    const { token } = await auth.login(ADMIN_USERNAME, "admin-password");
    expect(await auth.fromSession(token)).toMatchObject({ role: "admin" });
    expect(await auth.fromSession("forged-session-token-that-was-never-issued")).toBeNull();
    expect(await auth.fromSession(token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"))).toBeNull();
    clock.now += 3600_000 - 1;
    expect(await auth.fromSession(token)).not.toBeNull();
    clock.now += 1;
    expect(await auth.fromSession(token)).toBeNull();
    expect(await db.prisma.session.count()).toBe(0); // an expired session is deleted when seen
  });

  it("never lets the last admin be demoted or deleted, nor an admin delete themselves", async () => {
    const admin = (await users.list()).find((u) => u.username === ADMIN_USERNAME)!;
    const adminPrincipal = (await auth.login(ADMIN_USERNAME, "admin-password")).principal;
    await expect(users.setRole(admin.id, "operator")).rejects.toThrow("admin is the last admin; make another user admin first.");
    const other = await users.create({ username: "olga", password: "olga-password", role: "admin" });
    await expect(users.remove(other.id, { ...adminPrincipal, userId: other.id })).rejects.toThrow("You cannot delete your own account");
    await users.setRole(admin.id, "viewer");
    const olga = (await auth.login("olga", "olga-password")).principal;
    await expect(users.remove(other.id, adminPrincipal)).rejects.toThrow("olga is the last admin");
    expect((await users.remove(admin.id, olga)).username).toBe(ADMIN_USERNAME);
    expect((await users.list()).map((u) => [u.username, u.role])).toEqual([["olga", "admin"]]);
  });

  it("refuses duplicate and reserved usernames with a clear message", async () => {
    await users.create({ username: "sam", password: "sam-password", role: "viewer" });
    await expect(users.create({ username: "sam", password: "x-password", role: "admin" })).rejects.toThrow(
      'There is already a user "sam".',
    );
    await expect(users.create({ username: "bootstrap-key", password: "x-password", role: "viewer" })).rejects.toThrow("reserved");
    expect((await users.list()).find((u) => u.username === "sam")?.role).toBe("viewer");
  });

  it("resets and changes passwords, ending the right sessions", async () => {
    const u = await users.create({ username: "pat", password: "pat-password", role: "operator" });
    const first = await auth.login("pat", "pat-password");
    const second = await auth.login("pat", "pat-password");
    await expect(
      users.changeOwnPassword(first.principal, { currentPassword: "wrong-one", newPassword: "pat-new-password" }, first.token),
    ).rejects.toThrow("The current password is wrong.");
    await users.changeOwnPassword(first.principal, { currentPassword: "pat-password", newPassword: "pat-new-password" }, first.token);
    expect(await auth.fromSession(first.token)).not.toBeNull(); // the session used to change it stays
    expect(await auth.fromSession(second.token)).toBeNull();
    await expect(auth.login("pat", "pat-password")).rejects.toThrow("Wrong username or password.");
    await users.resetPassword(u.id, "reset-password");
    expect(await auth.fromSession(first.token)).toBeNull();
    await expect(auth.login("pat", "reset-password")).resolves.toBeTruthy();
  });

  it("lets users list and revoke only their own keys, admins everyone's; a revoked key stops at once", async () => {
    const v = await users.create({ username: "vic", password: "vic-password", role: "viewer" });
    const vic = (await auth.login("vic", "vic-password")).principal;
    const admin = (await auth.login(ADMIN_USERNAME, "admin-password")).principal;
    const mine = await keys.create({ name: "vic's", userId: v.id });
    const theirs = await keys.create({ name: "admin's", userId: admin.userId });
    expect((await keys.list(vic)).map((k) => k.name)).toEqual(["vic's"]);
    expect((await keys.list(admin)).map((k) => k.name).sort()).toEqual(["admin's", "vic's"]);
    await expect(keys.revoke(theirs.summary.id, vic)).rejects.toThrow("No API key with that id.");
    expect(await auth.fromApiKey(theirs.key)).not.toBeNull();
    await keys.revoke(mine.summary.id, admin);
    expect(await auth.fromApiKey(mine.key)).toBeNull();
  });

  it("locks sign-in from that address after repeated failures, even with the right password, until the window passes", async () => {
    for (let i = 0; i < 2; i++) await expect(auth.login(ADMIN_USERNAME, "wrong", { ip: "10.0.0.1" })).rejects.toThrow(LoginFailedError);
    const third = await auth.login(ADMIN_USERNAME, "wrong", { ip: "10.0.0.1" }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(LoginFailedError);
    expect((third as LoginFailedError).lockedOut).toBe(true);
    await expect(auth.login(ADMIN_USERNAME, "admin-password", { ip: "10.0.0.1" })).rejects.toThrow(LoginLockedError);
    // The lock is the username's at that address (login-limiter.ts): from another address the right password works.
    await expect(auth.login(ADMIN_USERNAME, "admin-password", { ip: "10.0.0.2" })).resolves.toBeTruthy();
    clock.now += 15 * 60_000;
    await expect(auth.login(ADMIN_USERNAME, "admin-password", { ip: "10.0.0.1" })).resolves.toBeTruthy();
  });

  it("records audit entries and pages through them newest first, filtered by action or actor", async () => {
    const audit = new AuditService(db.prisma, createLogger("error"));
    const actor = { userId: null, username: "admin", via: "session" as const };
    for (let i = 0; i < 5; i++) await audit.record(actor, "device.renamed", { type: "device", id: `pi-${i}` }, { to: `n${i}` });
    await audit.record(
      { userId: null, username: "eve", via: "login" },
      "auth.locked_out",
      { type: "user", id: "admin" },
      { ip: "10.0.0.1" },
    );
    const page1 = await audit.list({ limit: 4 });
    expect(page1.items.map((e) => e.action)).toEqual(["auth.locked_out", "device.renamed", "device.renamed", "device.renamed"]);
    expect(page1.items[1]).toMatchObject({
      actor: { username: "admin", via: "session" },
      target: { type: "device", id: "pi-4" },
      detail: { to: "n4" },
    });
    const page2 = await audit.list({ limit: 4, cursor: page1.nextCursor! });
    expect(page2.items.map((e) => e.target.id)).toEqual(["pi-1", "pi-0"]);
    expect(page2.nextCursor).toBeNull();
    expect((await audit.list({ limit: 100, action: "auth.locked_out" })).items).toHaveLength(1);
    expect((await audit.list({ limit: 100, actor: "eve" })).items[0]?.detail).toEqual({ ip: "10.0.0.1" });
  });
});
