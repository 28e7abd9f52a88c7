import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { ADMIN_USERNAME, AuthService } from "./auth.ts";

describe.each(DB_KINDS)("auth on %s", (kind) => {
  let db: Database;
  beforeEach(async () => {
    db = await openTestDatabase(kind);
  });
  afterEach(async () => {
    await db.close();
  });
  const service = (sessionHours = 1, bootstrapApiKey?: string) =>
    new AuthService(db.prisma, { sessionHours, bootstrapApiKey }, createLogger("error"));

  it("generates the first admin password once and never stores it in clear", async () => {
    const auth = service();
    const first = await auth.ensureAdmin(undefined);
    expect(first.created).toBe(true);
    expect(first.generatedPassword).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect(await auth.ensureAdmin(undefined)).toEqual({ created: false });
    const row = await db.prisma.user.findUniqueOrThrow({ where: { username: ADMIN_USERNAME } });
    expect(row.passwordHash).toMatch(/^scrypt\$/);
    expect(row.passwordHash).not.toContain(first.generatedPassword);
    const { principal } = await auth.login(ADMIN_USERNAME, first.generatedPassword!);
    expect(principal.username).toBe(ADMIN_USERNAME);
  });

  it("takes the password from ORCHARD_ADMIN_PASSWORD and follows it when it changes", async () => {
    const auth = service();
    await auth.ensureAdmin("first-password");
    await expect(auth.login(ADMIN_USERNAME, "first-password")).resolves.toBeTruthy();
    await auth.ensureAdmin("second-password");
    await expect(auth.login(ADMIN_USERNAME, "first-password")).rejects.toThrow("Wrong username or password.");
    await expect(auth.login(ADMIN_USERNAME, "second-password")).resolves.toBeTruthy();
    await expect(auth.login("nobody", "second-password")).rejects.toThrow("Wrong username or password.");
  });

  it("resolves sessions until they expire or are logged out", async () => {
    const auth = service();
    await auth.ensureAdmin("admin-password");
    const { token } = await auth.login(ADMIN_USERNAME, "admin-password");
    expect(await auth.fromSession(token)).toMatchObject({ username: ADMIN_USERNAME, via: "session" });
    expect(await auth.fromSession(`${token}x`)).toBeNull();
    await auth.logout(token);
    expect(await auth.fromSession(token)).toBeNull();

    const expiring = service(-1); // sessions that are already expired when created
    const { token: old } = await expiring.login(ADMIN_USERNAME, "admin-password");
    expect(await expiring.fromSession(old)).toBeNull();
    expect(await db.prisma.session.count()).toBe(0);
  });

  it("accepts the bootstrap API key and refuses others", async () => {
    const auth = service(1, "bootstrap-key-0123456789");
    expect(await auth.fromApiKey("bootstrap-key-0123456789")).toMatchObject({ via: "bootstrap_key", role: "admin" });
    expect(await auth.fromApiKey("bootstrap-key-012345678")).toBeNull();
    expect(await service().fromApiKey("bootstrap-key-0123456789")).toBeNull();
  });
});
