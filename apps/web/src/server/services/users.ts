/**
 * User accounts and their roles (admin, operator, viewer), managed by admins; a
 * user changes their own password. A role change, a password reset or a deletion
 * ends the user's sessions at once; their API keys follow the user's role on every
 * request (services/auth.ts), and are deleted with the user. Each of these also
 * tells the user's live connections to check their credential again
 * (`onAccessChanged`: socket.io ends those that no longer pass). The last admin can be
 * neither demoted nor deleted, so the dashboard cannot lock itself out.
 */
import { z } from "zod";
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { hashPassword, sha256, verifyPassword } from "../auth/secrets.ts";
import { ROLES, parseRole, type Principal, type Role } from "./auth.ts";

export const PASSWORD_MIN_CHARS = 8;

export const Username = z
  .string()
  .trim()
  .min(1, "A username is required.")
  .max(64, "A username may be at most 64 characters long.")
  .regex(
    /^[a-z0-9][a-z0-9._-]*$/,
    "A username may contain lower-case letters, digits, '.', '_' and '-', and starts with a letter or digit.",
  );
export const Password = z
  .string()
  .min(PASSWORD_MIN_CHARS, `A password needs at least ${PASSWORD_MIN_CHARS} characters.`)
  .max(256, "A password may be at most 256 characters long.");
export const RoleSchema = z.enum(ROLES);

export const UserDto = z.object({
  id: z.string(),
  username: z.string(),
  role: RoleSchema,
  createdAt: z.number(),
  /** Sessions not yet expired. */
  sessions: z.number(),
  apiKeys: z.number(),
});
export type UserDto = z.infer<typeof UserDto>;

/** Names the server uses for callers that are not users; no account may take them. */
const RESERVED_USERNAMES = new Set(["bootstrap-key", "system"]);

export class UserService {
  constructor(
    private readonly prisma: Prisma,
    private readonly now: () => number = Date.now,
    /** After a change that ends sessions or keys or changes the role (AuthService.accessChanged). */
    private readonly onAccessChanged: (userId: string) => void = () => undefined,
  ) {}

  async list(): Promise<UserDto[]> {
    const rows = await this.prisma.user.findMany({
      orderBy: { username: "asc" },
      include: { _count: { select: { apiKeys: true, sessions: { where: { expiresAt: { gt: new Date(this.now()) } } } } } },
    });
    return rows.map((r) => ({
      id: r.id,
      username: r.username,
      role: parseRole(r.role),
      createdAt: r.createdAt.getTime(),
      sessions: r._count.sessions,
      apiKeys: r._count.apiKeys,
    }));
  }

  async get(id: string): Promise<UserDto> {
    const user = (await this.list()).find((u) => u.id === id);
    if (!user) throw new AppError("not_found", "No user with that id.");
    return user;
  }

  async create(input: { username: string; password: string; role: Role }): Promise<UserDto> {
    if (RESERVED_USERNAMES.has(input.username))
      throw new AppError("bad_request", `"${input.username}" is reserved; choose another username.`);
    const existing = await this.prisma.user.findUnique({ where: { username: input.username } });
    if (existing) throw new AppError("conflict", `There is already a user "${input.username}".`);
    const row = await this.prisma.user
      .create({ data: { username: input.username, passwordHash: await hashPassword(input.password), role: input.role } })
      .catch((err: { code?: string }) => {
        // Two admins creating the same name at once: the unique index decides.
        if (err.code === "P2002") throw new AppError("conflict", `There is already a user "${input.username}".`);
        throw err;
      });
    return this.get(row.id);
  }

  /** Changes the role; the user's sessions end (they sign in again with the new role). */
  async setRole(id: string, role: Role): Promise<{ user: UserDto; previousRole: Role }> {
    const previousRole = await this.prisma.$transaction(async (tx) => {
      const user = await tx.user.findUnique({ where: { id } });
      if (!user) throw new AppError("not_found", "No user with that id.");
      const previous = parseRole(user.role);
      if (previous === "admin" && role !== "admin" && (await tx.user.count({ where: { role: "admin" } })) <= 1) {
        throw new AppError("conflict", `${user.username} is the last admin; make another user admin first.`);
      }
      await tx.user.update({ where: { id }, data: { role } });
      if (previous !== role) await tx.session.deleteMany({ where: { userId: id } });
      return previous;
    });
    if (previousRole !== role) this.onAccessChanged(id);
    return { user: await this.get(id), previousRole };
  }

  /** Sets a new password chosen by an admin; the user's sessions end. */
  async resetPassword(id: string, password: string): Promise<UserDto> {
    const passwordHash = await hashPassword(password);
    await this.prisma.$transaction(async (tx) => {
      const { count } = await tx.user.updateMany({ where: { id }, data: { passwordHash } });
      if (count === 0) throw new AppError("not_found", "No user with that id.");
      await tx.session.deleteMany({ where: { userId: id } });
    });
    this.onAccessChanged(id);
    return this.get(id);
  }

  /**
   * A signed-in user changes their own password, proving the current one. Their other
   * sessions end; the one they are using (`keepSessionToken`) stays.
   */
  async changeOwnPassword(
    principal: Principal,
    input: { currentPassword: string; newPassword: string },
    keepSessionToken: string | undefined,
  ): Promise<void> {
    if (!principal.userId) throw new AppError("bad_request", "The bootstrap API key has no password; it is set with ORCHARD_API_KEY.");
    const user = await this.prisma.user.findUnique({ where: { id: principal.userId } });
    if (!user) throw new AppError("not_found", "Your account no longer exists.");
    if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
      throw new AppError("bad_request", "The current password is wrong.");
    }
    const passwordHash = await hashPassword(input.newPassword);
    const keep = keepSessionToken ? sha256(keepSessionToken) : undefined;
    await this.prisma.$transaction([
      this.prisma.user.update({ where: { id: user.id }, data: { passwordHash } }),
      this.prisma.session.deleteMany({ where: { userId: user.id, ...(keep ? { id: { not: keep } } : {}) } }),
    ]);
    this.onAccessChanged(user.id);
  }

  /** Deletes the user with their sessions and API keys. Refused for yourself and for the last admin. */
  async remove(id: string, by: Principal): Promise<{ username: string; role: Role }> {
    if (by.userId === id) throw new AppError("conflict", "You cannot delete your own account; ask another admin.");
    const removed = await this.prisma.$transaction(async (tx) => {
      const user = await tx.user.findUnique({ where: { id } });
      if (!user) throw new AppError("not_found", "No user with that id.");
      const role = parseRole(user.role);
      if (role === "admin" && (await tx.user.count({ where: { role: "admin" } })) <= 1) {
        throw new AppError("conflict", `${user.username} is the last admin; make another user admin first.`);
      }
      await tx.user.delete({ where: { id } }); // sessions and API keys cascade
      return { username: user.username, role };
    });
    this.onAccessChanged(id);
    return removed;
  }
}
