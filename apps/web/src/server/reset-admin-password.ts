/**
 * `npm run reset-admin-password` (`tsx apps/web/server.ts reset-admin-password`): a lost
 * admin password, recovered from the server's console. Sets a new password for the
 * `admin` account (generated, or read from standard input with --password-stdin),
 * creating the account again if it was deleted and making it an admin again if it was
 * demoted; ends its sessions (its API keys stay); writes an audit entry
 * (user.password_reset by "reset-admin-password", via console). Works on the
 * embedded database (the server must be stopped: one process at a time may open it,
 * db/lock.ts) and on PostgreSQL (DATABASE_URL; the server may run, and its sign-ins
 * see the new password at once).
 */
import { hashPassword, newPassword } from "./auth/secrets.ts";
import { openDatabase } from "./db/client.ts";
import type { Env } from "./env.ts";
import { createLogger } from "./log.ts";
import { AuditService } from "./services/audit.ts";
import { ADMIN_USERNAME } from "./services/auth.ts";
import { Password } from "./services/users.ts";

export interface ResetResult {
  password: string;
  /** The account did not exist and was created. */
  created: boolean;
  /** It existed with another role and is admin again. */
  promoted: boolean;
  sessionsEnded: number;
  database: string;
}

function parsePassword(given: string): string {
  const r = Password.safeParse(given);
  if (!r.success) throw new Error(r.error.issues[0]?.message ?? "That password is not allowed.");
  return r.data;
}

/** `given`: the new password, or undefined to generate one. */
export async function resetAdminPassword(env: Env, given: string | undefined): Promise<ResetResult> {
  if (env.ORCHARD_ADMIN_PASSWORD !== undefined) {
    throw new Error(
      "ORCHARD_ADMIN_PASSWORD is set: the server sets admin's password to it at every start, so change that variable instead " +
        "(or unset it and run this again)",
    );
  }
  const password = given === undefined ? newPassword() : parsePassword(given);
  const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.dataDir });
  try {
    const passwordHash = await hashPassword(password);
    const outcome = await db.prisma.$transaction(async (tx) => {
      const existing = await tx.user.findUnique({ where: { username: ADMIN_USERNAME } });
      const user = await tx.user.upsert({
        where: { username: ADMIN_USERNAME },
        create: { username: ADMIN_USERNAME, passwordHash, role: "admin" },
        update: { passwordHash, role: "admin" },
      });
      const { count } = await tx.session.deleteMany({ where: { userId: user.id } });
      return {
        userId: user.id,
        created: existing === null,
        promoted: existing !== null && existing.role !== "admin",
        sessionsEnded: count,
      };
    });
    await new AuditService(db.prisma, createLogger(env.ORCHARD_LOG_LEVEL).child("audit")).record(
      { userId: null, username: "reset-admin-password", via: "console" },
      "user.password_reset",
      { type: "user", id: outcome.userId },
      { username: ADMIN_USERNAME, created: outcome.created, promoted: outcome.promoted, sessionsEnded: outcome.sessionsEnded },
    );
    return {
      password,
      created: outcome.created,
      promoted: outcome.promoted,
      sessionsEnded: outcome.sessionsEnded,
      database: db.kind === "postgresql" ? "PostgreSQL (DATABASE_URL)" : `the embedded database in ${env.dataDir}`,
    };
  } finally {
    await db.close();
  }
}

/** Runs the subcommand: prints the new password once on stdout, or one line on stderr and exit 1. */
export async function resetAdminPasswordMain(env: Env, args: string[], stdin: NodeJS.ReadableStream): Promise<number> {
  const unknown = args.filter((a) => a !== "--password-stdin");
  if (unknown.length > 0) {
    process.stderr.write(`orchard reset-admin-password: unknown argument ${unknown[0]} (it takes only --password-stdin)\n`);
    return 2;
  }
  try {
    let given: string | undefined;
    if (args.includes("--password-stdin")) {
      let text = "";
      for await (const chunk of stdin) text += chunk.toString();
      given = text.replace(/\r?\n$/, "");
    }
    const r = await resetAdminPassword(env, given);
    const what = r.created
      ? "created again (it had been deleted)"
      : r.promoted
        ? "made admin again and given a new password"
        : "given a new password";
    process.stdout.write(
      `The "${ADMIN_USERNAME}" account in ${r.database} was ${what}; ${r.sessionsEnded} session(s) ended, its API keys kept.\n` +
        (given === undefined ? `  New password (shown only now): ${r.password}\n` : "  The password is the one given on standard input.\n"),
    );
    return 0;
  } catch (err) {
    process.stderr.write(`orchard reset-admin-password: ${(err as Error).message}\n`);
    return 1;
  }
}
