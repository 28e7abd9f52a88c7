/**
 * API keys for scripts, the CLI and OpenAI-compatible clients, created by an admin
 * in the dashboard. The key is shown once; only its sha256 and a short prefix are kept.
 */
import type { Prisma } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { newSecret, sha256 } from "../auth/secrets.ts";
import { ADMIN_USERNAME } from "./auth.ts";

export const API_KEY_PREFIX = "ork_";

export interface ApiKeySummary {
  id: string;
  name: string;
  prefix: string;
  owner: string;
  createdAt: number;
  lastUsedAt: number | null;
}

export class ApiKeyService {
  constructor(private readonly prisma: Prisma) {}

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
        createdAt: row.createdAt.getTime(),
        lastUsedAt: null,
      },
    };
  }

  async list(): Promise<ApiKeySummary[]> {
    const rows = await this.prisma.apiKey.findMany({ orderBy: { createdAt: "desc" }, include: { user: true } });
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      prefix: r.prefix,
      owner: r.user.username,
      createdAt: r.createdAt.getTime(),
      lastUsedAt: r.lastUsedAt?.getTime() ?? null,
    }));
  }

  async revoke(id: string): Promise<void> {
    const { count } = await this.prisma.apiKey.deleteMany({ where: { id } });
    if (count === 0) throw new AppError("not_found", "No API key with that id.");
  }
}
