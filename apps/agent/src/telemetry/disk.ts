/** Size and free space of the filesystem holding the data dir (where models are downloaded). */
import { statfs } from "node:fs/promises";

export interface DiskSpace {
  diskTotalBytes: number;
  /** Space an unprivileged process may still use (f_bavail), which is what a download can fill. */
  diskFreeBytes: number;
}

export async function readDiskSpace(dir: string): Promise<DiskSpace | null> {
  try {
    const s = await statfs(dir);
    return { diskTotalBytes: s.blocks * s.bsize, diskFreeBytes: s.bavail * s.bsize };
  } catch {
    return null;
  }
}
