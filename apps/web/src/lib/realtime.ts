"use client";
/**
 * The live link to the server (socket.io, authenticated by the session cookie).
 * One socket per tab, created on first use. Hooks expose its state, its events,
 * the fleet rows merged into the react-query cache, and watches of device and
 * conversation rooms that survive reconnects.
 */
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useSyncExternalStore } from "react";
import { io, type Socket } from "socket.io-client";
import {
  SOCKET_PATH,
  SOCKET_UNAUTHORIZED,
  type ClientToServerEvents,
  type DeviceSummary,
  type ServerToClientEvents,
} from "@orchard/contracts";
import { useTRPC } from "./trpc";

type OrchardSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * connecting: first attempt; live: connected; reconnecting: the link dropped and
 * socket.io is retrying; signed_out: the server refused the session.
 */
export type LinkState = "connecting" | "live" | "reconnecting" | "signed_out";

let socket: OrchardSocket | null = null;
let linkState: LinkState = "connecting";
let everConnected = false;
const stateListeners = new Set<() => void>();
const reconnectListeners = new Set<() => void>();

function setLinkState(next: LinkState): void {
  if (next === linkState) return;
  linkState = next;
  for (const l of stateListeners) l();
}

function getSocket(): OrchardSocket {
  if (socket) return socket;
  // WebSocket only: its handshake always carries Origin, which the server checks against the session cookie
  // (CSRF); a long-polling GET over plain http on a LAN address carries neither Origin nor Sec-Fetch-Site.
  const s: OrchardSocket = io({ path: SOCKET_PATH, withCredentials: true, transports: ["websocket"] });
  s.on("connect", () => {
    setLinkState("live");
    // Whatever happened while the link was down was not pushed to us: listeners catch up.
    if (everConnected) for (const l of reconnectListeners) l();
    everConnected = true;
  });
  s.on("disconnect", (reason) => {
    setLinkState("reconnecting");
    // The server closed the connection on purpose; socket.io does not retry that by itself.
    if (reason === "io server disconnect") s.connect();
  });
  s.on("connect_error", (err) => {
    if ((err as Error & { data?: { code?: string } }).data?.code === SOCKET_UNAUTHORIZED) {
      setLinkState("signed_out");
      return; // retrying with the same cookie cannot succeed
    }
    setLinkState(everConnected ? "reconnecting" : "connecting");
  });
  socket = s;
  return s;
}

/** Closes the link (on sign-out); the next hook that needs it opens a new one. */
export function closeRealtime(): void {
  socket?.disconnect();
  socket = null;
  everConnected = false;
  linkState = "connecting";
}

function subscribeState(listener: () => void): () => void {
  getSocket();
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}

export function useLinkState(): LinkState {
  return useSyncExternalStore(
    subscribeState,
    () => linkState,
    () => "connecting",
  );
}

/** Calls the handler for every `event` while the component is mounted (always the latest handler). */
export function useSocketEvent<E extends keyof ServerToClientEvents>(event: E, handler: ServerToClientEvents[E]): void {
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => {
    const s = getSocket();
    const listener = ((...args: Parameters<ServerToClientEvents[E]>) =>
      (ref.current as (...a: Parameters<ServerToClientEvents[E]>) => void)(...args)) as ServerToClientEvents[E];
    // socket.io's typed `on` cannot follow a generic event name; the listener has exactly the event's type.
    (s.on as (ev: E, l: ServerToClientEvents[E]) => OrchardSocket)(event, listener);
    return () => {
      (s.off as (ev: E, l: ServerToClientEvents[E]) => OrchardSocket)(event, listener);
    };
  }, [event]);
}

/** Calls `onReconnect` each time the link comes back after dropping. */
export function useOnReconnect(onReconnect: () => void): void {
  const ref = useRef(onReconnect);
  useEffect(() => {
    ref.current = onReconnect;
  });
  useEffect(() => {
    const l = () => ref.current();
    reconnectListeners.add(l);
    return () => {
      reconnectListeners.delete(l);
    };
  }, []);
}

/** How many holders watch each room ("device:<id>", "chat:<id>"); a room is joined once and left when the last one lets go. */
const watchCounts = new Map<string, number>();
/** The rejoin-after-reconnect handler of each watched room. */
const rejoiners = new Map<string, () => void>();

type RoomKind = "device" | "chat";

function emitWatch(s: OrchardSocket, kind: RoomKind, id: string, join: boolean): void {
  if (kind === "device") s.emit(join ? "device:watch" : "device:unwatch", id);
  else s.emit(join ? "chat:watch" : "chat:unwatch", id);
}

/** Joins a room until the returned function is called; joins it again after every reconnect (rooms do not survive one). */
function acquireWatch(kind: RoomKind, id: string): () => void {
  const s = getSocket();
  const key = `${kind}:${id}`;
  const count = watchCounts.get(key) ?? 0;
  watchCounts.set(key, count + 1);
  if (count === 0) {
    const rejoin = () => emitWatch(s, kind, id, true);
    rejoiners.set(key, rejoin);
    s.on("connect", rejoin);
    if (s.connected) rejoin();
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const left = (watchCounts.get(key) ?? 1) - 1;
    if (left > 0) {
      watchCounts.set(key, left);
      return;
    }
    watchCounts.delete(key);
    const rejoin = rejoiners.get(key);
    if (rejoin) s.off("connect", rejoin);
    rejoiners.delete(key);
    if (s.connected) emitWatch(s, kind, id, false);
  };
}

/**
 * Joins the device's room (telemetry and events) while mounted, and again after every
 * reconnect. Several components may watch the same device.
 */
export function useDeviceWatch(deviceId: string): void {
  useEffect(() => acquireWatch("device", deviceId), [deviceId]);
}

/** Joins a conversation's room (its messages and streamed answers) until the returned function is called. */
export function watchConversation(conversationId: string): () => void {
  return acquireWatch("chat", conversationId);
}

/** Watches a conversation while mounted (null: nothing to watch yet). */
export function useConversationWatch(conversationId: string | null): void {
  useEffect(() => (conversationId ? acquireWatch("chat", conversationId) : undefined), [conversationId]);
}

const byName = (a: DeviceSummary, b: DeviceSummary) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);

/**
 * Rows arriving within this long are applied to the cache together: the server sends each
 * device at most every 250 ms, but all of them at once, so a fleet of 1,000 sends hundreds of
 * rows in a burst; applying them one by one would copy (and re-render) the list hundreds of times.
 */
const ROW_BATCH_MS = 100;

/**
 * Keeps the fleet in the react-query cache current: `fleet:device` rows (batched, see
 * ROW_BATCH_MS) replace (or add) their entries in devices.list and devices.get,
 * `fleet:removed` drops one, and a reconnect refetches what may have been missed.
 */
export function useFleetSync(): void {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const pending = useRef(new Map<string, DeviceSummary>());
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const applyPending = () => {
    timer.current = null;
    const batch = pending.current;
    pending.current = new Map();
    let added = false;
    queryClient.setQueryData(trpc.devices.list.queryKey(), (rows) => {
      if (!rows) return rows; // not loaded yet: the fetch will include them
      let reorder = false;
      const seen = new Set<string>();
      const next = rows.map((r) => {
        const d = batch.get(r.id);
        if (!d) return r;
        seen.add(r.id);
        if (d.name !== r.name) reorder = true;
        return d;
      });
      for (const d of batch.values()) {
        if (seen.has(d.id)) continue;
        next.push(d);
        added = reorder = true;
      }
      return reorder ? next.sort(byName) : next;
    });
    for (const device of batch.values()) {
      const single = trpc.devices.get.queryKey({ id: device.id });
      if (queryClient.getQueryData(single)) queryClient.setQueryData(single, device);
    }
    // A new device used up an enrollment token.
    if (added) void queryClient.invalidateQueries({ queryKey: trpc.enrollment.listPending.queryKey() });
  };

  useSocketEvent("fleet:device", (device) => {
    pending.current.set(device.id, device);
    timer.current ??= setTimeout(applyPending, ROW_BATCH_MS);
  });
  useEffect(
    () => () => {
      if (timer.current) clearTimeout(timer.current);
    },
    [],
  );

  useSocketEvent("fleet:removed", ({ deviceId }) => {
    pending.current.delete(deviceId);
    queryClient.setQueryData(trpc.devices.list.queryKey(), (rows) => rows?.filter((r) => r.id !== deviceId));
  });

  useOnReconnect(() => {
    void queryClient.invalidateQueries({ queryKey: trpc.devices.pathKey() });
    void queryClient.invalidateQueries({ queryKey: trpc.system.info.queryKey() });
  });
}
