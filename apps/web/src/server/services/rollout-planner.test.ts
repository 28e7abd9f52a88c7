/**
 * The rollout planner as tables: a situation (strategy, rollout state, each device's
 * state) and the decision it must give. Devices are written compactly:
 * "a:active", "b:downloading", "c:pending" (waiting), "c:pending*" (sent),
 * "d:failed(hash_mismatch)#2" (failed on the 2nd try), "e!:…" (canary), "f~:…" (offline),
 * "g:failed(disk_full)+ack" (acknowledged by a resume).
 */
import { describe, expect, it } from "vitest";
import { RolloutStrategy, type RolloutDeviceState, type RolloutErrorCode, type RolloutState } from "@orchard/contracts";
import { deviceOutcome, planRollout, type Plan, type PlannerDevice } from "./rollout-planner.ts";

const NOW = 1_000_000_000;
const HOUR = 3600_000;

function strategy(over: Partial<RolloutStrategy> = {}): RolloutStrategy {
  return RolloutStrategy.parse({ canary: 0, batchSize: 2, maxConcurrentDownloads: 2, failureThreshold: 1, retries: 1, ...over });
}

/** "id[!][~]:state[*][(code)][#attempt][+ack][@sentMsAgo]" */
function dev(spec: string, position: number): PlannerDevice {
  const m = /^([a-z0-9]+)(!?)(~?):([a-z_]+)(\*?)(?:\(([a-z_]+)\))?(?:#(\d+))?(\+ack)?(?:@(\d+))?$/.exec(spec);
  if (!m) throw new Error(`bad device spec ${spec}`);
  const [, id, canary, offline, state, sentMark, code, attempt, ack, ago] = m;
  const st = state as RolloutDeviceState;
  const sent = st !== "pending" || sentMark === "*";
  return {
    deviceId: id!,
    position,
    canary: canary === "!",
    state: st,
    attempt: attempt ? Number(attempt) : sent ? 1 : 0,
    sentAt: sent ? NOW - (ago ? Number(ago) : 1000) : null,
    online: offline !== "~",
    error: code ? { code: code as RolloutErrorCode, ...(ack ? { acknowledged: true } : {}) } : null,
  };
}

function plan(specs: string[], over: Partial<RolloutStrategy> = {}, state: RolloutState = "running", checkTimeouts = true): Plan {
  return planRollout({ state, strategy: strategy(over), devices: specs.map(dev), now: NOW, checkTimeouts });
}

describe("deviceOutcome", () => {
  const s = { retries: 1 };
  it.each([
    ["a:pending", "waiting"],
    ["a:pending*", "in_flight"],
    ["a:preflight", "in_flight"],
    ["a:downloading", "in_flight"],
    ["a:verifying", "in_flight"],
    ["a:staged", "in_flight"],
    ["a:activating", "in_flight"],
    ["a:health_check", "in_flight"],
    ["a:active", "active"],
    ["a:aborted", "stopped"],
    ["a:rolled_back(rolled_back)", "stopped"],
    ["a:failed(aborted)", "stopped"],
    ["a:failed(download_failed)#1", "retry"],
    ["a:failed(hash_mismatch)#1", "retry"],
    ["a:rolled_back(load_failed)#1", "retry"],
    ["a:rolled_back(too_slow)#1", "retry"],
    ["a:failed(internal)#1", "retry"],
    ["a:failed(hash_mismatch)#2", "failed"],
    ["a:failed(disk_full)#1", "failed"],
    ["a:failed(insufficient_memory)#1", "failed"],
    ["a:failed(unsupported_runtime)#1", "failed"],
    ["a:failed(bad_signature)#1", "failed"],
    ["a:failed(bad_manifest)#1", "failed"],
    ["a:rolled_back(reference_mismatch)#1", "failed"],
    ["a:failed(timeout)#1", "failed"],
    ["a:failed(device_offline)#1", "failed"],
    ["a:failed#1", "retry"], // no error reported: internal
  ])("%s → %s", (spec, outcome) => {
    expect(deviceOutcome(dev(spec, 0), s)).toBe(outcome);
  });

  it("retries as many times as the strategy says", () => {
    expect(deviceOutcome(dev("a:failed(download_failed)#3", 0), { retries: 3 })).toBe("retry");
    expect(deviceOutcome(dev("a:failed(download_failed)#4", 0), { retries: 3 })).toBe("failed");
    expect(deviceOutcome(dev("a:failed(download_failed)#1", 0), { retries: 0 })).toBe("failed");
  });
});

describe("which devices go next", () => {
  type Row = [
    what: string,
    devices: string[],
    strategy: Partial<RolloutStrategy>,
    expected: { send?: string[]; retry?: string[]; phase?: Plan["phase"] },
  ];
  it.each<Row>([
    ["a fresh rollout without canaries fills a batch", ["a:pending", "b:pending", "c:pending"], {}, { send: ["a", "b"], phase: "batches" }],
    ["canaries go first, alone", ["a!:pending", "b:pending", "c:pending"], { canary: 1 }, { send: ["a"], phase: "canary" }],
    [
      "every canary at once (the batch size does not limit them)",
      ["a!:pending", "b!:pending", "c!:pending", "d:pending"],
      { canary: 3, batchSize: 1, maxConcurrentDownloads: 5 },
      { send: ["a", "b", "c"], phase: "canary" },
    ],
    [
      "canaries are still capped by the concurrent downloads",
      ["a!:pending", "b!:pending", "c!:pending", "d:pending"],
      { canary: 3, maxConcurrentDownloads: 2 },
      { send: ["a", "b"], phase: "canary" },
    ],
    ["the others wait while a canary works", ["a!:downloading", "b:pending", "c:pending"], { canary: 1 }, { send: [], phase: "canary" }],
    [
      "the others wait while a canary is in its health check",
      ["a!:health_check", "b:pending"],
      { canary: 1, maxConcurrentDownloads: 5 },
      { send: [], phase: "canary" },
    ],
    ["once every canary is active, batches start", ["a!:active", "b:pending", "c:pending", "d:pending"], {}, { send: ["b", "c"] }],
    [
      "a canary stopped by an operator does not block the others",
      ["a!:rolled_back(rolled_back)", "b:pending"],
      {},
      { send: ["b"], phase: "batches" },
    ],
    [
      "a canary's acknowledged failure does not block the others",
      ["a!:failed(disk_full)+ack", "b:pending"],
      { failureThreshold: 5 },
      { send: ["b"], phase: "batches" },
    ],
    [
      "a canary with a retry due is retried before anyone else",
      ["a!:failed(hash_mismatch)#1", "b:pending"],
      { canary: 1 },
      { retry: ["a"], send: [], phase: "canary" },
    ],
    [
      "a batch is a window: one finished, one more goes",
      ["a:active", "b:downloading", "c:pending", "d:pending"],
      { batchSize: 2, maxConcurrentDownloads: 5 },
      { send: ["c"] },
    ],
    [
      "devices past the download phase still count toward the batch",
      ["a:health_check", "b:staged", "c:pending"],
      { batchSize: 2, maxConcurrentDownloads: 5 },
      { send: [] },
    ],
    [
      "download cap: sent, preflight and downloading devices count",
      ["a:pending*", "b:preflight", "c:downloading", "d:pending"],
      { batchSize: 10, maxConcurrentDownloads: 3 },
      { send: [] },
    ],
    [
      "download cap: verifying and later do not count",
      ["a:verifying", "b:staged", "c:activating", "d:pending", "e:pending"],
      { batchSize: 10, maxConcurrentDownloads: 1 },
      { send: ["d"] },
    ],
    [
      "the smaller of the batch room and the download room",
      ["a:downloading", "b:pending", "c:pending", "d:pending", "e:pending"],
      { batchSize: 4, maxConcurrentDownloads: 2 },
      { send: ["b"] },
    ],
    [
      "retries go before first tries",
      ["a:failed(download_failed)#1", "b:pending", "c:pending"],
      { batchSize: 2, failureThreshold: 1 },
      { retry: ["a"], send: ["b"] },
    ],
    [
      "no retry once the tries are used up (the failure counts toward the threshold)",
      ["a:failed(download_failed)#2", "b:pending"],
      { retries: 1, failureThreshold: 2 },
      { retry: [], send: ["b"] },
    ],
    [
      "online devices go before offline ones",
      ["a~:pending", "b:pending", "c~:pending", "d:pending"],
      { batchSize: 2 },
      { send: ["b", "d"] },
    ],
    [
      "offline devices are still sent when they are all that is left (they wait, up to the timeout)",
      ["a:active", "b~:pending"],
      {},
      { send: ["b"] },
    ],
    [
      "positions decide among equals",
      ["c:pending", "a:pending", "b:pending"],
      { batchSize: 1 },
      { send: ["c"] }, // c has position 0
    ],
    ["nothing to send when everything is in flight", ["a:downloading", "b:verifying"], {}, { send: [], retry: [] }],
  ])("%s", (_what, devices, over, expected) => {
    const p = plan(devices, over);
    expect(p.pause).toBeNull();
    expect(p.finish).toBeNull();
    expect(p.timedOut).toEqual([]);
    expect(p.send).toEqual(expected.send ?? []);
    expect(p.retry).toEqual(expected.retry ?? []);
    if (expected.phase) expect(p.phase).toBe(expected.phase);
  });
});

describe("pausing", () => {
  it.each<[string, string[], Partial<RolloutStrategy>, Plan["pause"]]>([
    [
      "a failed canary pauses whatever the threshold",
      ["a!:rolled_back(reference_mismatch)", "b:pending"],
      { canary: 1, failureThreshold: 10 },
      { kind: "canary_failed", deviceIds: ["a"] },
    ],
    [
      "failures reaching the threshold pause",
      ["a:failed(disk_full)", "b:failed(unsupported_runtime)", "c:pending"],
      { failureThreshold: 2 },
      { kind: "threshold", deviceIds: ["a", "b"], failed: 2, threshold: 2 },
    ],
    [
      "a timed-out device counts as failed at once",
      ["a:downloading@" + 4 * HOUR, "b:pending"],
      { deviceTimeoutMs: 3 * HOUR, failureThreshold: 1 },
      { kind: "threshold", deviceIds: ["a"], failed: 1, threshold: 1 },
    ],
    ["under the threshold it goes on", ["a:failed(disk_full)", "b:pending"], { failureThreshold: 2 }, null],
    ["a failure with a retry due does not count", ["a:failed(hash_mismatch)#1", "b:pending"], { failureThreshold: 1 }, null],
    [
      "acknowledged failures do not count",
      ["a:failed(disk_full)+ack", "b:failed(disk_full)+ack", "c:pending"],
      { failureThreshold: 2 },
      null,
    ],
    [
      "acknowledged plus new: only the new ones count",
      ["a:failed(disk_full)+ack", "b:failed(disk_full)", "c:failed(disk_full)", "d:pending"],
      { failureThreshold: 2 },
      { kind: "threshold", deviceIds: ["b", "c"], failed: 2, threshold: 2 },
    ],
    ["operator stops are not failures", ["a:aborted", "b:rolled_back(rolled_back)", "c:pending"], { failureThreshold: 1 }, null],
  ])("%s", (_what, devices, over, pause) => {
    const p = plan(devices, over);
    expect(p.pause).toEqual(pause);
    if (pause) {
      expect(p.send).toEqual([]);
      expect(p.retry).toEqual([]);
    }
  });

  it("a paused rollout sends nothing, not even retries", () => {
    const p = plan(["a:failed(hash_mismatch)#1", "b:pending"], { failureThreshold: 5 }, "paused");
    expect(p).toMatchObject({ send: [], retry: [], pause: null, finish: null });
  });
});

describe("timeouts", () => {
  const over = { deviceTimeoutMs: 3 * HOUR, failureThreshold: 10, maxConcurrentDownloads: 5, batchSize: 5 };
  it("an online device past the timeout times out; one within it does not", () => {
    const p = plan([`a:downloading@${3 * HOUR}`, `b:downloading@${3 * HOUR - 1}`], over);
    expect(p.timedOut).toEqual([{ deviceId: "a", code: "timeout" }]);
  });
  it("an offline device past the timeout is device_offline", () => {
    expect(plan([`a~:pending*@${4 * HOUR}`, "b:active"], over).timedOut).toEqual([{ deviceId: "a", code: "device_offline" }]);
  });
  it("every working state times out, terminal ones and unsent ones do not", () => {
    const states = ["pending*", "preflight", "downloading", "verifying", "staged", "activating", "health_check"];
    const p = plan(
      [...states.map((s, i) => `d${i}:${s}@${5 * HOUR}`), `x:active@${5 * HOUR}`, `y:failed(disk_full)@${5 * HOUR}`, "z:pending"],
      {
        ...over,
        batchSize: 20,
      },
    );
    expect(p.timedOut.map((t) => t.deviceId)).toEqual(states.map((_, i) => `d${i}`));
  });
  it("a timeout frees its slot in the same decision", () => {
    const p = plan([`a:downloading@${4 * HOUR}`, "b:pending"], { ...over, batchSize: 1, maxConcurrentDownloads: 1 });
    expect(p.timedOut).toEqual([{ deviceId: "a", code: "timeout" }]);
    expect(p.send).toEqual(["b"]);
  });
  it("timeouts are not retried", () => {
    const p = plan([`a:downloading@${4 * HOUR}`], { ...over, retries: 3 });
    expect(p.retry).toEqual([]);
    expect(p.finish).toBe("failed");
  });
  it("are not checked while devices report after a server restart", () => {
    expect(plan([`a:downloading@${4 * HOUR}`], over, "running", false).timedOut).toEqual([]);
  });
  it("still apply in an aborted rollout (it waits for its working devices)", () => {
    const p = plan([`a:downloading@${4 * HOUR}`, "b:aborted"], over, "aborted");
    expect(p).toMatchObject({ timedOut: [{ deviceId: "a", code: "timeout" }], send: [], finish: null, pause: null });
  });
});

describe("finishing", () => {
  it.each<[string, string[], RolloutState, Plan["finish"]]>([
    ["every device active: completed", ["a:active", "b:active"], "running", "completed"],
    ["active and operator stops: completed", ["a:active", "b:rolled_back(rolled_back)", "c:aborted"], "running", "completed"],
    ["a device failed for good: failed", ["a:active", "b:failed(disk_full)+ack"], "running", "failed"],
    ["a paused rollout with nothing left finishes too", ["a:active", "b:failed(disk_full)"], "paused", "failed"],
    ["not while a device waits", ["a:active", "b:pending"], "running", null],
    ["not while a device works", ["a:active", "b:staged"], "running", null],
    ["not while a retry is due", ["a:active", "b:failed(download_failed)#1"], "running", null],
    ["not while a paused rollout has a retry due", ["a:active", "b:failed(download_failed)#1"], "paused", null],
    ["never for an aborted rollout", ["a:active"], "aborted", null],
    ["never again for a completed one", ["a:active"], "completed", null],
  ])("%s", (_what, devices, state, finish) => {
    const p = plan(devices, { failureThreshold: 5 }, state);
    expect(p.finish).toBe(finish);
    if (finish) expect(p.send).toEqual([]);
  });
});

describe("a whole rollout, step by step", () => {
  it("canary, then batches of two, with a retry, to five devices", () => {
    const s = { canary: 1, batchSize: 2, maxConcurrentDownloads: 2, retries: 1, failureThreshold: 1 };
    const step = (specs: string[]) => plan(specs, s);
    expect(step(["a!:pending", "b:pending", "c:pending", "d:pending", "e:pending"]).send).toEqual(["a"]);
    expect(step(["a!:downloading", "b:pending", "c:pending", "d:pending", "e:pending"]).send).toEqual([]);
    expect(step(["a!:active", "b:pending", "c:pending", "d:pending", "e:pending"]).send).toEqual(["b", "c"]);
    const retrying = step(["a!:active", "b:failed(hash_mismatch)#1", "c:downloading", "d:pending", "e:pending"]);
    expect([retrying.retry, retrying.send]).toEqual([["b"], []]);
    expect(step(["a!:active", "b:pending*#2", "c:verifying", "d:pending", "e:pending"]).send).toEqual([]);
    expect(step(["a!:active", "b:downloading#2", "c:active", "d:pending", "e:pending"]).send).toEqual(["d"]);
    expect(step(["a!:active", "b:active#2", "c:active", "d:preflight", "e:pending"]).send).toEqual(["e"]);
    expect(step(["a!:active", "b:active#2", "c:active", "d:active", "e:active"]).finish).toBe("completed");
  });
});
