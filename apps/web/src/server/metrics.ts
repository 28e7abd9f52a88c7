/**
 * Prometheus text exposition for /metrics: fleet gauges read from FleetService at
 * scrape time, and counters the server increments (ingested and rejected MQTT
 * messages). No client library: the format is a few lines of text.
 */
import type { FleetService } from "./services/fleet.ts";

type Labels = Record<string, string>;

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels, value: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels))?.value ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.values.values()) lines.push(`${this.name}${formatLabels(labels)} ${value}`);
    return lines.join("\n");
  }
}

export class Metrics {
  readonly mqttMessages = new Counter("orchard_mqtt_messages_total", "MQTT messages from devices accepted, by kind.");
  readonly mqttRejected = new Counter(
    "orchard_mqtt_messages_rejected_total",
    "MQTT messages from devices dropped, by reason (oversized, malformed, invalid, unknown_topic, unknown_device).",
  );

  constructor(private readonly fleet: FleetService) {}

  render(): string {
    const devices = this.fleet.list();
    const { total, online } = this.fleet.counts();
    const out: string[] = [
      gauge("orchard_devices_total", "Enrolled devices.", [[{}, total]]),
      gauge("orchard_devices_online", "Devices currently online.", [[{}, online]]),
      gauge(
        "orchard_device_online",
        "1 when the device is online.",
        devices.map((d) => [{ device: d.id }, d.online ? 1 : 0]),
      ),
      gauge(
        "orchard_decode_tokens_per_second",
        "Decode tokens/s the device reported in its newest telemetry window.",
        devices.flatMap((d) => (d.online && d.telemetry?.tokensPerSecond != null ? [[{ device: d.id }, d.telemetry.tokensPerSecond]] : [])),
      ),
      gauge(
        "orchard_soc_temperature_celsius",
        "SoC temperature from the newest telemetry (devices without a thermal zone are absent).",
        devices.flatMap((d) => (d.online && d.telemetry?.socTempC != null ? [[{ device: d.id }, d.telemetry.socTempC]] : [])),
      ),
      gauge(
        "orchard_throttled",
        "1 when the device reports throttling or under-voltage now (devices without vcgencmd are absent).",
        devices.flatMap((d) => {
          const t = d.online ? d.telemetry?.throttle : null;
          return t ? [[{ device: d.id }, t.throttled || t.underVoltage || t.armFreqCapped ? 1 : 0]] : [];
        }),
      ),
      gauge(
        "orchard_memory_available_bytes",
        "MemAvailable from the newest telemetry.",
        devices.flatMap((d) => (d.online && d.telemetry ? [[{ device: d.id }, d.telemetry.memAvailableBytes]] : [])),
      ),
      gauge(
        "orchard_runner_rss_bytes",
        "Resident memory of the device's runner process.",
        devices.flatMap((d) => (d.online && d.runner?.rssBytes != null ? [[{ device: d.id }, d.runner.rssBytes]] : [])),
      ),
      this.mqttMessages.render(),
      this.mqttRejected.render(),
    ];
    return `${out.join("\n")}\n`;
  }
}

function gauge(name: string, help: string, samples: [Labels, number][]): string {
  const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`];
  for (const [labels, value] of samples) lines.push(`${name}${formatLabels(labels)} ${value}`);
  return lines.join("\n");
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return "";
  const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  return `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`;
}
