import { describe, expect, it } from "vitest";
import { MqttPacketFramer } from "./packet-guard.ts";

/** MQTT remaining length (§2.2.3): 7 bits a byte, low first. */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}
const packet = (firstByte: number, body: Buffer) => Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
const connect = packet(
  0x10,
  Buffer.concat([Buffer.from([0, 4]), Buffer.from("MQTT"), Buffer.from([4, 0x02, 0, 60, 0, 6]), Buffer.from("pi-abc")]),
);
const topic = Buffer.from("orchard/v1/devices/pi-abc/telemetry");
const publish = (payloadBytes: number) =>
  packet(0x30, Buffer.concat([Buffer.from([0, topic.length]), topic, Buffer.alloc(payloadBytes, 0x20)]));
const pingreq = Buffer.from([0xc0, 0x00]);

/** Feeds `bytes` in chunks of `size` and returns the first refusal. */
function feed(framer: MqttPacketFramer, bytes: Buffer, size: number) {
  for (let i = 0; i < bytes.length; i += size) {
    const refusal = framer.push(bytes.subarray(i, i + size));
    if (refusal) return refusal;
  }
  return null;
}

describe("MqttPacketFramer", () => {
  it("follows packet boundaries however the bytes are split", () => {
    const stream = Buffer.concat([connect, publish(1000), pingreq, publish(0), publish(300_000 - 100)]);
    for (const size of [1, 2, 3, 7, 64, 4096, stream.length]) {
      const framer = new MqttPacketFramer(400_000);
      expect(feed(framer, stream, size), `chunks of ${size}`).toBeNull();
      expect(framer.packets).toBe(5);
    }
  });

  it("accepts a packet of exactly the limit and refuses one byte more, from its header alone", () => {
    const packet = publish(2000);
    expect(feed(new MqttPacketFramer(packet.length), Buffer.concat([connect, packet]), 5)).toBeNull();
    const header = Buffer.concat([connect, packet.subarray(0, 4)]); // type byte and remaining length only
    expect(new MqttPacketFramer(packet.length - 1).push(header)).toEqual({
      reason: "oversized",
      declaredBytes: packet.length,
      maxBytes: packet.length - 1,
      packetType: 3,
    });
  });

  it("refuses a 250 MB CONNECT after its first five bytes", () => {
    const framer = new MqttPacketFramer(263_168);
    // 250 MiB = 0x0FA00000 as a remaining length: 0x80 0x80 0x80 0x7D.
    expect(framer.push(Buffer.from([0x10, 0x80, 0x80, 0x80]))).toBeNull();
    expect(framer.push(Buffer.from([0x7d]))).toMatchObject({ reason: "oversized", declaredBytes: 250 * 1024 * 1024 + 5 });
    // Once refused, it stays refused.
    expect(framer.push(pingreq)).toMatchObject({ reason: "oversized" });
  });

  it("refuses a first packet that is not a CONNECT, and a remaining length longer than four bytes", () => {
    expect(new MqttPacketFramer(1000).push(publish(10))).toEqual({ reason: "not_connect", packetType: 3 });
    const framer = new MqttPacketFramer(1000);
    expect(framer.push(connect)).toBeNull();
    expect(framer.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff]))).toEqual({ reason: "malformed_length" });
  });
});
