/** The whole tRPC API: one router per domain. The browser and the `orchard` CLI use its type. */
import { router } from "./init.ts";
import { accountRouter } from "./routers/account.ts";
import { alertsRouter } from "./routers/alerts.ts";
import { apiKeysRouter } from "./routers/api-keys.ts";
import { artifactsRouter } from "./routers/artifacts.ts";
import { auditRouter } from "./routers/audit.ts";
import { authRouter } from "./routers/auth.ts";
import { benchRouter } from "./routers/bench.ts";
import { chatRouter } from "./routers/chat.ts";
import { devicesRouter } from "./routers/devices.ts";
import { enrollmentRouter } from "./routers/enrollment.ts";
import { fleetRouter } from "./routers/fleet.ts";
import { rolloutsRouter } from "./routers/rollouts.ts";
import { systemRouter } from "./routers/system.ts";
import { usersRouter } from "./routers/users.ts";

export const appRouter = router({
  auth: authRouter,
  account: accountRouter,
  devices: devicesRouter,
  fleet: fleetRouter,
  enrollment: enrollmentRouter,
  system: systemRouter,
  chat: chatRouter,
  apiKeys: apiKeysRouter,
  bench: benchRouter,
  alerts: alertsRouter,
  artifacts: artifactsRouter,
  rollouts: rolloutsRouter,
  users: usersRouter,
  audit: auditRouter,
});

export type AppRouter = typeof appRouter;
