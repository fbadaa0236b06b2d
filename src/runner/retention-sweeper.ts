/**
 * Deletes terminal instances (and their run files) older than the retention period. DataArts shows
 * the last 7 days of execution history, so the default keeps at least that.
 */
import type { Logger } from 'pino';
import { IDEMPOTENCY_KEY_TTL_MS } from '../domain/execute-options.js';
import type { IdempotencyKeyStore, InstanceStore } from '../store/store.js';
import type { RunSupervisor } from './run-supervisor.js';

const BATCH = 500;

export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly instances: InstanceStore,
    private readonly runs: RunSupervisor,
    private readonly retentionMs: number,
    private readonly log: Logger,
    /** Execute idempotency keys, deleted once expired (24 h); absent: none are kept. */
    private readonly idempotencyKeys?: Pick<IdempotencyKeyStore, 'deleteCreatedBefore'>,
  ) {}

  /** Deletes one pass worth of expired instances; returns how many were deleted. */
  async sweep(now = new Date()): Promise<number> {
    const cutoff = new Date(now.getTime() - this.retentionMs);
    let deleted = 0;
    for (;;) {
      const ids = await this.instances.listEndedBefore(cutoff, BATCH);
      if (ids.length === 0) break;
      await this.runs.discardRunFiles(ids);
      deleted += await this.instances.deleteMany(ids);
      if (ids.length < BATCH) break;
    }
    if (deleted > 0) this.log.info({ deleted }, 'retention: deleted expired instances');
    const keysBefore = new Date(now.getTime() - IDEMPOTENCY_KEY_TTL_MS);
    const expiredKeys = (await this.idempotencyKeys?.deleteCreatedBefore(keysBefore)) ?? 0;
    if (expiredKeys > 0) this.log.info({ expiredKeys }, 'retention: deleted expired idempotency keys');
    // Run files of this node whose instance another node already deleted (several nodes share a
    // store, but each keeps its own run directories).
    const orphans: string[] = [];
    for (const id of await this.runs.runFileIds()) {
      if (!(await this.instances.get(id))) orphans.push(id);
    }
    await this.runs.discardRunFiles(orphans);
    return deleted;
  }

  /** Sweeps now and then every `intervalMs` (default hourly) until stopped. */
  start(intervalMs = 3_600_000): void {
    const run = () => {
      this.sweep().catch((error: unknown) => this.log.error({ err: error }, 'retention sweep failed'));
    };
    run();
    this.timer = setInterval(run, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
