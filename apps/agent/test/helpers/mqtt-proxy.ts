/**
 * A TCP proxy between an MQTT client and a broker, on 127.0.0.1, that reads the
 * MQTT packets going through (type, topic, message id, payload) and can hold
 * what the broker sends back (e.g. a PUBACK) until released. Tests use it to see
 * in which order a client sends packets relative to the acknowledgements it got.
 */
import net from "node:net";

export const PUBLISH = 3;
export const PUBACK = 4;

export interface ProxiedPacket {
  /** up: client → broker; down: broker → client (recorded when delivered to the client). */
  dir: "up" | "down";
  type: number;
  topic: string | null;
  messageId: number | null;
  payload: string | null;
}

/** Splits a byte stream into MQTT packets (fixed header: type, remaining length as a varint). */
class PacketSplitter {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const packets: Buffer[] = [];
    for (;;) {
      let length = 0;
      let multiplier = 1;
      let i = 1;
      for (; i < Math.min(this.#buf.length, 5); i++) {
        const b = this.#buf[i]!;
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if ((b & 0x80) === 0) break;
      }
      if (i >= this.#buf.length || i >= 5) return packets; // the header is not complete yet
      const total = i + 1 + length;
      if (this.#buf.length < total) return packets;
      packets.push(this.#buf.subarray(0, total));
      this.#buf = this.#buf.subarray(total);
    }
  }
}

function describePacket(dir: "up" | "down", packet: Buffer): ProxiedPacket {
  const type = packet[0]! >> 4;
  let pos = 1;
  while (packet[pos]! & 0x80) pos++;
  pos++;
  if (type === PUBLISH) {
    const qos = (packet[0]! >> 1) & 3;
    const topicLength = packet.readUInt16BE(pos);
    const topic = packet.subarray(pos + 2, pos + 2 + topicLength).toString("utf8");
    pos += 2 + topicLength;
    const messageId = qos > 0 ? packet.readUInt16BE(pos) : null;
    if (qos > 0) pos += 2;
    return { dir, type, topic, messageId, payload: packet.subarray(pos).toString("utf8") };
  }
  const messageId = type === PUBACK ? packet.readUInt16BE(pos) : null;
  return { dir, type, topic: null, messageId, payload: null };
}

export class MqttProxy {
  readonly packets: ProxiedPacket[] = [];
  /** Called for every packet the client sends, before it is forwarded. */
  onUpstream: ((packet: ProxiedPacket) => void) | null = null;
  #server: net.Server | null = null;
  #sockets = new Set<net.Socket>();
  #held = false;
  #waiting: (() => void)[] = [];
  port = 0;

  private constructor(readonly brokerPort: number) {}

  static async start(brokerPort: number): Promise<MqttProxy> {
    const proxy = new MqttProxy(brokerPort);
    proxy.#server = net.createServer((client) => proxy.#handle(client));
    await new Promise<void>((resolve) => proxy.#server!.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.#server.address() as net.AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** From now on, what the broker sends is kept back until release(). */
  hold(): void {
    this.#held = true;
  }

  release(): void {
    this.#held = false;
    for (const deliver of this.#waiting.splice(0)) deliver();
  }

  get holding(): boolean {
    return this.#held;
  }

  #handle(client: net.Socket): void {
    const upstream = net.connect(this.brokerPort, "127.0.0.1");
    this.#sockets.add(client).add(upstream);
    const up = new PacketSplitter();
    const down = new PacketSplitter();
    client.on("data", (chunk: Buffer) => {
      for (const packet of up.push(chunk)) {
        const described = describePacket("up", packet);
        this.packets.push(described);
        this.onUpstream?.(described);
        upstream.write(packet);
      }
    });
    upstream.on("data", (chunk: Buffer) => {
      for (const packet of down.push(chunk)) {
        const deliver = () => {
          this.packets.push(describePacket("down", packet));
          if (!client.destroyed) client.write(packet);
        };
        // Once anything waits, later packets wait behind it (the order is kept).
        if (this.#held || this.#waiting.length > 0) this.#waiting.push(deliver);
        else deliver();
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(upstream);
    };
    client.on("close", close).on("error", close);
    upstream.on("close", close).on("error", close);
  }

  async stop(): Promise<void> {
    this.release();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#server = null;
  }
}
