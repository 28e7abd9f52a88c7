/**
 * The roles, shared by the server (which enforces them) and the dashboard (which hides
 * what a role cannot do). admin: everything; operator: rollouts, models, chat,
 * benchmarks, device names and tags, plus read; viewer: read only. docs/security.md has the matrix.
 */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** Whether `role` includes everything `min` may do (roles are ordered viewer < operator < admin). */
export function roleAtLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}
