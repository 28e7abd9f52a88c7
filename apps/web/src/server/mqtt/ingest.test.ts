/**
 * Ingestion hardening with a fake clock: telemetry from a wrong clock (far future,
 * far past) is refused and counted; a flooding device is rate-limited per device
 * without starving others; chat streams have their own, larger bucket; finished chat
 * requests feed the per-device token and request counters.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { topics, type ChatStreamMessage, type TelemetrySample } from "@orchard/contracts";
import { DB_KINDS, openTestDatabase } from "../../../test/db.ts";
import type { Database } from "../db/client.ts";
import { createLogger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { EnrollmentService } from "../services/enrollment.ts";
import { FleetService } from "../services/fleet.ts";
import { createIngestor, DEFAULT_RATE_LIMITS, MAX_TELEMETRY_AGE_MS, MAX_TELEMETRY_FUTURE_MS } from "./ingest.ts";

const sample = (ts: number): TelemetrySample => ({
  ts,
  cpuPercent: 20,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  memTotalBytes: 8 * 2 ** 30,
  memAvailableBytes: 5 * 2 ** 30,
  swapTotalBytes: 0,
  swapUsedBytes: 0,
  diskTotalBytes: null,
  diskFreeBytes: null,
  socTempC: 55,
  throttle: null,
  runnerRssBytes: null,
  tokensPerSecond: null,
  prefillTokensPerSecond: null,
  generatedTokens: null,
  activeGenerations: null,
  cpuFreqHz: null,
  boardPowerW: null,
});
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe.each(DB_KINDS)("ingestion limits on %s", (kind) => {
  let db: Database;
  let fleet: FleetService;
  let metrics: Metrics;
  let now: number;
  let warnings: { msg: string; fields?: Record<string, unknown> }[];
  let handled: ChatStreamMessage[];
  let ingest: ReturnType<typeof createIngestor>;
  let a: string;
  let b: string;

  beforeEach(async () => {
    db = await openTestDatabase(kind);
    now = Date.parse("2026-11-28T12:00:00Z");
    fleet = new FleetService(db.prisma, { staleMs: 60_000 }, createLogger("error"), () => now);
    await fleet.load();
    metrics = new Metrics(fleet);
    warnings = [];
    handled = [];
    const log = { ...createLogger("error"), warn: (msg: string, fields?: Record<string, unknown>) => void warnings.push({ msg, fields }) };
    ingest = createIngestor({ fleet, chat: { handle: (_id, m) => void handled.push(m) }, metrics, log, now: () => now });
    const enrollment = new EnrollmentService(db.prisma, fleet);
    const enroll = async (hostname: string) =>
      (
        await enrollment.enroll(
          {
            token: (await enrollment.createToken({ ttlMinutes: 10, createdById: null })).token,
            hostname,
            arch: "arm64",
            agentVersion: "0.1.0",
          },
          "mqtt://h:1",
        )
      ).deviceId;
    a = await enroll("pi-a");
    b = await enroll("pi-b");
  });
  afterEach(async () => {
    await db.close();
  });

  const telemetry = (id: string, ts = now) => ingest(topics.telemetry(id), json({ samples: [sample(ts)] }));

  it("refuses telemetry stamped far in the future or the past, counted as bad_timestamp", async () => {
    expect(telemetry(a, now + MAX_TELEMETRY_FUTURE_MS)).toEqual({ ok: true }); // at the edge: accepted
    expect(telemetry(a, now - MAX_TELEMETRY_AGE_MS)).toEqual({ ok: true });
    expect(telemetry(a, now + MAX_TELEMETRY_FUTURE_MS + 1)).toMatchObject({ ok: false, reason: "bad_timestamp" });
    expect(telemetry(a, now - MAX_TELEMETRY_AGE_MS - 1)).toMatchObject({ ok: false, reason: "bad_timestamp" });
    expect(telemetry(a, Date.parse("1970-01-01T00:00:10Z"))).toMatchObject({ ok: false, reason: "bad_timestamp" }); // a Pi before NTP
    // One bad sample refuses the whole message: nothing from it is charted.
    const mixed = ingest(topics.telemetry(a), json({ samples: [sample(now - 1000), sample(now + 3600_000)] }));
    expect(mixed).toMatchObject({ ok: false, reason: "bad_timestamp" });
    expect(metrics.mqttRejected.get({ reason: "bad_timestamp" })).toBe(4);
    expect(metrics.mqttMessages.get({ kind: "telemetry" })).toBe(2);
    expect(fleet.get(a)?.telemetry?.ts).toBe(now + MAX_TELEMETRY_FUTURE_MS);
    // Impossible values are still the contract's to refuse.
    expect(ingest(topics.telemetry(a), json({ samples: [{ ...sample(now), socTempC: 10_000 }] }))).toMatchObject({ reason: "invalid" });
    await fleet.flush();
    expect(await db.prisma.telemetrySample.count()).toBe(2);
    expect(metrics.render()).toContain('orchard_mqtt_messages_rejected_total{reason="bad_timestamp"} 4');
  });

  it("refuses an event stamped beyond any date or carrying a NUL, counted as invalid and logged once, and the fleet's writes go on", async () => {
    const exit = { kind: "runner.exit", ts: now, code: 1, signal: null, stderrTail: "bye", restartInMs: 1000 };
    const runner = {
      state: "ready",
      backend: "sim",
      model: "sim",
      pid: 1,
      rssBytes: 1,
      maxContext: 8,
      loadMs: 1,
      restarts: 0,
      lastError: null,
    };
    const poisoned = [
      { ...exit, ts: 9e15 },
      { ...exit, stderrTail: "fatal\u0000garbage" },
      { kind: "command.result", ts: 9e15, commandId: "c1", ok: true, message: "" },
    ];
    for (const event of poisoned) expect(ingest(topics.events(a), json(event))).toMatchObject({ ok: false, reason: "invalid" });
    const status = { state: "online", ts: now, agentVersion: "1", hostname: "pi\u0000", arch: "arm64", activeModel: null, runner };
    expect(ingest(topics.status(a), json(status))).toMatchObject({
      ok: false,
      reason: "invalid",
      detail: expect.stringMatching(/hostname/),
    });
    expect(metrics.mqttRejected.get({ reason: "invalid" })).toBe(4);
    expect(warnings.filter((w) => w.fields?.device === a && w.fields.reason === "invalid")).toHaveLength(1);
    expect(fleet.get(a)?.online).toBe(false);
    // Nothing of it reached the writer: the other device's event and telemetry are stored.
    expect(ingest(topics.events(b), json(exit))).toEqual({ ok: true });
    expect(telemetry(b)).toEqual({ ok: true });
    await fleet.flush();
    expect(await db.prisma.deviceEvent.count()).toBe(1);
    expect(await db.prisma.telemetrySample.count({ where: { deviceId: b } })).toBe(1);
  });

  it("rate-limits a flooding device without starving another, and refills with time", async () => {
    const { burst, perSecond } = DEFAULT_RATE_LIMITS.device;
    const results = Array.from({ length: burst + 50 }, () => telemetry(a));
    expect(results.filter((r) => r.ok)).toHaveLength(burst);
    expect(results.slice(burst).every((r) => !r.ok && r.reason === "rate_limited")).toBe(true);
    expect(metrics.mqttRejected.get({ reason: "rate_limited" })).toBe(50);
    // The other device is untouched.
    for (let i = 0; i < 10; i++) expect(telemetry(b)).toEqual({ ok: true });
    // One warning per device and reason, however long the flood lasts (throttled per minute).
    expect(warnings.filter((w) => w.fields?.reason === "rate_limited")).toHaveLength(1);
    // Sustained: perSecond more per second of fake time, not more.
    now += 1000;
    const next = Array.from({ length: perSecond + 5 }, () => telemetry(a));
    expect(next.filter((r) => r.ok)).toHaveLength(perSecond);
    // Quiet for long enough, the device gets its whole burst back (never more).
    now += 60_000;
    expect(Array.from({ length: burst + 1 }, () => telemetry(a)).filter((r) => r.ok)).toHaveLength(burst);
    now += 61_000;
    telemetry(a);
    expect(Array.from({ length: burst + 1 }, () => telemetry(a)).filter((r) => !r.ok)).toHaveLength(2);
    // Warned at 0 s, then at 61 s and 122 s: at most once a minute.
    expect(warnings.filter((w) => w.fields?.reason === "rate_limited")).toHaveLength(3);
    // A device at the real cadence (1 Hz telemetry) never hits the limit.
    for (let s = 0; s < 300; s++) {
      now += 1000;
      expect(telemetry(b)).toEqual({ ok: true });
    }
  });

  it("gives chat streams their own larger bucket; finished requests feed the token and request counters", () => {
    const req = "req-1";
    const chunk = (seq: number): ChatStreamMessage => ({ type: "tokens", requestId: req, seq, ts: now, text: "hi", count: 2 });
    // A device spends its whole device bucket; its chat stream still goes through.
    Array.from({ length: DEFAULT_RATE_LIMITS.device.burst + 1 }, () => telemetry(a));
    // A generation streaming a chunk every 50 ms (20/s) for 60 s never hits the chat limit.
    for (let i = 0; i < 1200; i++) {
      now += 50;
      expect(ingest(topics.chat(a, req), json(chunk(i)))).toEqual({ ok: true });
    }
    const stats = {
      backend: "sim",
      model: null,
      modelSha256: null,
      finishReason: "stop" as const,
      promptTokens: 5,
      reusedTokens: 0,
      generatedTokens: 2400,
      queueMs: 0,
      ttftMs: 10,
      prefillMs: 10,
      decodeMs: 60_000,
      prefillTokS: 500,
      decodeTokS: 40,
      peakRssBytes: 1,
      socTempC: null,
      throttleRaw: null,
    };
    expect(ingest(topics.chat(a, req), json({ type: "done", requestId: req, ts: now, text: "hi", stats }))).toEqual({ ok: true });
    expect(
      ingest(
        topics.chat(a, "req-2"),
        json({ type: "done", requestId: "req-2", ts: now, text: "", stats: { ...stats, finishReason: "cancelled", generatedTokens: 3 } }),
      ),
    ).toEqual({ ok: true });
    expect(
      ingest(topics.chat(a, "req-3"), json({ type: "error", requestId: "req-3", ts: now, code: "queue_full", message: "busy" })),
    ).toEqual({ ok: true });
    expect(
      ingest(topics.chat(a, "req-1"), json({ type: "error", requestId: "req-1", ts: now, code: "duplicate", message: "again" })),
    ).toEqual({ ok: true });
    expect(handled).toHaveLength(1204);
    expect(metrics.generatedTokens.get({ device: a })).toBe(2403);
    expect(metrics.chatRequests.get({ device: a, outcome: "stop" })).toBe(1);
    expect(metrics.chatRequests.get({ device: a, outcome: "cancelled" })).toBe(1);
    expect(metrics.chatRequests.get({ device: a, outcome: "error" })).toBe(1); // duplicate refuses only a repeated start
    const text = metrics.render();
    expect(text).toContain(`orchard_generated_tokens_total{device="${a}"} 2403`);
    expect(text).toContain(`orchard_chat_requests_total{device="${a}",outcome="stop"} 1`);
    // A chat flood is limited too, at its own rate.
    const flood = Array.from({ length: DEFAULT_RATE_LIMITS.chat.burst + 10 }, (_, i) => ingest(topics.chat(b, req), json(chunk(i))));
    expect(flood.filter((r) => !r.ok && r.reason === "rate_limited")).toHaveLength(10);
    expect(telemetry(b)).toEqual({ ok: true });
  });
});
