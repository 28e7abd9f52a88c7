/** `orchard rollout`: flags to input, the lines it prints, and how `--wait` follows a rollout and ends. */
import { describe, expect, it } from "vitest";
import { RolloutStrategy, type DeviceSummary, type RolloutDeviceDto, type RolloutDto } from "@orchard/contracts";
import type { OrchardClient } from "./client.ts";
import { createInput, deviceLine, exitCodeFor, parseDuration, render, waitForRollout } from "./rollout.ts";

const MiB = 2 ** 20;
const fleet = [
  { id: "pi-kitchen-1", name: "kitchen" },
  { id: "pi-garage-1", name: "garage" },
] as DeviceSummary[];

function device(over: Partial<RolloutDeviceDto>): RolloutDeviceDto {
  return {
    deviceId: "pi-kitchen-1",
    deviceName: "kitchen",
    online: true,
    position: 0,
    canary: false,
    state: "pending",
    sent: true,
    attempt: 1,
    bytesDone: 0,
    bytesTotal: 64 * MiB,
    rateBps: null,
    etaSeconds: null,
    error: null,
    acknowledged: false,
    willRetry: false,
    previousArtifactId: null,
    sentAt: 1,
    updatedAt: 1,
    finishedAt: null,
    ...over,
  };
}

function rollout(state: RolloutDto["state"], devices: RolloutDeviceDto[], pausedReason: string | null = null): RolloutDto {
  return {
    id: "r1",
    name: "sim 2",
    artifactId: "a".repeat(64),
    artifactName: "sim",
    artifactVersion: "2",
    artifactRuntime: "sim",
    state,
    pausedReason,
    strategy: RolloutStrategy.parse({}),
    counts: { total: devices.length, waiting: 0, inFlight: 0, active: 0, failed: 0, rolledBack: 0, aborted: 0 },
    createdAt: 1,
    updatedAt: 1,
    finishedAt: null,
    devices,
  };
}

describe("parseDuration", () => {
  it.each([
    ["3h", 3 * 3600_000],
    ["90m", 90 * 60_000],
    ["1h30m", 90 * 60_000],
    ["45s", 45_000],
    ["1d", 86_400_000],
    ["1.5h", 5400_000],
    ["5000", 5000],
  ])("%s → %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(["", "h", "3x", "3h30", "-1h", "0s"])("refuses %j", (text) => {
    expect(() => parseDuration(text)).toThrow(/is not a duration/);
  });
});

describe("createInput", () => {
  it("turns flags into the create input, resolving device names", () => {
    expect(
      createInput(
        {
          artifact: "a".repeat(64),
          devices: ["kitchen", "pi-garage-1", "kitchen"],
          tags: ["lab", "lab"],
          canary: "2",
          batch: "4",
          maxDownloads: "1",
          failureThreshold: "3",
          timeout: "90m",
          retries: "0",
          name: "friday",
        },
        fleet,
      ),
    ).toEqual({
      artifactId: "a".repeat(64),
      deviceIds: ["pi-kitchen-1", "pi-garage-1"],
      tags: ["lab"],
      strategy: { canary: 2, batchSize: 4, maxConcurrentDownloads: 1, failureThreshold: 3, retries: 0, deviceTimeoutMs: 5400_000 },
      name: "friday",
    });
  });
  it("leaves what is not given to the server's defaults", () => {
    expect(createInput({ artifact: "x", devices: [], tags: ["lab"] }, fleet)).toEqual({
      artifactId: "x",
      deviceIds: [],
      tags: ["lab"],
      strategy: {},
    });
  });
  it.each<[string, Parameters<typeof createInput>[0], RegExp]>([
    ["no artifact", { artifact: undefined, devices: ["kitchen"], tags: [] }, /--artifact ID is required/],
    ["no target", { artifact: "x", devices: [], tags: [] }, /--device ID-or-name and\/or --tag/],
    ["unknown device", { artifact: "x", devices: ["attic"], tags: [] }, /no device "attic"/],
    ["batch 0", { artifact: "x", devices: ["kitchen"], tags: [], batch: "0" }, /--batch must be a whole number from 1 to 1000/],
    ["retries 1.5", { artifact: "x", devices: ["kitchen"], tags: [], retries: "1.5" }, /--retries must be a whole number from 0 to 10/],
    ["bad timeout", { artifact: "x", devices: ["kitchen"], tags: [], timeout: "soon" }, /"soon" is not a duration/],
  ])("refuses %s", (_what, flags, message) => {
    expect(() => createInput(flags, fleet)).toThrow(message);
  });
});

describe("deviceLine", () => {
  it.each<[Partial<RolloutDeviceDto>, string]>([
    [{ sent: false }, "kitchen: waiting for its turn"],
    [{ online: false, canary: true }, "kitchen (canary): offline, gets it when it connects"],
    [
      { state: "downloading", bytesDone: 16 * MiB, rateBps: 8 * MiB, etaSeconds: 6 },
      "kitchen: downloading 16.0 MiB of 64.0 MiB (25%), 8.0 MiB/s, 6s left",
    ],
    [{ state: "health_check", attempt: 2 }, "kitchen: health check [try 2]"],
    [
      { state: "failed", error: { code: "hash_mismatch", message: "model.sim differs" }, willRetry: true },
      "kitchen: failed: model.sim differs (hash_mismatch), will retry",
    ],
    [
      { state: "rolled_back", error: { code: "reference_mismatch", message: "got other ids" } },
      "kitchen: rolled back: got other ids (reference_mismatch)",
    ],
    [{ state: "active" }, "kitchen: active"],
  ])("%j", (over, line) => expect(deviceLine(device(over))).toBe(line));
});

describe("--wait", () => {
  function fakeClient(states: RolloutDto[]): OrchardClient {
    let i = 0;
    return { rollouts: { get: { query: async () => states[Math.min(i++, states.length - 1)]! } } } as unknown as OrchardClient;
  }
  const sleep = async () => undefined;

  it("prints a line whenever a device changes and returns when it completes", async () => {
    const lines: string[] = [];
    const r = await waitForRollout(
      fakeClient([
        rollout("running", [device({ state: "downloading", bytesDone: 0 })]),
        rollout("running", [device({ state: "downloading", bytesDone: 0 })]),
        rollout("running", [device({ state: "verifying" })]),
        rollout("completed", [device({ state: "active" })]),
      ]),
      "r1",
      { out: () => undefined, err: (t) => lines.push(t) },
      { sleep },
    );
    expect(lines).toEqual([
      "kitchen: downloading 0 B of 64.0 MiB (0%)\n",
      "kitchen: verifying\n",
      "kitchen: active\n",
      "rollout completed\n",
    ]);
    expect(exitCodeFor(r)).toBe(0);
  });

  it("stops at a pause with the reason, and that is a failure", async () => {
    const lines: string[] = [];
    const r = await waitForRollout(
      fakeClient([rollout("paused", [device({ state: "failed", error: { code: "disk_full", message: "no room" } })], "1 device failed")]),
      "r1",
      { out: () => undefined, err: (t) => lines.push(t) },
      { sleep },
    );
    expect(lines.at(-1)).toBe("rollout paused: 1 device failed\n");
    expect(exitCodeFor(r)).toBe(1);
    expect(exitCodeFor({ state: "failed" })).toBe(1);
    expect(exitCodeFor({ state: "aborted" })).toBe(1);
    expect(render(r, 1)).toContain("paused: 1 device failed\n  kitchen: failed: no room (disk_full)");
  });
});
