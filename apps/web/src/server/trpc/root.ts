/** The whole tRPC API: one router per domain. The browser and the `orchard` CLI use its type. */
import { router } from "./init.ts";
import { apiKeysRouter } from "./routers/api-keys.ts";
import { authRouter } from "./routers/auth.ts";
import { chatRouter } from "./routers/chat.ts";
import { devicesRouter } from "./routers/devices.ts";
import { enrollmentRouter } from "./routers/enrollment.ts";
import { systemRouter } from "./routers/system.ts";

export const appRouter = router({
  auth: authRouter,
  devices: devicesRouter,
  enrollment: enrollmentRouter,
  system: systemRouter,
  chat: chatRouter,
  apiKeys: apiKeysRouter,
});

export type AppRouter = typeof appRouter;
