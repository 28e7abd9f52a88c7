/**
 * socket.io for the dashboard: every signed-in browser gets fleet row changes
 * (coalesced per device, at most one per COALESCE_MS) and the fleet totals (every
 * TOTALS_MS), and telemetry for the devices it watches. The handshake needs a viewer's session cookie or
 * API key (requireRole, as tRPC and REST); with the cookie it must also come from the dashboard's own origin
 * (CSRF: a WebSocket is not bound by CORS). The browser's events only join and leave rooms (reads), so
 * any signed-in role may send them; anything that changes state goes through tRPC with its role.
 *
 * A connection lasts only as long as its credential: when a user's access changes (deleted, role changed,
 * password reset or changed, logout, API key revoked: AuthService "accessChanged") each of the user's sockets
 * checks its handshake credential again and is disconnected if it no longer resolves to a viewer (the dashboard
 * then reconnects, and is sent to the login page). Every RECHECK_MS all sockets are checked the same way, which
 * catches sessions that expired and changes made through another server replica.
 */
import type { Server as HttpServer } from "node:http";
import { Server, type Socket } from "socket.io";
import {
  SOCKET_PATH,
  SOCKET_UNAUTHORIZED,
  isValidDeviceId,
  type AlertDto,
  type BenchRunDto,
  type RolloutDto,
  type RuntimeComparisonDto,
  type ClientToServerEvents,
  type DeviceEvent,
  type DeviceSummary,
  type ServerToClientEvents,
  type TelemetrySample,
} from "@orchard/contracts";
import type { Logger } from "../log.ts";
import type { AlertService } from "../services/alerts.ts";
import type { AuthService } from "../services/auth.ts";
import type { BenchmarkService } from "../services/benchmarks.ts";
import type { ConversationService } from "../services/conversations.ts";
import type { RolloutService } from "../services/rollouts.ts";
import type { RuntimeComparisonService } from "../services/runtime-comparisons.ts";
import type { FleetService } from "../services/fleet.ts";
import type { FleetThroughput } from "../services/fleet-throughput.ts";
import { assertSameOrigin, credentialsOf } from "../http/request.ts";
import { AppError } from "../errors.ts";
import { requireRole, type Principal } from "../services/auth.ts";

const COALESCE_MS = 250;
/** How often every signed-in browser gets the fleet totals. */
const TOTALS_MS = 2000;
const FLEET_ROOM = "fleet";
const deviceRoom = (id: string) => `device:${id}`;
const conversationRoom = (id: string) => `conversation:${id}`;
const CONVERSATION_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** How often every socket's credential is checked again (expired sessions, changes made on another replica). */
const RECHECK_MS = 60_000;

interface SocketData {
  /** Who the handshake's credential resolved to (checked again when the user's access changes). */
  principal: Principal;
}
type DashboardSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export function attachRealtime(deps: {
  httpServer: HttpServer;
  auth: AuthService;
  fleet: FleetService;
  conversations: ConversationService;
  alerts: AlertService;
  benchmarks: BenchmarkService;
  rollouts: RolloutService;
  comparisons: RuntimeComparisonService;
  throughput: FleetThroughput;
  log: Logger;
  /** ORCHARD_PUBLIC_URL: an origin the dashboard may be served from besides the Host a request came to. */
  publicUrl?: string;
}) {
  const { fleet, conversations, alerts, log } = deps;
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>(deps.httpServer, {
    path: SOCKET_PATH,
    serveClient: false,
  });
  /** Counts access changes: a handshake that saw one while it resolved its credential resolves it again. */
  let accessChanges = 0;

  io.use((socket, next) => {
    const credentials = credentialsOf(socket.request);
    const refuse = (err: AppError) =>
      next(
        Object.assign(new Error(err.code === "unauthorized" ? "unauthorized: sign in first" : err.message), {
          data: { code: err.code === "unauthorized" ? SOCKET_UNAUTHORIZED : err.code },
        }),
      );
    const admit = async (): Promise<Principal> => {
      for (;;) {
        const seen = accessChanges;
        // An API key that is not valid (AuthService.resolve) is refused like no credential at all.
        const principal = requireRole(await deps.auth.resolve(credentials), "viewer", "Live updates");
        if (seen === accessChanges) return principal;
      }
    };
    admit().then(
      (principal) => {
        try {
          if (credentials.bearer === undefined) assertSameOrigin(socket.request, deps.publicUrl);
          socket.data.principal = principal;
          next();
        } catch (err) {
          if (err instanceof AppError) refuse(err);
          else next(err as Error);
        }
      },
      (err: Error) => (err instanceof AppError ? refuse(err) : next(err)),
    );
  });

  /** Checks a connected socket's handshake credential again; disconnects it when that no longer gives a viewer. */
  const recheck = async (socket: DashboardSocket): Promise<void> => {
    let principal: Principal | null;
    try {
      principal = requireRole(await deps.auth.resolve(credentialsOf(socket.request)), "viewer");
    } catch (err) {
      if (!(err instanceof AppError)) {
        // The database did not answer: the next check decides.
        log.warn("checking a live connection's credential failed", { error: (err as Error).message });
        return;
      }
      principal = null;
    }
    if (principal) {
      socket.data.principal = principal;
      return;
    }
    log.info("live connection ended: its credential no longer signs in", { user: socket.data.principal.username });
    socket.disconnect(true);
  };
  const onAccessChanged = (userId: string) => {
    accessChanges++;
    for (const socket of io.sockets.sockets.values()) {
      if (socket.data.principal?.userId === userId) void recheck(socket);
    }
  };
  deps.auth.on("accessChanged", onAccessChanged);
  const recheckTimer = setInterval(() => {
    for (const socket of io.sockets.sockets.values()) void recheck(socket);
  }, RECHECK_MS);

  io.on("connection", (socket) => {
    void socket.join(FLEET_ROOM);
    socket.emit("fleet:totals", deps.throughput.totals()); // the overview's cards fill in at once
    socket.on("device:watch", (id) => {
      if (typeof id === "string" && isValidDeviceId(id)) void socket.join(deviceRoom(id));
    });
    socket.on("device:unwatch", (id) => {
      if (typeof id === "string") void socket.leave(deviceRoom(id));
    });
    socket.on("chat:watch", (id) => {
      if (typeof id === "string" && CONVERSATION_ID.test(id)) void socket.join(conversationRoom(id));
    });
    socket.on("chat:unwatch", (id) => {
      if (typeof id === "string") void socket.leave(conversationRoom(id));
    });
  });

  // Fleet rows: a device that sends telemetry and status in the same instant is emitted once.
  const pending = new Map<string, DeviceSummary>();
  let timer: NodeJS.Timeout | null = null;
  const flushRows = () => {
    timer = null;
    for (const summary of pending.values()) io.to(FLEET_ROOM).emit("fleet:device", summary);
    pending.clear();
  };
  const onDevice = (summary: DeviceSummary) => {
    pending.set(summary.id, summary);
    timer ??= setTimeout(flushRows, COALESCE_MS);
  };
  const onRemoved = (deviceId: string) => {
    pending.delete(deviceId);
    io.to(FLEET_ROOM).emit("fleet:removed", { deviceId });
  };
  const onTelemetry = (deviceId: string, samples: TelemetrySample[]) => {
    io.to(deviceRoom(deviceId)).emit("device:telemetry", { deviceId, samples });
  };
  const onEvent = (deviceId: string, event: DeviceEvent) => {
    io.to(deviceRoom(deviceId)).emit("device:event", { deviceId, event });
  };
  fleet.on("device", onDevice);
  fleet.on("removed", onRemoved);
  fleet.on("telemetry", onTelemetry);
  fleet.on("event", onEvent);

  // Chat: every browser watching a conversation gets its answers as they stream (tokens are not coalesced).
  const chatHandlers = {
    message: (e: Parameters<ServerToClientEvents["chat:message"]>[0]) => io.to(conversationRoom(e.conversationId)).emit("chat:message", e),
    status: (e: Parameters<ServerToClientEvents["chat:status"]>[0]) => io.to(conversationRoom(e.conversationId)).emit("chat:status", e),
    tokens: (e: Parameters<ServerToClientEvents["chat:tokens"]>[0]) => io.to(conversationRoom(e.conversationId)).emit("chat:tokens", e),
    done: (e: Parameters<ServerToClientEvents["chat:done"]>[0]) => io.to(conversationRoom(e.conversationId)).emit("chat:done", e),
    error: (e: Parameters<ServerToClientEvents["chat:error"]>[0]) => io.to(conversationRoom(e.conversationId)).emit("chat:error", e),
  };
  conversations.on("message", chatHandlers.message);
  conversations.on("status", chatHandlers.status);
  conversations.on("tokens", chatHandlers.tokens);
  conversations.on("done", chatHandlers.done);
  conversations.on("error", chatHandlers.error);
  // Alerts: rare, sent to every signed-in browser as they open and clear.
  const onAlert = (alert: AlertDto) => io.to(FLEET_ROOM).emit("alert:changed", alert);
  alerts.on("changed", onAlert);
  // Benchmarks: a run's changes (coalesced by the service) to every signed-in browser.
  const onBench = (run: BenchRunDto) => io.to(FLEET_ROOM).emit("bench:changed", run);
  deps.benchmarks.on("changed", onBench);
  // Rollouts: a rollout's changes (coalesced by the service) to every signed-in browser.
  const onRollout = (rollout: RolloutDto) => io.to(FLEET_ROOM).emit("rollout:changed", rollout);
  deps.rollouts.on("changed", onRollout);
  // Runtime comparisons: the step and benchmark progress (coalesced by the service) to every signed-in browser.
  const onComparison = (c: RuntimeComparisonDto) => io.to(FLEET_ROOM).emit("bench:comparison", c);
  deps.comparisons.on("changed", onComparison);
  // Fleet totals: computed from memory (O(devices)) every TOTALS_MS while anyone is signed in.
  const totalsTimer = setInterval(() => {
    if ((io.sockets.adapter.rooms.get(FLEET_ROOM)?.size ?? 0) > 0) io.to(FLEET_ROOM).emit("fleet:totals", deps.throughput.totals());
  }, TOTALS_MS);
  log.debug("socket.io attached", { path: SOCKET_PATH });

  return {
    close: () =>
      new Promise<void>((resolve) => {
        fleet.off("device", onDevice);
        fleet.off("removed", onRemoved);
        fleet.off("telemetry", onTelemetry);
        fleet.off("event", onEvent);
        conversations.off("message", chatHandlers.message);
        conversations.off("status", chatHandlers.status);
        conversations.off("tokens", chatHandlers.tokens);
        conversations.off("done", chatHandlers.done);
        conversations.off("error", chatHandlers.error);
        alerts.off("changed", onAlert);
        deps.benchmarks.off("changed", onBench);
        deps.rollouts.off("changed", onRollout);
        deps.comparisons.off("changed", onComparison);
        if (timer) clearTimeout(timer);
        clearInterval(totalsTimer);
        clearInterval(recheckTimer);
        deps.auth.off("accessChanged", onAccessChanged);
        void io.close(() => resolve());
      }),
  };
}
