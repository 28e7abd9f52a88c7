import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ChatErrorEvent, ConversationMessageDto, GenerationStats } from "@orchard/contracts";
import { openTestDatabase } from "../../../test/db.ts";
import type { Database, Prisma } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { ChatRelay } from "./chat-relay.ts";
import { ConversationService, historyForModel, storableText } from "./conversations.ts";
import { EnrollmentService } from "./enrollment.ts";
import { FleetService } from "./fleet.ts";

describe("historyForModel", () => {
  it("keeps question-answer pairs that produced text, drops a question whose answer failed", () => {
    expect(
      historyForModel([
        { role: "user", content: "a", status: "complete" },
        { role: "assistant", content: "b", status: "complete" },
        { role: "user", content: "c", status: "complete" },
        { role: "assistant", content: "partial", status: "error" },
        { role: "user", content: "d", status: "complete" },
        { role: "assistant", content: "stopped early", status: "cancelled" },
        { role: "user", content: "e", status: "complete" },
        { role: "assistant", content: "", status: "cancelled" },
      ]),
    ).toEqual([
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: "d" },
      { role: "assistant", content: "stopped early" },
    ]);
  });
});

describe("storableText", () => {
  it("replaces the NUL a model can emit (PostgreSQL text cannot hold it) and leaves other text alone", () => {
    expect(storableText("a\u0000b\u0000")).toBe("a\uFFFDb\uFFFD");
    expect(storableText("plain ✓ text")).toBe("plain ✓ text");
  });
});

/**
 * Storing a finished answer while the database fails: the real service, relay and fleet on
 * PGlite, with the message table's updateMany failing a set number of times.
 */
describe("ConversationService storing an answer", () => {
  const log = createLogger("error");
  const runner = {
    state: "ready",
    backend: "sim",
    model: "sim",
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
    model: "sim",
    modelSha256: null,
    finishReason: "stop",
    promptTokens: 3,
    reusedTokens: 0,
    generatedTokens: 2,
    queueMs: 1,
    ttftMs: 1,
    prefillMs: 1,
    decodeMs: 1,
    prefillTokS: 1,
    decodeTokS: 1,
    peakRssBytes: 1,
    socTempC: null,
    throttleRaw: null,
  };
  let db: Database;
  let relay: ChatRelay;
  let deviceId: string;
  let failures: number;
  let service: ConversationService;
  const done: ConversationMessageDto[] = [];
  const errors: ChatErrorEvent[] = [];

  beforeEach(async () => {
    db = await openTestDatabase("pglite");
    const fleet = new FleetService(db.prisma, { staleMs: 600_000 }, log);
    await fleet.load();
    const enrollment = new EnrollmentService(db.prisma, fleet);
    const { token } = await enrollment.createToken({ ttlMinutes: 5, createdById: null });
    deviceId = (await enrollment.enroll({ token, hostname: "pi", arch: "arm64", agentVersion: "1" }, "mqtt://h:1")).deviceId;
    fleet.applyStatus(deviceId, {
      state: "online",
      ts: Date.now(),
      agentVersion: "1",
      hostname: "pi",
      arch: "arm64",
      runner,
      activeModel: null,
    });
    relay = new ChatRelay(fleet, async () => undefined, { acceptTimeoutMs: 60_000, silenceTimeoutMs: 60_000 }, log);
    failures = 0;
    // The real client, except that storing a message fails while `failures` > 0.
    const messages = new Proxy(db.prisma.conversationMessage, {
      get(target, prop, receiver) {
        if (prop === "updateMany")
          return (...args: Parameters<typeof target.updateMany>) => {
            if (failures > 0) {
              failures -= 1;
              return Promise.reject(new Error("connection terminated unexpectedly"));
            }
            return target.updateMany(...args);
          };
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const prisma = new Proxy(db.prisma, {
      get: (target, prop, receiver) => (prop === "conversationMessage" ? messages : (Reflect.get(target, prop, receiver) as unknown)),
    }) as Prisma;
    service = new ConversationService(prisma, fleet, relay, log, { attempts: 3, delayMs: 5 });
    done.length = 0;
    errors.length = 0;
    service.on("done", (e) => done.push(e.message));
    service.on("error", (e) => errors.push(e));
  });
  afterEach(async () => {
    relay.close();
    await db.close();
  });

  async function answer(text: string) {
    const sent = await service.send({ deviceId, content: "hi", options: { maxNewTokens: 8, temperature: 0, topP: 1 } });
    const requestId = (await db.prisma.conversationMessage.findUniqueOrThrow({ where: { id: sent.assistantMessageId } })).requestId!;
    relay.handle(deviceId, { type: "accepted", requestId, ts: Date.now(), queuePosition: 0 });
    relay.handle(deviceId, { type: "done", requestId, ts: Date.now(), text, stats });
    return sent;
  }
  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!ok()) throw new Error(`timed out waiting for ${what}`);
  };

  it("retries while the database fails and stores the answer once it is back", async () => {
    failures = 2;
    const sent = await answer("Paris");
    await until("the stored answer", () => done.length === 1);
    expect(done[0]).toMatchObject({ id: sent.assistantMessageId, status: "complete", content: "Paris" });
    expect(errors).toEqual([]);
    const row = await db.prisma.conversationMessage.findUniqueOrThrow({ where: { id: sent.assistantMessageId } });
    expect(row).toMatchObject({ status: "complete", content: "Paris" });
  });

  it("tells the browser the answer was not saved when the database keeps failing, instead of leaving it streaming", async () => {
    failures = 3;
    const sent = await answer("Paris");
    await until("the not_saved error", () => errors.length === 1);
    expect(errors[0]).toMatchObject({ messageId: sent.assistantMessageId, code: "not_saved" });
    expect(errors[0]!.message).toMatch(/could not be saved \(the database failed 3 times: connection terminated unexpectedly\)/);
    expect(done).toEqual([]);
    // Nothing more is attempted; the next start marks the row interrupted.
    expect((await db.prisma.conversationMessage.findUniqueOrThrow({ where: { id: sent.assistantMessageId } })).status).toBe("streaming");
    expect(await service.recoverInterrupted()).toBe(1);
  });
});
