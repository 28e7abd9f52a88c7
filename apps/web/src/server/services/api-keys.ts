/**
 * API keys for scripts, the CLI and OpenAI-compatible clients. Every user may create
 * keys for themselves; a key acts with its owner's role as it is at each request
 * (a viewer's key cannot start a rollout). Admins see and revoke everyone's keys,
 * others only their own. The key is shown once; only its sha256 and a short prefix are kept.
 * A revoked key is refused from the next request on, and socket.io connections made with it end.
 */
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { newSecret, sha256 } from "../auth/secrets.ts";
import { ADMIN_USERNAME, parseRole, roleAtLeast, type Principal } from "./auth.ts";

export const API_KEY_PREFIX = "ork_";

export interface ApiKeySummary {
  id: string;
  name: string;
  prefix: string;
  owner: string;
  /** The owner's role: what the key may do. */
  role: string;
  createdAt: number;
  lastUsedAt: number | null;
}

export class ApiKeyService {
  constructor(
    private readonly prisma: Prisma,
    /** After a key was revoked: its owner's live connections check their credential again (AuthService.accessChanged). */
    private readonly onAccessChanged: (userId: string) => void = () => undefined,
  ) {}

  async create(input: { name: string; userId: string | null }): Promise<{ key: string; summary: ApiKeySummary }> {
    // Keys created with the bootstrap key belong to the admin account.
    const user = input.userId
      ? await this.prisma.user.findUnique({ where: { id: input.userId } })
      : await this.prisma.user.findUnique({ where: { username: ADMIN_USERNAME } });
    if (!user) throw new AppError("not_found", "No account to own the key.");
    const key = newSecret(API_KEY_PREFIX);
    const row = await this.prisma.apiKey.create({
      data: { name: input.name, prefix: key.slice(0, API_KEY_PREFIX.length + 6), hash: sha256(key), userId: user.id },
    });
    return {
      key,
      summary: {
        id: row.id,
        name: row.name,
        prefix: row.prefix,
        owner: user.username,
        role: parseRole(user.role),
        createdAt: row.createdAt.getTime(),
        lastUsedAt: null,
      },
    };
  }

  /** Every key for an admin; the caller's own keys for anyone else. */
  async list(principal: Principal): Promise<ApiKeySummary[]> {
    const rows = await this.prisma.apiKey.findMany({
      where: roleAtLeast(principal.role, "admin") ? {} : { userId: principal.userId ?? "" },
      orderBy: { createdAt: "desc" },
      include: { user: true },
    });
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      prefix: r.prefix,
      owner: r.user.username,
      role: parseRole(r.user.role),
      createdAt: r.createdAt.getTime(),
      lastUsedAt: r.lastUsedAt?.getTime() ?? null,
    }));
  }

  /** Deletes the key: the next request with it is refused. Admins may revoke any key, others their own. */
  async revoke(id: string, principal: Principal): Promise<{ name: string; owner: string }> {
    const row = await this.prisma.apiKey.findUnique({ where: { id }, include: { user: true } });
    const mine = row !== null && row.userId === principal.userId;
    if (!row || (!mine && !roleAtLeast(principal.role, "admin"))) throw new AppError("not_found", "No API key with that id.");
    const { count } = await this.prisma.apiKey.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", "No API key with that id.");
    this.onAccessChanged(row.userId);
    return { name: row.name, owner: row.user.username };
  }
}
