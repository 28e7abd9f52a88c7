/**
 * 1,000 SIMULATED devices (test/sim/fleet-sim.ts) at 1 Hz for 30 s against the real
 * server (embedded broker, PGlite): every device comes online; every telemetry message
 * the simulator sent is ingested (/metrics) and stored (TelemetrySample rows, read
 * from the PGlite directory after the server's final flush); one device flooding
 * messages is rate-limited while every other device's telemetry still arrives in full.
 * No timing is asserted: counts are awaited until they settle.
 */
import { PGlite } from "@electric-sql/pglite";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetSim, SIM_MODEL } from "../sim/fleet-sim.ts";
import { removeDir, startServer, waitFor, type TestServer } from "../support/harness.ts";

const DEVICES = Number(process.env.ORCHARD_SCALE_DEVICES ?? 1000);
const SECONDS = Number(process.env.ORCHARD_SCALE_SECONDS ?? 30);
const FLOOD = 3000;

async function scrape(server: TestServer): Promise<string> {
  const res = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } });
  if (!res.ok) throw new Error(`/metrics: ${res.status}`);
  return res.text();
}
const metric = (text: string, series: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe(`fleet at scale: ${DEVICES} simulated devices at 1 Hz for ${SECONDS} s`, () => {
  let server: TestServer;
  let sim: FleetSim;
  let flooder: string;
  let floodSent = 0;

  beforeAll(async () => {
    server = await startServer({ env: { ORCHARD_LOG_LEVEL: "warn", ORCHARD_FLUSH_MS: "1000" } });
    sim = new FleetSim({ url: server.url, apiKey: server.apiKey, mqttUrl: `mqtt://127.0.0.1:${server.mqttPort}`, devices: DEVICES });
    await sim.start();
    flooder = sim.deviceIds()[0]!;
  }, 300_000);

  afterAll(async () => {
    await sim?.stop().catch(() => undefined);
    await server?.stop();
    if (server) await removeDir(server.dataDir);
  });

  it("shows every simulated device online, labelled as simulated", async () => {
    const list = await waitFor(
      `${DEVICES} devices online`,
      async () => {
        const l = await server.client.devices.list.query();
        return l.filter((d) => d.online).length === DEVICES ? l : null;
      },
      120_000,
    );
    expect(list.every((d) => d.name.endsWith("(simulated)") && d.runner?.backend === "sim" && d.runner.model === SIM_MODEL)).toBe(true);
  });

  it(
    "ingests and stores every message sent, and rate-limits a flooding device without starving the others",
    async () => {
      const rejectedBefore = metric(await scrape(server), 'orchard_mqtt_messages_rejected_total{reason="rate_limited"}');
      await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));
      floodSent = await sim.flood(flooder, FLOOD);
      await new Promise((r) => setTimeout(r, (SECONDS * 1000) / 2));

      // Still keeping up at the end of the run: every device online.
      const text = await scrape(server);
      expect(metric(text, "orchard_devices_online")).toBe(DEVICES);
      await sim.stop();
      const sent = sim.stats();
      expect(sent.publishErrors).toBe(0);
      expect(sent.disconnects).toBe(0);
      expect(sent.floodSent).toBe(floodSent);
      expect([...sent.perDevice.values()].every((n) => n > 1)).toBe(true); // every device kept sending

      // Every message sent was either ingested or rate-limited, once the ones in flight have arrived.
      const settled = await waitFor(
        "the server to account for every telemetry message sent",
        async () => {
          const t = await scrape(server);
          const ingested = metric(t, 'orchard_mqtt_messages_total{kind="telemetry"}');
          const limited = metric(t, 'orchard_mqtt_messages_rejected_total{reason="rate_limited"}') - rejectedBefore;
          return ingested + limited === sent.telemetrySent ? { ingested, limited, text: t } : null;
        },
        60_000,
      );
      // The flood was cut down to about the bucket's size; nothing else was refused.
      expect(settled.limited).toBeGreaterThan(0);
      expect(settled.limited).toBeLessThanOrEqual(floodSent);
      for (const reason of ["invalid", "malformed", "bad_timestamp", "unknown_device", "oversized"]) {
        expect(metric(settled.text, `orchard_mqtt_messages_rejected_total{reason="${reason}"}`)).toBe(0);
      }

      // Nothing lost on the way to the database: after the server's final flush, one row per accepted sample.
      await server.stop();
      const db = new PGlite(path.join(server.dataDir, "db"));
      const { rows } = await db.query<{ deviceId: string; n: number }>(
        'SELECT "deviceId", count(*)::int AS n FROM "TelemetrySample" GROUP BY "deviceId"',
      );
      await db.close();
      const stored = new Map(rows.map((r) => [r.deviceId, r.n]));
      expect([...stored.values()].reduce((a, b) => a + b, 0)).toBe(settled.ingested);
      const others = [...sent.perDevice].filter(([id]) => id !== flooder);
      expect(others).toHaveLength(DEVICES - 1);
      const short = others.filter(([id, n]) => stored.get(id) !== n);
      expect(short, "devices whose stored samples differ from what they sent").toEqual([]);
      expect(stored.get(flooder)).toBe(sent.perDevice.get(flooder)! - settled.limited);
    },
    SECONDS * 1000 + 240_000,
  );
});
