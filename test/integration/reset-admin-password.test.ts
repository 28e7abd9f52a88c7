/**
 * A lost admin password, through real processes: a server started without
 * ORCHARD_ADMIN_PASSWORD prints a generated one once; on the embedded database the reset
 * refuses while that server holds it; stopped, `npm run reset-admin-password` (server.ts
 * reset-admin-password) prints a new one, ends admin's sessions and writes an audit entry;
 * the next start prints how to recover instead of a password, the new password signs in
 * and the old one is refused. The same on PostgreSQL when ORCHARD_TEST_POSTGRES_URL is
 * set (there the server may keep running); a deleted admin account is created again.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createPostgresDatabase } from "../../apps/web/test/db.ts";
import { queryServerDatabase } from "../support/server-db.ts";
import { ROOT, removeDir, startServer, type TestServer } from "../support/harness.ts";

const KINDS = process.env.ORCHARD_TEST_POSTGRES_URL ? (["pglite", "postgresql"] as const) : (["pglite"] as const);
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

/** `tsx apps/web/server.ts reset-admin-password` as `npm run reset-admin-password` runs it, on the server's data. */
function reset(server: TestServer, args: string[] = [], stdin?: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "apps/web/server.ts"), "reset-admin-password", ...args], {
    cwd: ROOT,
    env: { ...process.env, ORCHARD_DATA: server.dataDir, DATABASE_URL: server.databaseUrl ?? "", ORCHARD_ADMIN_PASSWORD: undefined },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.end(stdin ?? "");
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })));
}

async function signIn(server: TestServer, password: string): Promise<Response> {
  return fetch(`${server.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: server.url },
    body: JSON.stringify({ username: "admin", password }),
  });
}

/** Whether a session cookie is still signed in (auth.me answers 401 without a session). */
async function sessionWorks(server: TestServer, cookie: string): Promise<boolean> {
  return (await fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie } })).status === 200;
}

describe.each(KINDS)("reset-admin-password on %s", (kind) => {
  it("sets a new password once printed, ends the sessions, audits it; the next start says how to recover", async () => {
    const databaseUrl = kind === "postgresql" ? await createPostgresDatabase() : undefined;
    const first = await startServer({ databaseUrl, env: { ORCHARD_ADMIN_PASSWORD: undefined } });
    dirs.push(first.dataDir);
    const oldPassword = (await first.proc.waitForOutput(/as "admin" with password: (\S+)/))[1]!;
    const signedIn = await signIn(first, oldPassword);
    expect(signedIn.status, await signedIn.clone().text()).toBe(200);
    const cookie = signedIn.headers.get("set-cookie")!.split(";")[0]!;
    expect(await sessionWorks(first, cookie)).toBe(true);

    if (kind === "pglite") {
      const refused = await reset(first);
      expect(refused.code, refused.out).toBe(1);
      expect(refused.err).toContain(`the embedded database in ${first.dataDir} is open in another process (pid ${first.proc.pid}`);
      expect(refused.err).toContain("stop it first");
      expect((await signIn(first, oldPassword)).status, "the refused reset changed nothing").toBe(200);
    }
    await first.stop();

    const done = await reset(first);
    expect(done.code, done.err).toBe(0);
    const newPassword = /New password \(shown only now\): (\S+)/.exec(done.out)?.[1];
    expect(newPassword, done.out).toBeDefined();
    expect(newPassword).not.toBe(oldPassword);
    expect(done.out).toMatch(/"admin" account in .* was given a new password; [1-9]\d* session\(s\) ended/);

    const second = await startServer({ databaseUrl, dataDir: first.dataDir, env: { ORCHARD_ADMIN_PASSWORD: undefined } });
    await second.proc.waitForOutput(
      /sign in at .* as \\?"admin\\?" \(password lost\? stop the server and run `npm run reset-admin-password`\)/,
    );
    expect(second.proc.output, "no password printed on a second start").not.toMatch(/with password: /);
    expect((await signIn(second, oldPassword)).status, "the old password").toBe(401);
    expect((await signIn(second, newPassword!)).status, "the new password").toBe(200);
    expect(await sessionWorks(second, cookie), "the session signed in with the old password ended").toBe(false);

    const audit = await second.client.audit.list.query({ action: "user.password_reset" });
    expect(audit.items[0]).toMatchObject({
      actor: { userId: null, username: "reset-admin-password", via: "console" },
      target: { type: "user" },
      detail: { username: "admin", created: false },
    });
    await second.stop();
  });

  it("creates a deleted admin account again, with the password given on standard input", async () => {
    const databaseUrl = kind === "postgresql" ? await createPostgresDatabase() : undefined;
    const server = await startServer({ databaseUrl });
    dirs.push(server.dataDir);
    await server.stop();
    await queryServerDatabase(server, `DELETE FROM "Session" WHERE "userId" IN (SELECT id FROM "User" WHERE username = 'admin')`);
    await queryServerDatabase(server, `DELETE FROM "User" WHERE username = 'admin'`);
    expect(await queryServerDatabase(server, `SELECT id FROM "User" WHERE username = 'admin'`)).toHaveLength(0);

    const tooShort = await reset(server, ["--password-stdin"], "short\n");
    expect(tooShort.code).toBe(1);
    expect(tooShort.err).toContain("A password needs at least 8 characters.");

    const done = await reset(server, ["--password-stdin"], "a-chosen-password\n");
    expect(done.code, done.err).toBe(0);
    expect(done.out).toContain('"admin" account');
    expect(done.out).toContain("was created again");
    expect(done.out, "a given password is not printed").not.toContain("a-chosen-password");

    const again = await startServer({ databaseUrl, dataDir: server.dataDir, env: { ORCHARD_ADMIN_PASSWORD: undefined } });
    expect((await signIn(again, "a-chosen-password")).status).toBe(200);
    await again.stop();
  });
});

describe("reset-admin-password refusals", () => {
  it("refuses while ORCHARD_ADMIN_PASSWORD is set (the server would set it back at the next start)", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "apps/web/server.ts"), "reset-admin-password"], {
      cwd: ROOT,
      env: { ...process.env, ORCHARD_DATA: "/nonexistent-orchard", ORCHARD_ADMIN_PASSWORD: "long-enough-password", DATABASE_URL: "" },
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(1);
    expect(err).toContain("ORCHARD_ADMIN_PASSWORD is set: the server sets admin's password to it at every start");
  });
});
