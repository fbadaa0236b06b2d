/**
 * The readiness check for the data directory's free space: below `minFreeBytes` (config
 * `minFreeDiskBytes`) the node reports itself not ready, with the numbers, before a full disk makes
 * runs fail (`storage_full`) and writes answer OPENDLF.0507. Free space is what an unprivileged
 * writer may use (`bavail`), as `df` shows it. One statfs per call: cheap enough to run uncached.
 */
import { statfs } from 'node:fs/promises';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  ready: boolean;
  checks: ReadinessCheck[];
}

export const FREE_DISK_CHECK = 'disk:dataDir';

export async function freeDiskSpaceCheck(directory: string, minFreeBytes: number): Promise<ReadinessCheck> {
  try {
    const stats = await statfs(directory);
    const free = stats.bavail * stats.bsize;
    if (free >= minFreeBytes) return { name: FREE_DISK_CHECK, ok: true };
    return {
      name: FREE_DISK_CHECK,
      ok: false,
      detail: `${free} bytes free on the data directory ${directory}, below minFreeDiskBytes (${minFreeBytes})`,
    };
  } catch (error) {
    return {
      name: FREE_DISK_CHECK,
      ok: false,
      detail: `free space of the data directory ${directory} unknown: ${(error as Error).message}`,
    };
  }
}

/**
 * `readiness` with the free-space check added (checked on every call, outside the other checks'
 * cache, so a disk that fills or is freed shows at once). `minFreeBytes` 0 turns the check off.
 */
export function withFreeDiskSpace(
  readiness: () => Promise<Readiness>,
  directory: string,
  minFreeBytes: number,
): () => Promise<Readiness> {
  if (minFreeBytes <= 0) return readiness;
  return async () => {
    const [others, disk] = await Promise.all([readiness(), freeDiskSpaceCheck(directory, minFreeBytes)]);
    return { ready: others.ready && disk.ok, checks: [...others.checks, disk] };
  };
}
