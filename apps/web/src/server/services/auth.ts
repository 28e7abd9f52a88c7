/**
 * Who is asking: browser sessions (cookie) and API keys (Authorization: Bearer),
 * with the role of the user behind them; `requireRole` is the one check tRPC, REST
 * and socket.io apply. Also creates the first admin account and limits failed
 * sign-ins. User management is services/users.ts; API keys are services/api-keys.ts.
 */
import { EventEmitter } from "node:events";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { hashPassword, newPassword, newSecret, secretMatches, sha256, verifyPassword } from "../auth/secrets.ts";
import type { Logger } from "../log.ts";
import { LOGIN_WINDOW_MS, LoginLimiter } from "./login-limiter.ts";

import { ROLES, roleAtLeast, type Role } from "@orchard/client";

export { ROLES, roleAtLeast, type Role };

/** The role stored on a User row; anything unexpected counts as the least (fail closed). */
export function parseRole(value: string): Role {
  return (ROLES as readonly string[]).includes(value) ? (value as Role) : "viewer";
}

/**
 * The one access check: 401 without a caller, 403 when the caller's role is below `min`.
 * `what` completes "… needs the operator role" in the message (e.g. "Starting a rollout").
 */
export function requireRole(principal: Principal | null, min: Role, what = "This"): Principal {
  if (!principal) throw new AppError("unauthorized", "Sign in first (or send an API key: Authorization: Bearer …).");
  if (!roleAtLeast(principal.role, min)) {
    throw new AppError("forbidden", `${what} needs the ${min} role; ${principal.username} is ${principal.role}.`);
  }
  return principal;
}

/** A wrong username or password; `lockedOut` when this failure used up the last attempt (audited). */
export class LoginFailedError extends AppError {
  constructor(readonly lockedOut: boolean) {
    super("unauthorized", "Wrong username or password.");
  }
}

/** `Authorization: Bearer …` with a key that does not exist (revoked, mistyped, or empty). */
export class InvalidApiKeyError extends AppError {
  constructor() {
    super("unauthorized", "The API key is not valid (revoked or mistyped); create one on the dashboard's API keys page.");
  }
}

export interface Principal {
  userId: string | null;
  username: string;
  role: Role;
  via: "session" | "api_key" | "bootstrap_key";
}

/** One of the caller's own sessions, as the account page lists it. */
export interface OwnSession {
  /** The stored id (sha256 of the cookie's token: it cannot be used as a cookie). */
  id: string;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
  ip: string | null;
  userAgent: string | null;
  /** The session the request came with. */
  current: boolean;
}

/** Where a sign-in came from, kept with its session. */
export interface SignInClient {
  ip?: string | undefined;
  userAgent?: string | undefined;
}

/** A User-Agent as stored: printable, at most 256 characters. */
function cleanUserAgent(ua: string | undefined): string | null {
  if (!ua) return null;
  const clean = ua
    .replace(/[^\x20-\x7e]/g, "")
    .trim()
    .slice(0, 256);
  return clean || null;
}

export const ADMIN_USERNAME = "admin";
const TOUCH_INTERVAL_MS = 60_000;

export const DEFAULT_LOGIN_MAX_FAILURES = 5;

export interface AuthEvents {
  /**
   * A user's access may have ended or changed: deleted, role changed, password reset or changed, a
   * session ended (logout), an API key revoked. Live connections of the user check their credential
   * again (realtime/socket.ts), as every tRPC and REST request does.
   */
  accessChanged: [userId: string];
}

export class AuthService extends EventEmitter<AuthEvents> {
  readonly loginLimiter: LoginLimiter;

  constructor(
    private readonly prisma: Prisma,
    private readonly opts: {
      sessionHours: number;
      bootstrapApiKey?: string;
      /** Failed sign-ins of one username from one address within 15 minutes before 429 (ORCHARD_LOGIN_MAX_FAILURES; see login-limiter.ts for the wider caps). */
      loginMaxFailures?: number;
      now?: () => number;
    },
    private readonly log: Logger,
  ) {
    super();
    this.loginLimiter = new LoginLimiter({
      maxFailures: opts.loginMaxFailures ?? DEFAULT_LOGIN_MAX_FAILURES,
      windowMs: LOGIN_WINDOW_MS,
      now: opts.now ?? Date.now,
    });
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * Makes sure the admin account exists. ORCHARD_ADMIN_PASSWORD, when set, is the
   * password (set again at every start, so changing the variable changes it);
   * otherwise a password is generated on first start and returned to be printed once.
   */
  async ensureAdmin(adminPassword: string | undefined): Promise<{ created: boolean; generatedPassword?: string }> {
    const existing = await this.prisma.user.findUnique({ where: { username: ADMIN_USERNAME } });
    if (adminPassword !== undefined) {
      const passwordHash = await hashPassword(adminPassword);
      await this.prisma.user.upsert({
        where: { username: ADMIN_USERNAME },
        create: { username: ADMIN_USERNAME, passwordHash, role: "admin" },
        update: existing && (await verifyPassword(adminPassword, existing.passwordHash)) ? {} : { passwordHash },
      });
      return { created: existing === null };
    }
    if (existing) return { created: false };
    const generatedPassword = newPassword();
    await this.prisma.user.create({
      data: { username: ADMIN_USERNAME, passwordHash: await hashPassword(generatedPassword), role: "admin" },
    });
    return { created: true, generatedPassword };
  }

  /**
   * Checks a username and password and opens a session; the returned token goes into the cookie.
   * Refused with 429 (LoginLockedError) while the username at `client.ip`, the address or the username has too many recent failures (login-limiter.ts).
   */
  async login(
    username: string,
    password: string,
    client: SignInClient = {},
  ): Promise<{ token: string; expiresAt: Date; principal: Principal }> {
    const { ip: clientIp, userAgent } = client;
    this.loginLimiter.check(username, clientIp);
    const user = await this.prisma.user.findUnique({ where: { username } });
    // Hash even for unknown users so the answer takes as long either way.
    const ok = await verifyPassword(password, user?.passwordHash ?? (await hashPassword("unknown-user")));
    if (!user || !ok) {
      const lockedOut = this.loginLimiter.fail(username, clientIp);
      this.log.warn(lockedOut ? "failed login; locked out for now" : "failed login", { username, ip: clientIp });
      throw new LoginFailedError(lockedOut);
    }
    this.loginLimiter.succeed(username, clientIp);
    const token = newSecret();
    const expiresAt = new Date(this.now() + this.opts.sessionHours * 3600_000);
    await this.prisma.session.create({
      data: { id: sha256(token), userId: user.id, expiresAt, ip: clientIp ?? null, userAgent: cleanUserAgent(userAgent) },
    });
    return { token, expiresAt, principal: { userId: user.id, username: user.username, role: parseRole(user.role), via: "session" } };
  }

  async logout(token: string): Promise<void> {
    const session = await this.prisma.session.findUnique({ where: { id: sha256(token) }, select: { userId: true } });
    await this.prisma.session.deleteMany({ where: { id: sha256(token) } });
    if (session) this.accessChanged(session.userId);
  }

  /** The user's sessions that have not expired, newest first; `currentToken` marks the caller's own. */
  async listSessions(userId: string, currentToken: string | undefined): Promise<OwnSession[]> {
    const current = currentToken ? sha256(currentToken) : null;
    const rows = await this.prisma.session.findMany({
      where: { userId, expiresAt: { gt: new Date(this.now()) } },
      orderBy: [{ lastSeenAt: "desc" }, { createdAt: "desc" }],
    });
    return rows.map((r) => ({
      id: r.id,
      createdAt: r.createdAt.getTime(),
      lastSeenAt: r.lastSeenAt.getTime(),
      expiresAt: r.expiresAt.getTime(),
      ip: r.ip,
      userAgent: r.userAgent,
      current: r.id === current,
    }));
  }

  /**
   * Ends one of the user's own sessions (not the one the request came with: sign out for that).
   * Another user's session id is answered as unknown, never ended.
   */
  async revokeSession(userId: string, id: string, currentToken: string | undefined): Promise<void> {
    if (currentToken && sha256(currentToken) === id) throw new AppError("bad_request", "That is this session: sign out to end it.");
    const { count } = await this.prisma.session.deleteMany({ where: { id, userId } });
    if (count === 0) throw new AppError("not_found", "No such session of yours (it may have ended already).");
    this.accessChanged(userId);
  }

  /** Ends every session of the user but the one the request came with; returns how many ended. */
  async revokeOtherSessions(userId: string, currentToken: string | undefined): Promise<number> {
    const keep = currentToken ? sha256(currentToken) : undefined;
    const { count } = await this.prisma.session.deleteMany({ where: { userId, ...(keep ? { id: { not: keep } } : {}) } });
    if (count > 0) this.accessChanged(userId);
    return count;
  }

  /** Tells live connections of the user to check their credential again (see AuthEvents). */
  accessChanged(userId: string): void {
    this.emit("accessChanged", userId);
  }

  /** Resolves a session cookie; null when it is unknown or expired. */
  async fromSession(token: string | undefined): Promise<Principal | null> {
    if (!token) return null;
    const session = await this.prisma.session.findUnique({ where: { id: sha256(token) }, include: { user: true } });
    if (!session) return null;
    const now = this.now();
    if (session.expiresAt.getTime() <= now) {
      await this.prisma.session.deleteMany({ where: { id: session.id } });
      return null;
    }
    if (now - session.lastSeenAt.getTime() > TOUCH_INTERVAL_MS) {
      await this.prisma.session.update({ where: { id: session.id }, data: { lastSeenAt: new Date(now) } });
    }
    return { userId: session.user.id, username: session.user.username, role: parseRole(session.user.role), via: "session" };
  }

  /** When the bootstrap key was last used, since this server started (it has no database row). */
  private bootstrapLastUsedAt: number | null = null;

  /**
   * The bootstrap key (ORCHARD_API_KEY) as the API keys page shows it to admins, or null when it is not set:
   * never the key, only its last 4 characters when it is long enough for that to give nothing away.
   */
  bootstrapKeyInfo(): { last4: string | null; lastUsedAt: number | null } | null {
    const key = this.opts.bootstrapApiKey;
    if (key === undefined || key === "") return null;
    return { last4: key.length >= 20 ? key.slice(-4) : null, lastUsedAt: this.bootstrapLastUsedAt };
  }

  /** Resolves an API key: the bootstrap key from ORCHARD_API_KEY, or a key stored in the database. */
  async fromApiKey(key: string | undefined): Promise<Principal | null> {
    if (!key) return null;
    const bootstrap = this.opts.bootstrapApiKey;
    if (bootstrap !== undefined && secretMatches(key, sha256(bootstrap))) {
      this.bootstrapLastUsedAt = this.now();
      return { userId: null, username: "bootstrap-key", role: "admin", via: "bootstrap_key" };
    }
    const row = await this.prisma.apiKey.findUnique({ where: { hash: sha256(key) }, include: { user: true } });
    if (!row) return null;
    // Scripts call often (a scraper every few seconds): record use at most once a minute.
    const now = this.now();
    if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > TOUCH_INTERVAL_MS) {
      await this.prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } });
    }
    return { userId: row.user.id, username: row.user.username, role: parseRole(row.user.role), via: "api_key" };
  }

  /**
   * Resolves the credential a request carries: its API key when it sends one, else its session cookie;
   * null with neither. An API key that is not valid is refused (401) whatever else the request carries:
   * falling back to the cookie would let another site's page pass for a script (the CSRF check skips
   * requests with an API key).
   */
  async resolve(credentials: { sessionToken?: string; bearer?: string }): Promise<Principal | null> {
    if (credentials.bearer !== undefined) {
      const principal = await this.fromApiKey(credentials.bearer);
      if (!principal) throw new InvalidApiKeyError();
      return principal;
    }
    return this.fromSession(credentials.sessionToken);
  }

  async purgeExpiredSessions(): Promise<number> {
    const { count } = await this.prisma.session.deleteMany({ where: { expiresAt: { lt: new Date(this.now()) } } });
    return count;
  }
}
