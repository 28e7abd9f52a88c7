/**
 * Whether a device can load a model, from what the server knows of it: the runtimes its
 * status lists, the RAM and disk its last telemetry sample reported, and whether it runs
 * the model already. A pure function: `rollouts.create` refuses a rollout when any target
 * has a blocking reason, and `rollouts.preflight` shows the same answer per device in the
 * New rollout dialog before anything is submitted.
 *
 * Blocking reasons are the ones the agent's own preflight would refuse with every time
 * (unsupported_runtime, insufficient_memory: not retried). Notes do not block: the disk
 * the device reported may grow (its preflight first deletes models that are neither its
 * active nor its previous one), a device that has not said what it loads decides itself,
 * an offline device gets the rollout when it connects.
 */
import {
  MODEL_RAM_HEADROOM_BYTES,
  manifestBytes,
  runtimeRefusal,
  type ArtifactManifest,
  type DeviceSummary,
  type RolloutDeviceFit,
} from "@orchard/contracts";
import { formatBytes } from "@orchard/format";

export type FitDevice = Pick<DeviceSummary, "id" | "name" | "online" | "runtimes" | "activeModel" | "previousModel"> & {
  telemetry: Pick<NonNullable<DeviceSummary["telemetry"]>, "memTotalBytes" | "diskFreeBytes"> | null;
};

/** 1.5 GiB, 512 MiB: the one byte formatter (@orchard/format), as the agent's own messages and the dashboard. */
export function binaryBytes(bytes: number): string {
  return formatBytes(bytes);
}

/**
 * Whether `device` can load the artifact of `artifactId` with `manifest`; `busyIn` names
 * the rollout the device is working on already (it works on one at a time), or null.
 */
export function deviceFit(
  device: FitDevice,
  artifactId: string,
  manifest: Pick<ArtifactManifest, "runtime" | "files">,
  busyIn: string | null = null,
): RolloutDeviceFit {
  const reasons: string[] = [];
  const notes: string[] = [];
  const runsIt = device.activeModel?.artifactId === artifactId;

  const refusal = runtimeRefusal(device, manifest.runtime);
  if (refusal) reasons.push(refusal);
  else if (device.runtimes === null) {
    notes.push(`${device.name} has not said which runtimes it loads (an older agent): its own preflight decides.`);
  }
  if (busyIn !== null) reasons.push(`${device.name} is already in a rollout (${busyIn}); wait for it to finish or abort it first.`);

  if (!runsIt) {
    const model = manifest.files.find((f) => f.role === "model");
    const memTotal = device.telemetry?.memTotalBytes ?? null;
    if (model && (manifest.runtime === "executorch" || manifest.runtime === "llama.cpp") && memTotal !== null) {
      const need = model.size + MODEL_RAM_HEADROOM_BYTES;
      if (memTotal < need) {
        reasons.push(
          `${device.name} has ${binaryBytes(memTotal)} of RAM; the model needs ${binaryBytes(need)} (${binaryBytes(model.size)} mapped + ${binaryBytes(MODEL_RAM_HEADROOM_BYTES)}).`,
        );
      }
    }
    const total = manifestBytes(manifest);
    const diskFree = device.telemetry?.diskFreeBytes ?? null;
    if (diskFree !== null && diskFree < total) {
      notes.push(
        `${device.name} reported ${binaryBytes(diskFree)} free on its disk and the model takes ${binaryBytes(total)}: it fails unless deleting models other than its active and previous one makes room.`,
      );
    }
    if (!device.online) notes.push(`${device.name} is offline: it gets the rollout when it connects (within the device timeout).`);
  }
  return { deviceId: device.id, name: device.name, online: device.online, ok: reasons.length === 0, reasons, notes, runsIt };
}
