/**
 * A full disk for tests, without a tmpfs: an `open` for the artifact store whose file
 * handles fail writes with ENOSPC (as a real full disk does: what fits first) once the
 * given number of bytes was written through them in total.
 */
import { open } from "node:fs/promises";
import type { OpenFile } from "../src/server/artifacts/store.ts";

type Write = (buf: Uint8Array, off: number, len: number, pos: number) => Promise<{ bytesWritten: number; buffer: Uint8Array }>;

export function fullDiskAfter(capacity: number): OpenFile {
  let used = 0;
  return async (file, flags, mode) => {
    const handle = await open(file, flags, mode);
    const write = handle.write.bind(handle) as unknown as Write;
    return new Proxy(handle, {
      get(target, prop, receiver) {
        if (prop === "write") {
          return async (buf: Uint8Array, off: number, len: number, pos: number) => {
            if (used + len > capacity) {
              const fits = capacity - used;
              if (fits > 0) await write(buf, off, fits, pos);
              used = capacity;
              throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write" });
            }
            used += len;
            return write(buf, off, len, pos);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  };
}
