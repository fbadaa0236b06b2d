/**
 * Each run's directory, `<runsDir>/<instanceId>` (output logs, script files): where a run writes,
 * which ids have one, and removing them with their instances (script deletion, retention).
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Run directories are named by instance id (a server-generated UUID). */
const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class RunDirectories {
  constructor(private readonly runsDir: string) {}

  pathOf(instanceId: string): string {
    return join(this.runsDir, instanceId);
  }

  /** Ids of the instances that have a run directory on this node. */
  async ids(): Promise<string[]> {
    const entries = await readdir(this.runsDir).catch(() => [] as string[]);
    return entries.filter((name) => INSTANCE_ID.test(name));
  }

  async discard(instanceIds: readonly string[]): Promise<void> {
    for (const id of instanceIds) {
      // Instance ids are server-generated UUIDs, never user input, so the join cannot escape runsDir.
      await rm(this.pathOf(id), { recursive: true, force: true });
    }
  }
}
