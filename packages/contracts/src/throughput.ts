/**
 * The two token rates Orchard shows, one name, unit and explanation each, shared by the
 * dashboard (cards, rows, charts), the CLI and /metrics HELP texts (docs/metrics.md,
 * "Token rates"). They measure different things and are never added to each other:
 *
 * - generating now: tokens a device streamed per second over its last telemetry interval
 *   (about 5 s), 0 while idle: the work it does. The fleet figure is the sum over the
 *   online devices of exactly these per-device values.
 * - decode speed: decode tokens/s of the answers that finished in the device's last
 *   minute (tokens ÷ decode time, prompt feed excluded): how fast the model runs on that
 *   device, not how much it produces.
 */
export const TOKEN_RATE_UNIT = "tok/s";

export interface TokenRateDefinition {
  /** Short label for a column, card or chart. */
  label: string;
  /** The label for the whole fleet (a sum), where there is one. */
  fleetLabel?: string;
  /** One sentence for a tooltip, a legend and a /metrics HELP text. */
  help: string;
}

export const GENERATING_NOW: TokenRateDefinition = {
  label: "Generating now",
  fleetLabel: "Generating now (whole fleet)",
  help:
    "Tokens the device streamed per second over its last telemetry interval (about 5 s); 0 while it generates nothing. " +
    "The whole-fleet figure is the sum of this over the online devices.",
};

export const DECODE_SPEED: TokenRateDefinition = {
  label: "Decode speed",
  help:
    "Decode tokens/s of the answers the device finished in the last minute (generated tokens ÷ decode time, prompt feed excluded): " +
    "how fast the model runs there, not how much it produces; none when no answer finished in that minute.",
};
