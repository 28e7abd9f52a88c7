/**
 * Access control by enumeration, against the real server process: every tRPC procedure
 * declares a role (or is on the public list) and refuses callers without a session (401)
 * and callers one role below (403); every REST endpoint in the access table does the same;
 * socket.io needs a viewer and, with a cookie, the dashboard's own origin. Plus what goes
 * around roles: revoked keys, role changes ending sessions, CSRF, the login limit, body limits,
 * and the audit log of it all.
 */
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appRouter } from "../../apps/web/src/server/trpc/root.ts";
import { REST_ROUTES } from "../../apps/web/src/server/http/access.ts";
import { ROLES, type Role } from "../../apps/web/src/server/services/auth.ts";
import { createOrchardClient, type OrchardClient } from "../../apps/cli/src/client.ts";
import { connectSocket, removeDir, startServer, waitFor, type FleetSocket, type TestServer } from "../support/harness.ts";
import { io } from "socket.io-client";

/** Procedures anyone may call. */
const PUBLIC_PROCEDURES = new Set(["auth.login"]);
const MAX_FAILURES = 3;

let server: TestServer;
/** An API key and a signed-in session cookie per role. */
const keys = {} as Record<Role, string>;
const cookies = {} as Record<Role, string>;
const passwords = { viewer: "viewer-password", operator: "operator-password", admin: "" } as Record<Role, string>;
const usernames = { viewer: "vicky", operator: "otto", admin: "admin" } as Record<Role, string>;

async function signIn(username: string, password: string): Promise<Response> {
  return fetch(`${server.url}/api/trpc/auth.login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: server.url },
    body: JSON.stringify({ username, password }),
  });
}

async function cookieOf(username: string, password: string): Promise<string> {
  const res = await signIn(username, password);
  expect(res.status, await res.clone().text()).toBe(200);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

type Procedure = { _def: { type: "query" | "mutation" | "subscription"; meta?: { minRole?: Role } } };
const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, Procedure>);

/** Calls a procedure with no input, as the dashboard's client would, with the given headers. */
function call(name: string, type: string, headers: Record<string, string> = {}): Promise<Response> {
  return type === "query"
    ? fetch(`${server.url}/api/trpc/${name}`, { headers })
    : fetch(`${server.url}/api/trpc/${name}`, { method: "POST", headers: { "content-type": "application/json", ...headers } });
}

const bearer = (role: Role) => ({ authorization: `Bearer ${keys[role]}` });
const below = (role: Role): Role | null => ROLES[ROLES.indexOf(role) - 1] ?? null;
const clientFor = (role: Role): OrchardClient => createOrchardClient({ url: server.url, apiKey: keys[role] });

beforeAll(async () => {
  server = await startServer({ env: { ORCHARD_LOGIN_MAX_FAILURES: String(MAX_FAILURES) } });
  passwords.admin = server.adminPassword;
  for (const role of ["viewer", "operator"] as const) {
    await server.client.users.create.mutate({ username: usernames[role], password: passwords[role], role });
  }
  for (const role of ROLES) {
    cookies[role] = await cookieOf(usernames[role], passwords[role]);
    const res = await fetch(`${server.url}/api/trpc/apiKeys.create`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie: cookies[role], origin: server.url },
      body: JSON.stringify({ name: `${role} key` }),
    });
    expect(res.status).toBe(200);
    keys[role] = ((await res.json()) as { result: { data: { key: string } } }).result.data.key;
  }
});

afterAll(async () => {
  await server?.stop();
  if (server) await removeDir(server.dataDir);
});

describe("tRPC procedures", () => {
  it("every procedure declares its lowest role, or is on the public list", () => {
    expect(procedures.length).toBeGreaterThan(40);
    const undeclared = procedures.filter(([name, p]) => !p._def.meta?.minRole && !PUBLIC_PROCEDURES.has(name)).map(([name]) => name);
    expect(undeclared).toEqual([]);
  });

  it("refuses every non-public procedure without credentials (401) and one role below its own (403)", async () => {
    for (const [name, p] of procedures) {
      if (PUBLIC_PROCEDURES.has(name)) continue;
      const minRole = p._def.meta!.minRole!;
      const anonymous = await call(name, p._def.type);
      expect(anonymous.status, `${name} without credentials`).toBe(401);
      expect(((await anonymous.json()) as { error: { data: { code: string } } }).error.data.code).toBe("UNAUTHORIZED");
      const lower = below(minRole);
      if (lower) {
        for (const headers of [bearer(lower), { cookie: cookies[lower], origin: server.url }]) {
          const refused = await call(name, p._def.type, headers);
          expect(refused.status, `${name} as ${lower}`).toBe(403);
          const body = (await refused.json()) as { error: { message: string; data: { code: string } } };
          expect(body.error.data.code).toBe("FORBIDDEN");
          expect(body.error.message).toBe(`This needs the ${minRole} role; ${usernames[lower]} is ${lower}.`);
        }
      }
      // With the role itself the call gets past the check (to the input, or all the way).
      const allowed = await call(name, p._def.type, bearer(minRole));
      expect([401, 403], `${name} as ${minRole}: ${await allowed.clone().text()}`).not.toContain(allowed.status);
    }
  });

  it("a viewer's key cannot start a rollout, and says why", async () => {
    await expect(clientFor("viewer").rollouts.create.mutate({ artifactId: "0".repeat(64), deviceIds: ["pi-x"] })).rejects.toThrow(
      "This needs the operator role; vicky is viewer.",
    );
    await expect(clientFor("operator").users.list.query()).rejects.toThrow("This needs the admin role; otto is operator.");
    expect((await clientFor("viewer").auth.me.query()).role).toBe("viewer");
  });
});

describe("REST endpoints", () => {
  it("every endpoint in the access table refuses callers without its role, and unknown API paths are 404", async () => {
    for (const route of REST_ROUTES) {
      expect(route.pattern.test(route.example), route.path).toBe(true);
      if (!ROLES.includes(route.access as Role)) continue;
      const role = route.access as Role;
      for (const method of route.methods) {
        const url = `${server.url}${route.example}`;
        const anonymous = await fetch(url, { method });
        expect(anonymous.status, `${method} ${route.path} without credentials`).toBe(401);
        const lower = below(role);
        if (lower) {
          const refused = await fetch(url, { method, headers: bearer(lower) });
          expect(refused.status, `${method} ${route.path} as ${lower}`).toBe(403);
          if (method !== "HEAD") expect(await refused.text()).toContain(`needs the ${role} role; ${usernames[lower]} is ${lower}`);
        }
        const allowed = await fetch(url, { method, headers: bearer(role) });
        expect([401, 403], `${method} ${route.path} as ${role}`).not.toContain(allowed.status);
      }
    }
    // Device endpoints take device credentials, not user keys.
    expect((await fetch(`${server.url}/api/device/artifact-key`, { headers: bearer("admin") })).status).toBe(401);
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
    const unknown = await fetch(`${server.url}/api/not-a-route`, { headers: bearer("admin") });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: { code: "not_found", message: "No API endpoint /api/not-a-route." } });
  });

  it("/v1 chat needs an operator, in OpenAI's error shape", async () => {
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...bearer("viewer"), "content-type": "application/json" },
      body: JSON.stringify({ model: "device:pi-x", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { type: "permission_error", message: expect.stringContaining("operator role") } });
    expect((await fetch(`${server.url}/v1/models`, { headers: bearer("viewer") })).status).toBe(200);
  });
});

describe("socket.io", () => {
  it("needs a viewer, and with a session cookie the dashboard's own origin", async () => {
    await expect(connectSocket(server, null)).rejects.toThrow(/unauthorized/);
    const viewer = await connectSocket(server, cookies.viewer);
    expect(viewer.connected).toBe(true);
    viewer.disconnect();
    const connect = (headers: Record<string, string>) =>
      new Promise<string>((resolve) => {
        const s = io(server.url, { transports: ["websocket"], extraHeaders: headers, reconnection: false });
        s.once("connect", () => {
          s.disconnect();
          resolve("connected");
        });
        s.once("connect_error", (err) => {
          s.disconnect();
          resolve(err.message);
        });
      });
    expect(await connect({ cookie: cookies.viewer, origin: "https://evil.example" })).toMatch(/^Cross-site request refused/);
    expect(await connect({ cookie: cookies.viewer })).toMatch(/^Cross-site request refused/);
    expect(await connect({ cookie: "orchard_session=forged" })).toBe("unauthorized: sign in first");
    expect(await connect(bearer("viewer"))).toBe("connected"); // an API key carries no ambient credential
  });
});

describe("sessions and keys", () => {
  it("refuses a forged session cookie", async () => {
    const res = await fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie: "orchard_session=forged-token" } });
    expect(res.status).toBe(401);
    const page = await fetch(`${server.url}/`, { headers: { cookie: "orchard_session=forged-token" }, redirect: "manual" });
    expect(page.status).toBe(302);
  });

  it("a revoked key stops at once, a role change ends the user's sessions and moves their keys to the new role", async () => {
    const temp = await server.client.users.create.mutate({ username: "tmp", password: "tmp-password", role: "operator" });
    const cookie = await cookieOf("tmp", "tmp-password");
    const adminClient = createOrchardClient({ url: server.url, apiKey: keys.admin });
    const created = await fetch(`${server.url}/api/trpc/apiKeys.create`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: server.url },
      body: JSON.stringify({ name: "tmp key" }),
    });
    const { key, summary } = ((await created.json()) as { result: { data: { key: string; summary: { id: string; role: string } } } }).result
      .data;
    expect(summary.role).toBe("operator");
    const asTmp = createOrchardClient({ url: server.url, apiKey: key });
    expect((await asTmp.auth.me.query()).role).toBe("operator");

    await adminClient.users.setRole.mutate({ id: temp.id, role: "viewer" });
    expect((await fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie } })).status).toBe(401);
    expect((await asTmp.auth.me.query()).role).toBe("viewer");
    await expect(asTmp.rollouts.pause.mutate({ id: "r1" })).rejects.toThrow("needs the operator role");

    // Admins see and revoke anyone's key; the next request with it is refused.
    const listed = await clientFor("admin").apiKeys.list.query();
    expect(listed.find((k) => k.id === summary.id)?.owner).toBe("tmp");
    expect((await clientFor("viewer").apiKeys.list.query()).map((k) => k.owner)).toEqual(["vicky"]);
    await clientFor("admin").apiKeys.revoke.mutate({ id: summary.id });
    await expect(asTmp.auth.me.query()).rejects.toThrow("The API key is not valid (revoked or mistyped)");

    await adminClient.users.remove.mutate({ id: temp.id });
    expect((await server.client.users.list.query()).map((u) => u.username)).not.toContain("tmp");
  });

  it("refuses to demote or delete the last admin", async () => {
    const admin = (await server.client.users.list.query()).find((u) => u.username === "admin")!;
    await expect(server.client.users.setRole.mutate({ id: admin.id, role: "viewer" })).rejects.toThrow(
      "admin is the last admin; make another user admin first.",
    );
    expect((await server.client.users.list.query()).find((u) => u.username === "admin")?.role).toBe("admin");
  });
});

describe("CSRF", () => {
  const mutation = (headers: Record<string, string>) =>
    fetch(`${server.url}/api/trpc/enrollment.create`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ ttlMinutes: 5 }),
    });

  it("refuses a change made with the session cookie from another origin, or with no origin at all", async () => {
    const before = (await server.client.enrollment.listPending.query()).length;
    const refusedHeaders: Record<string, string>[] = [
      { origin: "https://evil.example" },
      {},
      { origin: "null" },
      { "sec-fetch-site": "cross-site" },
    ];
    for (const headers of refusedHeaders) {
      const res = await mutation({ cookie: cookies.admin, ...headers });
      expect(res.status, JSON.stringify(headers)).toBe(403);
      const body = (await res.json()) as { error: { message: string; data: { code: string } } };
      expect(body.error.data.code).toBe("FORBIDDEN");
      expect(body.error.message).toMatch(/^Cross-site request refused: .* Scripts should send an API key/);
    }
    expect((await server.client.enrollment.listPending.query()).length).toBe(before); // nothing was created
    // REST too.
    const upload = await fetch(`${server.url}/api/uploads`, {
      method: "POST",
      headers: { cookie: cookies.admin, origin: "https://evil.example", "content-type": "application/json" },
      body: JSON.stringify({ name: "model.gguf", size: 10 }),
    });
    expect(upload.status).toBe(403);
  });

  it("accepts the dashboard's own origin, Sec-Fetch-Site: same-origin, and API keys without an origin", async () => {
    expect((await mutation({ cookie: cookies.admin, origin: server.url })).status).toBe(200);
    expect((await mutation({ cookie: cookies.admin, "sec-fetch-site": "same-origin" })).status).toBe(200);
    expect((await mutation(bearer("admin"))).status).toBe(200);
    // Reads need no proof of origin.
    expect((await fetch(`${server.url}/api/trpc/auth.me`, { headers: { cookie: cookies.admin } })).status).toBe(200);
  });
});

describe("body limits", () => {
  /** Sends headers and a little of a body that claims (or grows) to be larger than the limit; resolves with the reply. */
  function oversized(path: string, headers: Record<string, string>, chunked = false): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${server.url}${path}`, { method: "POST", headers: { ...bearer("admin"), ...headers } });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          req.destroy();
          resolve({ status: res.statusCode!, body });
        });
      });
      req.on("error", reject);
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      if (!chunked) {
        req.write(chunk); // a little of what Content-Length announced: the reply must not wait for the rest
        return;
      }
      // No Content-Length: keep sending until the server answers.
      let answered = false;
      req.once("response", () => (answered = true));
      const pump = () => {
        while (!answered && req.write(chunk));
        if (!answered) req.once("drain", pump);
      };
      req.write("[");
      pump();
    });
  }

  it("refuses an oversized tRPC body from its Content-Length, before reading it", async () => {
    const res = await oversized("/api/trpc/enrollment.create", {
      "content-type": "application/json",
      "content-length": String(50 * 1024 * 1024),
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.message).toBe("The request body is over the 1 MiB limit (1048576 bytes); nothing was changed.");
  });

  it("refuses an oversized chunked tRPC body while reading it", async () => {
    const res = await oversized("/api/trpc/enrollment.create", { "content-type": "application/json" }, true);
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.message).toMatch(/over the 1 MiB limit/);
  });

  it("refuses an oversized REST JSON body", async () => {
    const res = await oversized("/api/uploads", { "content-type": "application/json", "content-length": String(1024 * 1024) });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toEqual({
      error: { code: "payload_too_large", message: "The request body is over the 16 KiB limit (16384 bytes); nothing was changed." },
    });
    expect((await fetch(`${server.url}/api/health`)).status).toBe(200);
  });
});

describe("an API key that is not valid", () => {
  it("is a 401 on tRPC, REST, socket.io and /v1 even beside a valid session cookie, never a fallthrough to the cookie", async () => {
    const { token } = await server.client.enrollment.create.mutate({ ttlMinutes: 5 });
    const enrolled = await fetch(`${server.url}/api/enroll`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, hostname: "junk-bearer-pi", arch: "arm64", agentVersion: "test" }),
    });
    expect(enrolled.status).toBe(201);
    const { deviceId } = (await enrolled.json()) as { deviceId: string };
    // What a page on another site can make a browser send: the ambient cookie, a made-up key, its own Origin.
    for (const authorization of ["Bearer junk", "Bearer ", `Bearer ${keys.admin}x`]) {
      const headers = { cookie: cookies.admin, authorization, origin: "https://evil.example" };
      const rename = await fetch(`${server.url}/api/trpc/devices.rename`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ id: deviceId, name: "renamed-by-evil" }),
      });
      expect(rename.status, `devices.rename with ${authorization}`).toBe(401);
      expect(((await rename.json()) as { error: { data: { code: string } } }).error.data.code).toBe("UNAUTHORIZED");
      expect((await fetch(`${server.url}/api/trpc/auth.me`, { headers })).status, `auth.me with ${authorization}`).toBe(401);
      const upload = await fetch(`${server.url}/api/uploads`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ name: "model.gguf", size: 10 }),
      });
      expect(upload.status, `POST /api/uploads with ${authorization}`).toBe(401);
      expect((await fetch(`${server.url}/metrics`, { headers })).status, `/metrics with ${authorization}`).toBe(401);
      const models = await fetch(`${server.url}/v1/models`, { headers });
      expect(models.status, `/v1/models with ${authorization}`).toBe(401);
      expect(await models.json()).toMatchObject({ error: { code: "invalid_api_key" } });
      const chat = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: `device:${deviceId}`, messages: [{ role: "user", content: "hi" }] }),
      });
      expect(chat.status, `/v1/chat/completions with ${authorization}`).toBe(401);
      const socketRefusal = await new Promise<string>((resolve) => {
        const s = io(server.url, { transports: ["websocket"], extraHeaders: headers, reconnection: false });
        s.once("connect", () => {
          s.disconnect();
          resolve("connected");
        });
        s.once("connect_error", (err) => {
          s.disconnect();
          resolve(err.message);
        });
      });
      expect(socketRefusal, `socket.io with ${authorization}`).toBe("unauthorized: sign in first");
    }
    expect((await server.client.devices.get.query({ id: deviceId })).name).toBe("junk-bearer-pi");
    await server.client.devices.remove.mutate({ id: deviceId });
  });
});

describe("live updates end with access", () => {
  async function userWithSocket(username: string, role: Role = "viewer") {
    const password = `${username}-password`;
    const user = await server.client.users.create.mutate({ username, password, role });
    const cookie = await cookieOf(username, password);
    const socket = await connectSocket(server, cookie);
    return { user, password, cookie, socket };
  }
  const ended = (socket: FleetSocket, what: string) => waitFor(`${what}: the socket to end`, () => !socket.connected, 15_000);
  /** The socket still gets the fleet totals the server sends every 2 s: it was not disconnected. */
  const stillServed = async (socket: FleetSocket) => {
    await new Promise<void>((resolve) => socket.once("fleet:totals", () => resolve()));
    expect(socket.connected).toBe(true);
  };

  it("a deleted user's sockets end, by session cookie and by API key", async () => {
    const { user, cookie, socket } = await userWithSocket("sock-deleted");
    const created = await fetch(`${server.url}/api/trpc/apiKeys.create`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: server.url },
      body: JSON.stringify({ name: "sock key" }),
    });
    const { key } = ((await created.json()) as { result: { data: { key: string } } }).result.data;
    const byKey: FleetSocket = io(server.url, {
      transports: ["websocket"],
      extraHeaders: { authorization: `Bearer ${key}` },
      reconnection: false,
    });
    await new Promise<void>((resolve, reject) => {
      byKey.once("connect", () => resolve());
      byKey.once("connect_error", reject);
    });
    await server.client.users.remove.mutate({ id: user.id });
    await ended(socket, "deleted user, cookie");
    await ended(byKey, "deleted user, API key");
  });

  it("a role change ends the session's socket; a socket on the user's API key stays (the key follows the role) until the key is revoked", async () => {
    const { user, cookie, socket } = await userWithSocket("sock-role", "operator");
    const created = await fetch(`${server.url}/api/trpc/apiKeys.create`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: server.url },
      body: JSON.stringify({ name: "sock key" }),
    });
    const { key, summary } = ((await created.json()) as { result: { data: { key: string; summary: { id: string } } } }).result.data;
    const byKey: FleetSocket = io(server.url, {
      transports: ["websocket"],
      extraHeaders: { authorization: `Bearer ${key}` },
      reconnection: false,
    });
    await new Promise<void>((resolve, reject) => {
      byKey.once("connect", () => resolve());
      byKey.once("connect_error", reject);
    });
    await server.client.users.setRole.mutate({ id: user.id, role: "viewer" });
    await ended(socket, "role change");
    await stillServed(byKey);
    // Revoking the key ends the socket that uses it.
    await clientFor("admin").apiKeys.revoke.mutate({ id: summary.id });
    await ended(byKey, "revoked API key");
    await server.client.users.remove.mutate({ id: user.id });
  });

  it("a password reset ends the user's sockets", async () => {
    const { user, socket } = await userWithSocket("sock-reset");
    await server.client.users.resetPassword.mutate({ id: user.id, password: "another-password" });
    await ended(socket, "password reset");
    await server.client.users.remove.mutate({ id: user.id });
  });

  it("signing out ends that session's socket, not the socket of the user's other session", async () => {
    const { user, password, cookie, socket } = await userWithSocket("sock-logout");
    const otherCookie = await cookieOf("sock-logout", password);
    const other = await connectSocket(server, otherCookie);
    const logout = await fetch(`${server.url}/api/trpc/auth.logout`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: server.url },
    });
    expect(logout.status).toBe(200);
    await ended(socket, "logout");
    await stillServed(other);
    other.disconnect();
    await server.client.users.remove.mutate({ id: user.id });
  });

  it("changing one's own password ends the sockets of the user's other sessions, not the one that changed it", async () => {
    const { user, password, cookie, socket } = await userWithSocket("sock-own-pw");
    const otherCookie = await cookieOf("sock-own-pw", password);
    const other = await connectSocket(server, otherCookie);
    const changed = await fetch(`${server.url}/api/trpc/auth.changePassword`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie, origin: server.url },
      body: JSON.stringify({ currentPassword: password, newPassword: "a-new-password" }),
    });
    expect(changed.status).toBe(200);
    await ended(other, "own password change, other session");
    await stillServed(socket);
    socket.disconnect();
    await server.client.users.remove.mutate({ id: user.id });
  });
});

describe("audit log and login limit", () => {
  it("records who did what", async () => {
    const { items } = await server.client.audit.list.query({ limit: 500 });
    const actions = items.map((e) => `${e.actor.username} ${e.action} ${e.target.type}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        "bootstrap-key user.created user",
        "vicky api_key.created api_key",
        "admin user.role_changed user",
        "admin api_key.revoked api_key",
        "admin user.deleted user",
        "admin enrollment.token_created enrollment_token",
      ]),
    );
    const roleChange = items.find((e) => e.action === "user.role_changed" && (e.detail as { username?: string }).username === "tmp")!;
    expect(roleChange.detail).toEqual({ username: "tmp", from: "operator", to: "viewer" });
    const onlyAdmin = await server.client.audit.list.query({ actor: "admin", limit: 500 });
    expect(onlyAdmin.items.length).toBeGreaterThan(0);
    expect(onlyAdmin.items.every((e) => e.actor.username === "admin")).toBe(true);
  });

  // Last: it locks out vicky from this test's address for the rest of the window (no sign-in as vicky after it).
  it(`answers 429 after ${MAX_FAILURES} failed sign-ins, even to the right password, and audits the lockout; other users from that address still get in`, async () => {
    for (let i = 1; i <= MAX_FAILURES; i++) {
      const res = await signIn("vicky", "wrong-password");
      expect(res.status, `attempt ${i}`).toBe(401);
    }
    const locked = await signIn("vicky", passwords.viewer);
    expect(locked.status).toBe(429);
    const body = (await locked.json()) as { error: { message: string; data: { code: string } } };
    expect(body.error.data.code).toBe("TOO_MANY_REQUESTS");
    expect(body.error.message).toMatch(/^Too many failed sign-ins; try again in \d+ s\.$/);
    // Sessions and keys already issued keep working.
    expect((await clientFor("viewer").auth.me.query()).username).toBe("vicky");
    // The lock is vicky's from this address: another user's right password from the same address gets in.
    expect((await signIn("otto", passwords.operator)).status).toBe(200);
    expect((await signIn("admin", passwords.admin)).status).toBe(200);
    const lockouts = await server.client.audit.list.query({ action: "auth.locked_out" });
    expect(lockouts.items[0]).toMatchObject({ actor: { username: "vicky", via: "login" }, target: { type: "user", id: "vicky" } });
  });
});
