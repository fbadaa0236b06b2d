/**
 * The LeaseReaper runs on every node and settles the instances of lost nodes: LAUNCHING/RUNNING
 * instances whose lease expired on the database clock (their owner stopped renewing it) become
 * ABORTED "node lost", each exactly once — one guarded UPDATE, so several reapers and a late
 * heartbeat never settle or revive an instance twice (see docs/adr/0004-leases.md). The instances
 * are never run again: scripts are not idempotent.
 *
 * A lost node's work on a database or SSH host outlives it (a query goes on after its client died):
 * the reaper ends it through the engine, which every node reaches. Work on the lost node's own
 * machine (local processes) waits for that node's restart (RunSupervisor.recover).
 *
 * A reaper never settles a run its own node still holds: that node is not lost, whatever the clock
 * judging the lease says. This matters where the lease clock is the node's own wall clock (SQLite's
 * `now`: a step of the system clock would otherwise make a single node reap its own live runs); a
 * run held here whose lease really lapsed is fenced by the LeaseKeeper on the monotonic clock, and
 * reaped once it has ended.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { RunObserver } from './run-observer.js';
import type { EngineLookup } from './run-supervisor.js';

/** What the reaper writes (the store appends the lost node's id). */
export const NODE_LOST_MESSAGE =
  'node lost: the node running the script instance stopped renewing its lease; the run was ended';

const REAP_BATCH = 100;

export class LeaseReaper {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<Store, 'instances' | 'signals'>,
    private readonly engineOf: EngineLookup,
    private readonly log: Logger,
    private readonly observer: Pick<RunObserver, 'instancesReaped' | 'storeError'>,
    /** The instances this node's runner holds right now. */
    private readonly heldHere: () => readonly string[] = () => [],
  ) {}

  /** Reaps every `intervalMs`: a lost node's lease is judged at most that long after it expired. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      this.pass ??= this.reapOnce().finally(() => (this.pass = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress (before the store closes). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pass;
  }

  /** One pass: settles up to a batch of expired instances and ends their remote work. */
  async reapOnce(): Promise<void> {
    let reaped: string[];
    try {
      reaped = await this.store.instances.reapExpired(
        NODE_LOST_MESSAGE,
        new Date(),
        REAP_BATCH,
        this.heldHere(),
      );
    } catch (error) {
      this.observer.storeError();
      this.log.warn({ err: error }, 'lease reaper failed');
      return;
    }
    if (reaped.length === 0) return;
    this.observer.instancesReaped(reaped.length);
    this.log.warn({ count: reaped.length, ids: reaped }, 'settled instances of a lost node');
    // Long polls and stop calls waiting on these instances answer now, on every node.
    for (const id of reaped) this.store.signals.publish({ kind: 'settled', instanceId: id });
    for (const id of reaped) await this.endRemoteWork(id);
  }

  private async endRemoteWork(id: string): Promise<void> {
    try {
      const instance = await this.store.instances.get(id);
      if (!instance?.runHandle) return;
      const engine = await this.engineOf(instance).catch(() => undefined);
      if (!engine?.capabilities.recoversFromAnyNode || !engine.recover) return;
      await engine.recover(instance.runHandle);
      await this.store.instances.releaseHandle(id);
      this.log.warn({ instanceId: id, engine: engine.name }, 'ended the remote work of a lost node');
    } catch (error) {
      this.log.error({ err: error, instanceId: id }, 'could not end the remote work of a lost node');
    }
  }
}
