/**
 * Who is asking: browser sessions (cookie) and API keys (Authorization: Bearer).
 * Also creates the first admin account. The only module that touches the User,
 * Session and ApiKey tables.
 */
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { hashPassword, newPassword, newSecret, secretMatches, sha256, verifyPassword } from "../auth/secrets.ts";
import type { Logger } from "../log.ts";

/** admin: everything; operator: rollouts, chat, benchmarks; viewer: read only. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Whether `role` includes everything `min` may do (roles are ordered viewer < operator < admin). */
export function roleAtLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}

export interface Principal {
  userId: string | null;
  username: string;
  role: Role;
  via: "session" | "api_key" | "bootstrap_key";
}

export const ADMIN_USERNAME = "admin";
const TOUCH_INTERVAL_MS = 60_000;

export class AuthService {
  constructor(
    private readonly prisma: Prisma,
    private readonly opts: { sessionHours: number; bootstrapApiKey?: string },
    private readonly log: Logger,
  ) {}

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

  /** Checks a username and password and opens a session; the returned token goes into the cookie. */
  async login(username: string, password: string): Promise<{ token: string; expiresAt: Date; principal: Principal }> {
    const user = await this.prisma.user.findUnique({ where: { username } });
    // Hash even for unknown users so the answer takes as long either way.
    const ok = await verifyPassword(password, user?.passwordHash ?? (await hashPassword("unknown-user")));
    if (!user || !ok) {
      this.log.warn("failed login", { username });
      throw new AppError("unauthorized", "Wrong username or password.");
    }
    const token = newSecret();
    const expiresAt = new Date(Date.now() + this.opts.sessionHours * 3600_000);
    await this.prisma.session.create({ data: { id: sha256(token), userId: user.id, expiresAt } });
    return { token, expiresAt, principal: { userId: user.id, username: user.username, role: "admin", via: "session" } };
  }

  async logout(token: string): Promise<void> {
    await this.prisma.session.deleteMany({ where: { id: sha256(token) } });
  }

  /** Resolves a session cookie; null when it is unknown or expired. */
  async fromSession(token: string | undefined): Promise<Principal | null> {
    if (!token) return null;
    const session = await this.prisma.session.findUnique({ where: { id: sha256(token) }, include: { user: true } });
    if (!session) return null;
    const now = Date.now();
    if (session.expiresAt.getTime() <= now) {
      await this.prisma.session.deleteMany({ where: { id: session.id } });
      return null;
    }
    if (now - session.lastSeenAt.getTime() > TOUCH_INTERVAL_MS) {
      await this.prisma.session.update({ where: { id: session.id }, data: { lastSeenAt: new Date(now) } });
    }
    return { userId: session.user.id, username: session.user.username, role: "admin", via: "session" };
  }

  /** Resolves an API key: the bootstrap key from ORCHARD_API_KEY, or a key stored in the database. */
  async fromApiKey(key: string | undefined): Promise<Principal | null> {
    if (!key) return null;
    const bootstrap = this.opts.bootstrapApiKey;
    if (bootstrap !== undefined && secretMatches(key, sha256(bootstrap))) {
      return { userId: null, username: "bootstrap-key", role: "admin", via: "bootstrap_key" };
    }
    const row = await this.prisma.apiKey.findUnique({ where: { hash: sha256(key) }, include: { user: true } });
    if (!row) return null;
    // Scripts call often (a scraper every few seconds): record use at most once a minute.
    const now = Date.now();
    if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > TOUCH_INTERVAL_MS) {
      await this.prisma.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } });
    }
    return { userId: row.user.id, username: row.user.username, role: "admin", via: "api_key" };
  }

  /** Resolves whichever credential a request carries. */
  async resolve(credentials: { sessionToken?: string; bearer?: string }): Promise<Principal | null> {
    return (await this.fromApiKey(credentials.bearer)) ?? (await this.fromSession(credentials.sessionToken));
  }

  async purgeExpiredSessions(): Promise<number> {
    const { count } = await this.prisma.session.deleteMany({ where: { expiresAt: { lt: new Date() } } });
    return count;
  }
}
