/**
 * Packet-size limits at the socket, for the embedded broker. Aedes parses with mqtt-packet,
 * which keeps every byte of a packet until the whole packet has arrived, and has no limit of
 * its own: a client that declares a 250 MB CONNECT is buffered to 250 MB before anything
 * checks it. So each connection's bytes pass through a small framer first: it reads only the
 * MQTT fixed header (packet type and the remaining-length varint) and skips the body, and the
 * connection is destroyed as soon as a packet declares more than the limit, before its body is
 * read. The first packet must be a CONNECT.
 */
import { Duplex } from "node:stream";

export type PacketRefusal =
  | { reason: "oversized"; declaredBytes: number; maxBytes: number; packetType: number }
  | { reason: "malformed_length" }
  | { reason: "not_connect"; packetType: number };

const CONNECT = 1;

/**
 * Follows MQTT packet boundaries across chunks (MQTT 3.1.1 §2.2: one type/flags byte, then a
 * remaining length of 1–4 bytes, 7 bits each, low first). Feed it every byte of a connection in
 * order; it returns the first refusal, and keeps returning it.
 */
export class MqttPacketFramer {
  #state: "type" | "length" | "body" = "type";
  #packetType = 0;
  #length = 0;
  #lengthBytes = 0;
  #multiplier = 1;
  #bodyLeft = 0;
  #packets = 0;
  #refused: PacketRefusal | null = null;

  constructor(private readonly maxPacketBytes: number) {}

  /** Packets whose header has been read completely (the one being received included). */
  get packets(): number {
    return this.#packets;
  }

  push(chunk: Uint8Array): PacketRefusal | null {
    if (this.#refused) return this.#refused;
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === "body") {
        const skip = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= skip;
        i += skip;
        if (this.#bodyLeft === 0) this.#state = "type";
        continue;
      }
      const byte = chunk[i++]!;
      if (this.#state === "type") {
        this.#packetType = byte >> 4;
        if (this.#packets === 0 && this.#packetType !== CONNECT)
          return this.#refuse({ reason: "not_connect", packetType: this.#packetType });
        this.#state = "length";
        this.#length = 0;
        this.#lengthBytes = 0;
        this.#multiplier = 1;
        continue;
      }
      // remaining length
      this.#length += (byte & 0x7f) * this.#multiplier;
      this.#multiplier *= 128;
      this.#lengthBytes++;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) return this.#refuse({ reason: "malformed_length" });
        continue;
      }
      this.#packets++;
      const total = 1 + this.#lengthBytes + this.#length;
      if (total > this.maxPacketBytes) return this.#oversized(total);
      this.#bodyLeft = this.#length;
      this.#state = this.#bodyLeft === 0 ? "type" : "body";
    }
    return null;
  }

  #oversized(declaredBytes: number): PacketRefusal {
    return this.#refuse({ reason: "oversized", declaredBytes, maxBytes: this.maxPacketBytes, packetType: this.#packetType });
  }

  #refuse(refusal: PacketRefusal): PacketRefusal {
    this.#refused = refusal;
    return refusal;
  }
}

/** The socket side of a guarded connection (a net.Socket, or any byte duplex such as a WebSocket stream). */
type ByteSocket = Duplex;

/**
 * Wraps a socket for Aedes: bytes reach the broker only after the framer has seen their packet's
 * header, and a refused packet destroys the socket at once (nothing more is read from it).
 * Writes, backpressure and close go straight through to the socket.
 */
export function guardConnection(socket: ByteSocket, maxPacketBytes: number, onRefused: (refusal: PacketRefusal) => void): Duplex {
  const framer = new MqttPacketFramer(maxPacketBytes);
  const conn = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, encoding, callback) {
      // Backpressure is the socket's own; its write errors arrive as 'error' (below).
      if (socket.write(chunk, encoding)) callback();
      else socket.once("drain", () => callback());
    },
    // mqtt-packet corks the stream while it writes a packet's parts: keep them one socket write.
    writev(chunks, callback) {
      socket.cork();
      let ok = true;
      for (const { chunk, encoding } of chunks) ok = socket.write(chunk as Buffer, encoding);
      socket.uncork();
      if (ok) callback();
      else socket.once("drain", () => callback());
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    const refusal = framer.push(chunk);
    if (refusal) {
      socket.destroy();
      conn.destroy();
      onRefused(refusal);
      return;
    }
    if (!conn.push(chunk)) socket.pause();
  });
  socket.on("end", () => conn.push(null));
  socket.on("error", (err) => conn.destroy(err));
  socket.on("close", () => conn.destroy());
  return conn;
}
