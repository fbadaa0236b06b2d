/**
 * Live logs read from the runs' own output.log files (`<runsDir>/<instanceId>/output.log`): the
 * InstanceLogStore of a server with its own SQLite store, where every instance runs on this node.
 * The engines already write every byte of output there (process-output.ts), so the log costs no
 * second copy and no store write: `append` only tells this process's readers that there is more.
 * A full disk is handled once, by output.log (truncated to a note, which gives the space back);
 * a copy in the SQLite file would keep that space, since SQLite does not shrink its file.
 *
 * Complete once the instance settles: the engine closes output.log before its run resolves.
 * Files go with their instance (RunDirectories.discard: retention, script delete).
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstanceLogStore, LogRange } from '../store/store.js';
import type { RunDirectories } from './run-directories.js';

const NOTHING: LogRange = { bytes: Buffer.alloc(0), size: 0 };

export class RunDirectoryLogs implements InstanceLogStore {
  private readonly listeners = new Set<(instanceId: string) => void>();

  constructor(private readonly directories: Pick<RunDirectories, 'pathOf'>) {}

  /** The bytes are in output.log already (written by the engine): only readers are told. */
  append(instanceId: string, _offset: number, bytes: Buffer): Promise<void> {
    if (bytes.length > 0) for (const listener of this.listeners) listener(instanceId);
    return Promise.resolve();
  }

  async read(instanceId: string, offset: number, limit: number): Promise<LogRange> {
    // Instance ids are server-generated UUIDs read from the store, so the path stays in runsDir.
    const file = join(this.directories.pathOf(instanceId), 'output.log');
    const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
      // No run directory (the run never started, ran elsewhere, or was cleaned up): no log.
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!handle) return NOTHING;
    try {
      const { size } = await handle.stat();
      const length = Math.max(0, Math.min(limit, size - offset));
      if (length === 0) return { bytes: Buffer.alloc(0), size };
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      return { bytes: buffer.subarray(0, bytesRead), size };
    } finally {
      await handle.close();
    }
  }

  onAppend(listener: (instanceId: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
