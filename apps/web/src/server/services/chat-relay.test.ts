/**
 * The relay's protocol handling and timeouts, with a fake clock and a recorder in
 * place of the MQTT link (the real link and agents are exercised in test/integration/chat.test.ts).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { DeviceCommand, GenerationStats } from "@orchard/contracts";
import { openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { ChatRelay, type GenerationEvent } from "./chat-relay.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";

const log = createLogger("error");
const runner = {
  state: "ready",
  backend: "sim",
  model: "sim (no model)",
  pid: 1,
  rssBytes: 1,
  maxContext: 2048,
  loadMs: 1,
  restarts: 0,
  lastError: null,
  version: null,
} as const;
const stats: GenerationStats = {
  backend: "sim",
  model: "sim (no model)",
  modelSha256: null,
  finishReason: "stop",
  promptTokens: 10,
  reusedTokens: 0,
  generatedTokens: 3,
  queueMs: 1,
  ttftMs: 5,
  prefillMs: 4,
  decodeMs: 10,
  prefillTokS: 2500,
  decodeTokS: 200,
  peakRssBytes: 1000,
  socTempC: null,
  throttleRaw: null,
};

describe("ChatRelay", () => {
  let db: Database;
  let fleet: FleetService;
  let relay: ChatRelay;
  let now: number;
  let sent: { deviceId: string; command: DeviceCommand }[];
  let deviceId: string;

  beforeEach(async () => {
    db = await openTestDatabase("pglite");
    now = 1_800_000_000_000;
    fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log, () => now);
    await fleet.load();
    const enrollment = new EnrollmentService(db.prisma, fleet);
    const { token } = await enrollment.createToken({ ttlMinutes: 5, createdById: null });
    deviceId = (await enrollment.enroll({ token, hostname: "pi", arch: "arm64", agentVersion: "1" }, "mqtt://h:1")).deviceId;
    fleet.applyStatus(deviceId, { state: "online", ts: now, agentVersion: "1", hostname: "pi", arch: "arm64", runner, activeModel: null });
    sent = [];
    relay = new ChatRelay(
      fleet,
      async (id, command) => void sent.push({ deviceId: id, command }),
      { acceptTimeoutMs: 15_000, silenceTimeoutMs: 20_000 },
      log,
      () => now,
    );
  });
  afterEach(async () => {
    relay.close();
    await db.close();
  });

  const start = () =>
    relay.start({ deviceId, session: "conv-1", messages: [{ role: "user", content: "hi" }], maxNewTokens: 16, temperature: 0, topP: 1 });

  it("publishes chat.start and relays accepted, tokens and done in order", async () => {
    const g = await start();
    const events: GenerationEvent[] = [];
    g.onEvent((e) => events.push(e));
    expect(sent[0]!.command).toMatchObject({ type: "chat.start", requestId: g.requestId, session: "conv-1", maxNewTokens: 16 });
    const rid = g.requestId;
    relay.handle(deviceId, { type: "accepted", requestId: rid, ts: now, queuePosition: 1 });
    relay.handle(deviceId, { type: "progress", requestId: rid, ts: now, phase: "prefill", queuePosition: 0, generatedTokens: 0 });
    relay.handle(deviceId, { type: "tokens", requestId: rid, seq: 0, ts: now, text: "Hel", count: 2 });
    relay.handle(deviceId, { type: "tokens", requestId: rid, seq: 0, ts: now, text: "Hel", count: 2 }); // a repeat is ignored
    relay.handle(deviceId, { type: "tokens", requestId: rid, seq: 1, ts: now, text: "lo", count: 1 });
    relay.handle("pi-otherdevice", { type: "done", requestId: rid, ts: now, text: "spoofed", stats }); // not the device that holds it
    relay.handle(deviceId, { type: "done", requestId: rid, ts: now, text: "Hello", stats });
    expect(await g.outcome).toEqual({ ok: true, text: "Hello", stats });
    expect(events).toEqual([
      { type: "status", phase: "sent", queuePosition: 0 },
      { type: "status", phase: "queued", queuePosition: 1 },
      { type: "status", phase: "prefill", queuePosition: 0 },
      { type: "tokens", seq: 0, text: "Hel", tokens: 2, ts: now },
      { type: "tokens", seq: 1, text: "lo", tokens: 3, ts: now },
    ]);
    expect(relay.inFlight(deviceId)).toBe(0);
  });

  it("sends chat.cancel for the request it holds", async () => {
    const g = await start();
    await g.cancel();
    await g.cancel(); // once is enough
    expect(sent.map((s) => s.command.type)).toEqual(["chat.start", "chat.cancel"]);
    expect(sent[1]!.command).toMatchObject({ requestId: g.requestId });
  });

  it("gives up on a device that never acknowledges the request", async () => {
    const g = await start();
    now += 14_000;
    relay.checkSilence();
    now += 2_000;
    relay.checkSilence();
    expect(await g.outcome).toMatchObject({ ok: false, code: "not_acknowledged" });
  });

  it("fails a request whose device goes silent, keeping the partial text", async () => {
    const g = await start();
    relay.handle(deviceId, { type: "tokens", requestId: g.requestId, seq: 0, ts: now, text: "Part", count: 1 });
    now += 19_000;
    relay.checkSilence();
    relay.handle(deviceId, { type: "progress", requestId: g.requestId, ts: now, phase: "decoding", queuePosition: 0, generatedTokens: 1 });
    now += 19_000;
    relay.checkSilence(); // the heartbeat kept it alive
    now += 2_000;
    relay.checkSilence();
    expect(await g.outcome).toMatchObject({ ok: false, code: "device_silent", partialText: "Part" });
  });

  it("fails at once when the device goes offline, and refuses devices that cannot answer", async () => {
    const g = await start();
    fleet.applyStatus(deviceId, { state: "offline", reason: "lost" });
    expect(await g.outcome).toMatchObject({ ok: false, code: "device_offline" });
    await expect(start()).rejects.toThrow(AppError);
    await expect(start()).rejects.toThrow(/offline/);
    fleet.applyStatus(deviceId, {
      state: "online",
      ts: now,
      agentVersion: "1",
      hostname: "pi",
      arch: "arm64",
      runner: { ...runner, state: "starting" },
      activeModel: null,
    });
    await expect(start()).rejects.toThrow(/loading its model/);
  });
});
