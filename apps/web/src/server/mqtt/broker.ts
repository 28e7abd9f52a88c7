/**
 * The embedded MQTT broker (Aedes, MQTT 3.1.1) for a laptop or a small lab.
 * Every client authenticates: the server with a secret generated at start, each
 * device with the credentials it got at enrollment (username = client id = device
 * id). A device may publish and subscribe only inside its own subtree, and no more
 * than MAX_DEVICE_PAYLOAD_BYTES at a time; a denied publish closes its connection,
 * a denied subscription is answered with 0x80.
 *
 * Limits before anything is buffered: every connection's bytes pass a framer
 * (packet-guard.ts) that destroys the socket as soon as a packet declares more than
 * MAX_MQTT_PACKET_BYTES, or when the first packet is not a CONNECT; a CONNECT must
 * arrive within CONNECT_TIMEOUT_MS. A retain flag is kept only where the protocol
 * retains (a device's status): on telemetry, events or chat it is cleared and the
 * message is delivered as an ordinary one.
 */
import net from "node:net";
import { Aedes, type AuthenticateError } from "aedes";
import {
  MAX_DEVICE_PAYLOAD_BYTES,
  MAX_MQTT_PACKET_BYTES,
  deviceMayPublish,
  deviceMaySubscribe,
  isRetainedByProtocol,
} from "@orchard/contracts";
import { throttled, type Logger } from "../log.ts";
import { guardConnection } from "./packet-guard.ts";

/** How long a new connection may take to send its CONNECT (Aedes' default is 30 s). */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface EmbeddedBroker {
  port: number;
  /** Disconnects a device (after it was deleted or its credentials changed). */
  disconnect(clientId: string): void;
  connectedClients(): number;
  close(): Promise<void>;
}

export interface BrokerAuth {
  serverUsername: string;
  serverPassword: string;
  verifyDevice(deviceId: string, password: string): boolean;
}

const authError = (message: string): AuthenticateError => Object.assign(new Error(message), { returnCode: 4 as const });

export async function startEmbeddedBroker(opts: { host: string; port: number; auth: BrokerAuth; log: Logger }): Promise<EmbeddedBroker> {
  const { auth, log } = opts;
  const serverClients = new Set<string>();
  const warnOnce = throttled(60_000);

  const broker = await Aedes.createBroker({
    connectTimeout: CONNECT_TIMEOUT_MS,
    authenticate(client, username, password, done) {
      const pw = password?.toString("utf8") ?? "";
      if (username === auth.serverUsername && pw === auth.serverPassword) {
        serverClients.add(client.id);
        return done(null, true);
      }
      if (username !== undefined && username === client.id && auth.verifyDevice(username, pw)) {
        return done(null, true);
      }
      warnOnce(`auth:${client.id}`, () => log.warn("refused an MQTT client: bad credentials", { clientId: client.id, username }));
      return done(authError("bad username or password"), false);
    },
    authorizePublish(client, packet, callback) {
      if (!client) return callback(null); // the broker's own messages (last wills are checked below)
      if (serverClients.has(client.id)) return callback(null);
      if (packet.payload.length > MAX_DEVICE_PAYLOAD_BYTES) {
        // Not forwarded to anyone; the server's ingestion would drop it anyway.
        warnOnce(`size:${client.id}`, () => log.warn("refused an oversized publish", { device: client.id, bytes: packet.payload.length }));
        return callback(new Error("payload too large"));
      }
      if (!deviceMayPublish(client.id, packet.topic)) {
        warnOnce(`pub:${client.id}`, () =>
          log.warn("refused a publish outside the device's subtree", { device: client.id, topic: packet.topic }),
        );
        return callback(new Error("publish outside the device's own subtree"));
      }
      if (packet.retain && !isRetainedByProtocol(packet.topic)) {
        // Delivered, but not kept for later subscribers (MQTT 3.1.1 has no way to refuse only the flag).
        warnOnce(`retain:${client.id}`, () =>
          log.warn("cleared the retain flag of a publish on a topic the protocol does not retain", {
            device: client.id,
            topic: packet.topic,
          }),
        );
        packet.retain = false;
      }
      return callback(null);
    },
    authorizeSubscribe(client, subscription, callback) {
      if (serverClients.has(client.id) || deviceMaySubscribe(client.id, subscription.topic)) return callback(null, subscription);
      warnOnce(`sub:${client.id}`, () =>
        log.warn("refused a subscription outside the device's subtree", { device: client.id, topic: subscription.topic }),
      );
      // A null subscription is refused with SUBACK 0x80 and the client stays connected (an error would drop it).
      return callback(null, null);
    },
  });

  // A last will is published by the broker on the client's behalf, so it skips authorizePublish:
  // drop wills that point outside the device's subtree when the client connects, and clear the
  // retain flag of one on a topic the protocol does not retain (as for a publish).
  broker.on("client", (client) => {
    const will = (client as unknown as { will?: { topic: string; retain?: boolean } | null }).will;
    if (!will || serverClients.has(client.id)) return;
    if (!deviceMayPublish(client.id, will.topic)) {
      log.warn("dropped a last will outside the device's subtree", { device: client.id, topic: will.topic });
      (client as unknown as { will: null }).will = null;
    } else if (will.retain && !isRetainedByProtocol(will.topic)) {
      log.warn("cleared the retain flag of a last will on a topic the protocol does not retain", { device: client.id, topic: will.topic });
      will.retain = false;
    }
  });
  broker.on("clientDisconnect", (client) => serverClients.delete(client.id));

  // Each socket reaches Aedes through the packet-size guard.
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined); // reported through the guarded connection
    broker.handle(
      guardConnection(socket, MAX_MQTT_PACKET_BYTES, (refusal) =>
        warnOnce(`packet:${socket.remoteAddress}`, () =>
          log.warn("closed an MQTT connection before reading its packet", { ...refusal, remote: socket.remoteAddress }),
        ),
      ),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new Error(`MQTT port ${opts.port} is in use: set MQTT_PORT to a free port, or MQTT_URL to use an external broker`)
          : err,
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;

  return {
    port,
    disconnect(clientId) {
      const clients = (broker as unknown as { clients: Record<string, { close(): void }> }).clients;
      clients[clientId]?.close();
    },
    connectedClients: () => broker.connectedClients,
    close: () =>
      new Promise<void>((resolve) => {
        // Close client sockets first so server.close() does not wait for idle devices.
        const clients = (broker as unknown as { clients: Record<string, { close(): void }> }).clients;
        for (const c of Object.values(clients)) c.close();
        broker.close(() => server.close(() => resolve()));
      }),
  };
}
