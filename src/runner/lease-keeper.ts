/**
 * This node's side of the leases (docs/adr/0004-leases.md): a heartbeat renews the lease of every
 * run it holds, and fencing ends a run whose lease this node could not renew in time (cut off from
 * the store) — before any reaper can judge the lease expired — or whose row someone else settled
 * (the reaper judged this node lost). Either way nothing of a fenced run keeps running here.
 */
import type { Logger } from 'pino';
import type { InstanceStore } from '../store/store.js';
import { endRun, type ActiveRun, type ActiveRuns } from './active-run.js';
import type { RunObserver } from './run-observer.js';

export class LeaseKeeper {
  private heartbeatInFlight = false;

  constructor(
    private readonly instances: Pick<InstanceStore, 'renewLeases'>,
    private readonly runs: ActiveRuns,
    private readonly config: { readonly nodeId: string; readonly leaseMs: number },
    private readonly log: Logger,
    private readonly observer: Pick<RunObserver, 'runFenced' | 'storeError'>,
  ) {}

  /** Every third of the lease: one lost heartbeat never costs the lease. */
  get heartbeatEveryMs(): number {
    return this.config.leaseMs / 3;
  }

  /** Renews the leases of every run held here; fences those the store no longer leases to us. */
  async heartbeat(): Promise<void> {
    if (this.heartbeatInFlight || this.runs.size === 0) return;
    this.heartbeatInFlight = true;
    const sentAt = performance.now();
    const held = [...this.runs.keys()];
    try {
      const renewed = new Set(
        await this.instances.renewLeases(this.config.nodeId, held, this.config.leaseMs),
      );
      for (const id of held) {
        const run = this.runs.get(id);
        if (!run) continue;
        if (renewed.has(id)) run.leaseValidUntil = sentAt + this.config.leaseMs;
        // Settled by someone else (the reaper judged this node lost): the work must end here too.
        else if (!run.settling && !run.controller.signal.aborted) {
          this.fence(id, run, 'instance no longer leased to this node: ending the run');
        }
      }
    } catch (error) {
      this.observer.storeError();
      this.log.warn({ err: error }, 'lease heartbeat failed');
    } finally {
      this.heartbeatInFlight = false;
    }
  }

  /** Judged on every poll tick, even while the store hangs and earlier ticks wait on it. */
  fenceExpired(): void {
    const margin = this.config.leaseMs / 6;
    const now = performance.now();
    for (const [id, run] of this.runs) {
      if (!run.settling && !run.controller.signal.aborted && now > run.leaseValidUntil - margin) {
        this.fence(id, run, 'lease not renewed in time: ending the run (fencing)');
      }
    }
  }

  private fence(id: string, run: ActiveRun, why: string): void {
    this.log.error({ instanceId: id }, why);
    this.observer.runFenced();
    endRun(run, 'fenced');
  }
}
