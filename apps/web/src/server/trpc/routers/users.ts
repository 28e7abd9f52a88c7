import { z } from "zod";
import { Password, RoleSchema, UserDto, Username } from "../../services/users.ts";
import { adminProcedure, router } from "../init.ts";

const userId = z.object({ id: z.string().min(1).max(64) });

/** User accounts (admins only). The last admin can be neither demoted nor deleted. */
export const usersRouter = router({
  list: adminProcedure.output(z.array(UserDto)).query(({ ctx }) => ctx.services.users.list()),

  create: adminProcedure
    .input(z.object({ username: Username, password: Password, role: RoleSchema }))
    .output(UserDto)
    .mutation(async ({ ctx, input }) => {
      const user = await ctx.services.users.create(input);
      await ctx.services.audit.record(
        ctx.principal,
        "user.created",
        { type: "user", id: user.id },
        { username: user.username, role: user.role },
      );
      return user;
    }),

  /** The user's sessions end; their API keys act with the new role from the next request. */
  setRole: adminProcedure
    .input(userId.extend({ role: RoleSchema }))
    .output(UserDto)
    .mutation(async ({ ctx, input }) => {
      const { user, previousRole } = await ctx.services.users.setRole(input.id, input.role);
      if (previousRole !== user.role) {
        await ctx.services.audit.record(
          ctx.principal,
          "user.role_changed",
          { type: "user", id: user.id },
          { username: user.username, from: previousRole, to: user.role },
        );
      }
      return user;
    }),

  /** Sets a password the admin chose (tell the user); the user's sessions end. */
  resetPassword: adminProcedure
    .input(userId.extend({ password: Password }))
    .output(UserDto)
    .mutation(async ({ ctx, input }) => {
      const user = await ctx.services.users.resetPassword(input.id, input.password);
      await ctx.services.audit.record(ctx.principal, "user.password_reset", { type: "user", id: user.id }, { username: user.username });
      return user;
    }),

  /** Deletes the user, their sessions and their API keys. */
  remove: adminProcedure
    .input(userId)
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const removed = await ctx.services.users.remove(input.id, ctx.principal);
      await ctx.services.audit.record(ctx.principal, "user.deleted", { type: "user", id: input.id }, removed);
    }),
});
