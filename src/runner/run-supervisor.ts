/**
 * The RunSupervisor is this node's runner: it implements the RunQueue port for the services and
 * wires the runner's parts, each in its own module —
 *
 *  - claim-pump.ts       claims QUEUED instances while this node has free slots (exactly once per
 *                        instance across nodes), and knows when the queue is empty;
 *  - run-lifecycle.ts    one run from engine lookup to its single settling update (timeout, abort
 *                        plumbing, RUNNING, the outcome mapping of domain/instance-state.ts);
 *  - lease-keeper.ts     heartbeat and fencing of the runs this node holds;
 *  - settle-waiters.ts   long polls and stop calls waiting for a settle (woken with the row);
 *  - startup-recovery.ts ends what a previous process of this node left behind;
 *  - run-directories.ts  each run's directory.
 *
 * Work: execute `submit`s the instance here. With a free slot and an empty queue it is inserted
 * already claimed by this node (one insert, no claim query) and runs at once; otherwise it is
 * queued, and a full node signals `work` to the others; a poll catches whatever is left.
 * Stops: `stop` delivers a stop to a run on this node at once (the request is written with the
 * settle), stops a queued instance with one guarded update, or records the request and signals the
 * owning node — backed by its poll of stop requests, so a lost signal delays a stop, never loses it.
 * Reaper: the LeaseReaper (lease-reaper.ts), on every node, settles instances whose lease expired.
 *
 * With the embedded SQLite store there is one node and the same code runs with in-process signals.
 * docs/adr/0004-leases.md explains the lease length and heartbeat trade-offs.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Instance } from '../domain/instance.js';
import { isTerminal, settleChange, STATE_CHANGES, STOPPED_MESSAGE } from '../domain/instance-state.js';
import type { EngineLimits } from '../engines/engine.js';
import type { ResultSpills } from '../engines/result-spill.js';
import type { RunQueue, RunSubmission } from '../services/run-queue.js';
import type {
  ClaimedRun,
  CreateOnceResult,
  IdempotencyClaim,
  IdempotencyRecord,
  InstanceLogStore,
  InstanceOwner,
  InstanceSignal,
  NewInstance,
  Store,
} from '../store/store.js';
import { endRun, newActiveRun, waitAtMost, type ActiveRuns } from './active-run.js';
import { ClaimPump } from './claim-pump.js';
import { LeaseKeeper } from './lease-keeper.js';
import { RunDirectories } from './run-directories.js';
import { RunLifecycle, type EngineLookup } from './run-lifecycle.js';
import { NO_RUN_OBSERVER, type RunObserver } from './run-observer.js';
import { SettleWaiters } from './settle-waiters.js';
import { recoverLeftoverRuns } from './startup-recovery.js';

export type { EngineLookup } from './run-lifecycle.js';

export interface SupervisorConfig {
  /** This node's id: the owner recorded on the instances it claims. */
  readonly nodeId: string;
  /** Runs at once on this node; the rest wait QUEUED (API status LAUNCHING). Default 8. */
  readonly maxConcurrentRuns: number;
  /** Per-instance timeout. Default 24 h. */
  readonly instanceTimeoutMs: number;
  /** SIGTERM → SIGKILL (and query cancel → harder cancel) grace. Default 2 s. */
  readonly stopGraceMs: number;
  /** How long a stop call waits for the instance to become terminal before answering anyway. */
  readonly stopWaitMs: number;
  /** Claim lease on the database clock; the heartbeat renews it every third of it. Default 30 s. */
  readonly leaseMs: number;
  /** Store poll for work and stop requests whose signal was missed. Default 1 s. */
  readonly pollMs: number;
  /** Where each run's directory (`<runsDir>/<instanceId>`) lives. */
  readonly runsDir: string;
  readonly limits: EngineLimits;
  /** Where Shell/Python output goes as it arrives (live logs); absent: no live log is kept. */
  readonly liveLogs?: Pick<InstanceLogStore, 'append'>;
  /** Where SQL results past the inline caps are spilled (removed with the run files); absent: dropped. */
  readonly resultSpills?: ResultSpills;
}

const NOT_STARTED_ON_SHUTDOWN = 'The server shut down before the script instance started.';

/** How long a stop signal for a run not (yet) on this node is remembered, for a claim in flight. */
const REMEMBER_STOP_MS = 10_000;

function isOwnedBy(instance: Instance, owner: InstanceOwner): boolean {
  return (
    instance.scriptName === owner.scriptName &&
    instance.namespace.projectId === owner.namespace.projectId &&
    instance.namespace.workspaceId === owner.namespace.workspaceId
  );
}

export class RunSupervisor implements RunQueue {
  private readonly active: ActiveRuns = new Map();
  /** Slots taken by instances being inserted already claimed (not in `active` yet). */
  private reservedSlots = 0;
  /** Stop signals for instances this node did not run at that moment (a claim may be in flight). */
  private readonly recentStops = new Map<string, { at: number; by: string | undefined }>();
  /** Stop requests being written for instances not held here (see stopWritesEnded). */
  private readonly stopWrites = new Set<Promise<unknown>>();
  private readonly waiters: SettleWaiters;
  private readonly directories: RunDirectories;
  private readonly lifecycle: RunLifecycle;
  private readonly leases: LeaseKeeper;
  private readonly claims: ClaimPump;
  private pollInFlight = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Store work started by timers and signals, awaited by shutdown before the store closes. */
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: Pick<Store, 'instances' | 'signals' | 'shared' | 'idempotencyKeys'>,
    private readonly engineOf: EngineLookup,
    private readonly config: SupervisorConfig,
    private readonly log: Logger,
    private readonly observer: RunObserver = NO_RUN_OBSERVER,
  ) {
    this.waiters = new SettleWaiters((id) => store.instances.get(id), config.pollMs);
    this.directories = new RunDirectories(config.runsDir);
    this.lifecycle = new RunLifecycle(
      store.instances,
      engineOf,
      config,
      this.directories,
      log,
      observer,
      (row) => this.announceSettled(row.id, row),
      config.liveLogs,
    );
    this.leases = new LeaseKeeper(store.instances, this.active, config, log, observer);
    this.claims = new ClaimPump(
      store.instances,
      { nodeId: config.nodeId, leaseMs: config.leaseMs, shared: store.shared },
      () => this.freeSlots(),
      (run, leaseValidUntil) => this.begin(run, leaseValidUntil),
      (task) => this.track(task),
      log,
      observer,
      () => this.stopWritesEnded(),
    );
  }

  /** Subscribes to signals and starts the poll and the heartbeat; then claims waiting work. */
  start(): void {
    this.unsubscribe = this.store.signals.subscribe((signal) => this.onSignal(signal));
    this.store.signals.onReconnect(() => {
      this.claims.workMayBeQueued();
      this.track(() => this.poll());
    });
    const every = (ms: number, task: () => Promise<void>) => {
      const timer = setInterval(() => this.track(task), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.config.pollMs, () => this.poll());
    every(this.leases.heartbeatEveryMs, () => this.leases.heartbeat());
    // Work may have been queued before this process started (another node's, or a restart's).
    this.claims.workMayBeQueued();
    this.claims.pump();
  }

  /** Runs store work unless shut down, and remembers it until it ends. */
  private track(task: () => Promise<void>): void {
    if (this.stopped) return;
    const running = task().finally(() => this.inFlight.delete(running));
    this.inFlight.add(running);
  }

  private freeSlots(): number {
    return this.config.maxConcurrentRuns - this.active.size - this.reservedSlots;
  }

  private onSignal(signal: InstanceSignal): void {
    switch (signal.kind) {
      case 'work':
        this.claims.workMayBeQueued();
        this.claims.pump();
        return;
      case 'stop':
        this.deliverStop(signal.instanceId, undefined);
        return;
      case 'settled':
        this.waiters.wake(signal.instanceId);
        return;
      default:
        signal satisfies never;
    }
  }

  /** Once every stop request being written now has been written (or failed); undefined: none. */
  private stopWritesEnded(): Promise<void> | undefined {
    if (this.stopWrites.size === 0) return undefined;
    return Promise.allSettled([...this.stopWrites]).then(() => undefined);
  }

  /** Stops the run if it is on this node; otherwise remembers the stop for a claim in flight. */
  private deliverStop(id: string, by: string | undefined): boolean {
    const run = this.active.get(id);
    if (!run) {
      this.recentStops.set(id, { at: performance.now(), by });
      return false;
    }
    if (by !== undefined && !run.stopRequest && !run.controller.signal.aborted) {
      run.stopRequest = { at: new Date(), by };
    }
    endRun(run, 'stop');
    return true;
  }

  private announceSettled(id: string, row?: Instance): void {
    this.waiters.wake(id, row);
    if (this.store.shared) this.store.signals.publish({ kind: 'settled', instanceId: id });
  }

  waitUntilSettled(instanceId: string, timeoutMs: number): Promise<Instance | undefined> {
    const run = this.active.get(instanceId);
    // Held here with its settle still to come: that settle wakes the waiter, no store read needed.
    return this.waiters.untilSettled(instanceId, timeoutMs, run !== undefined && !run.settleWritten);
  }

  heldUnsettled(instanceId: string): Instance | undefined {
    const run = this.active.get(instanceId);
    return run && !run.settleWritten ? run.instance : undefined;
  }

  runningHere(instanceId: string): boolean {
    const run = this.active.get(instanceId);
    return run !== undefined && run.handleReported && !run.settleWritten;
  }

  settlingHere(instanceId: string, boundMs: number): Promise<Instance | undefined> | undefined {
    const run = this.active.get(instanceId);
    if (!run || !run.inProcess || !run.controller.signal.aborted || run.settleWritten) return undefined;
    let settledRow: Instance | undefined;
    return waitAtMost(
      run.settled.then((row) => (settledRow = row)),
      boundMs,
    ).then(() => settledRow);
  }

  get accepting(): boolean {
    return this.claims.accepting;
  }

  /** Instances waiting in the store for any node (queue-depth gauge). */
  queuedCount(): Promise<number> {
    return this.store.instances.countQueued();
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** Ids of the runs this node holds (the lease reaper spares them). */
  heldHere(): string[] {
    return [...this.active.keys()];
  }

  async submit(submission: RunSubmission): Promise<Instance | undefined> {
    this.observer.runQueued(submission.engine);
    return this.insertAndStart(submission, (instance, createdAt) =>
      this.store.instances.create(instance, createdAt),
    );
  }

  async submitOnce(submission: RunSubmission, claim: IdempotencyClaim): Promise<CreateOnceResult> {
    let existing: IdempotencyRecord | undefined;
    const instance = await this.insertAndStart(submission, async (row, createdAt) => {
      const once = await this.store.idempotencyKeys.createInstanceOnce(row, createdAt, claim);
      if (once.kind === 'existing') existing = once.record;
      return once.kind === 'created' ? once.instance : undefined;
    });
    if (existing) return { kind: 'existing', record: existing };
    if (!instance) return { kind: 'scriptGone' };
    this.observer.runQueued(submission.engine);
    return { kind: 'created', instance };
  }

  /**
   * Inserts the instance with `insert` (undefined: nothing was inserted) and starts it: claimed at
   * insert and begun here when this node has a free slot and nothing waits, else queued.
   */
  private async insertAndStart(
    submission: RunSubmission,
    insert: (instance: NewInstance, createdAt: Date) => Promise<Instance | undefined>,
  ): Promise<Instance | undefined> {
    const newInstance = { ...submission, id: randomUUID(), nodeId: this.config.nodeId };
    // One clock reading for both: a run claimed at insert never starts before it was created.
    const createdAt = new Date();
    if (this.claims.accepting && this.claims.queueKnownEmpty && this.freeSlots() > 0) {
      // Nothing waits before it and a slot is free: insert it claimed by this node and run it now.
      this.reservedSlots += 1;
      const sentAt = performance.now();
      let instance: Instance | undefined;
      try {
        instance = await insert(
          { ...newInstance, claim: { leaseMs: this.config.leaseMs, startedAt: createdAt } },
          createdAt,
        );
      } finally {
        this.reservedSlots -= 1;
      }
      // The script was deleted meanwhile: nothing was inserted, nothing runs.
      if (!instance) return undefined;
      if (!this.claims.accepting) {
        // Shutdown began during the insert: this node starts no new work (a queued row would have
        // been aborted the same way). Settled within this call, so the store is still open.
        const { from, to } = settleChange('ABORTED');
        const aborted = await this.store.instances.transition(instance.id, from, to, {
          endedAt: new Date(),
          message: NOT_STARTED_ON_SHUTDOWN,
          failureReason: 'shutdown',
        });
        if (aborted) this.announceSettled(instance.id, aborted);
        return aborted ?? instance;
      }
      this.begin({ instance, request: submission.request }, sentAt + this.config.leaseMs);
      return instance;
    }
    const instance = await insert(newInstance, createdAt);
    if (!instance) return undefined;
    this.claims.workMayBeQueued();
    if (this.claims.accepting && this.freeSlots() > 0) {
      // This node has room: it claims the work itself, without a round trip through the other
      // nodes (which would race it for the row). Should the slot be gone by the time the claim
      // runs, the other nodes' polls find the instance within pollMs.
      this.claims.pump();
    } else if (this.store.shared) {
      this.store.signals.publish({ kind: 'work' });
    }
    return instance;
  }

  private begin(claimed: ClaimedRun, leaseValidUntil: number): void {
    const id = claimed.instance.id;
    // Registered synchronously, before any await, so a stop arriving at any later moment finds it.
    const run = newActiveRun(claimed.instance, leaseValidUntil);
    this.active.set(id, run);
    const remembered = this.recentStops.get(id);
    this.recentStops.delete(id);
    if (remembered?.by !== undefined) run.stopRequest = { at: new Date(), by: remembered.by };
    if (claimed.instance.stopRequestedAt || remembered) endRun(run, 'stop');
    run.settled = this.lifecycle
      .run(claimed, run)
      .catch((error: unknown) => {
        this.observer.storeError();
        this.log.error({ err: error, instanceId: id }, 'run failed to settle');
        return undefined;
      })
      .finally(() => {
        this.active.delete(id);
        this.claims.pump();
      });
  }

  stopHere(instanceId: string, actor: string, belongs: (instance: Instance) => boolean): boolean {
    const run = this.active.get(instanceId);
    if (!run || !belongs(run.instance)) return false;
    return this.deliverStop(instanceId, actor);
  }

  async stop(instanceId: string, actor: string, owner: InstanceOwner): Promise<Instance | undefined> {
    const run = this.active.get(instanceId);
    if (run) {
      if (!isOwnedBy(run.instance, owner)) return undefined;
      this.deliverStop(instanceId, actor);
      // The settle hands over the row it wrote: no read after it.
      let settledRow: Instance | undefined;
      await waitAtMost(
        run.settled.then((row) => (settledRow = row)),
        this.config.stopWaitMs,
      );
      return settledRow ?? this.store.instances.get(instanceId);
    }
    // The request is written first, before anything is read, in one guarded statement: still
    // queued (on any node), the instance is settled STOPPED by it and no claim can take it any more;
    // claimed, the request is stored with it.
    const write = this.store.instances.requestStop(
      instanceId,
      owner,
      { at: new Date(), by: actor },
      { message: STOPPED_MESSAGE, failureReason: 'stopped' },
    );
    // Claims wait for the stop writes in flight (ClaimPump's stopWritesEnded).
    this.stopWrites.add(write);
    let requested: Instance | undefined;
    try {
      requested = await write;
    } finally {
      this.stopWrites.delete(write);
    }
    if (!requested) return undefined;
    if (isTerminal(requested.state)) {
      this.announceSettled(instanceId, requested);
      return requested;
    }
    // Claimed by another node, or by this one meanwhile (then stopped here, or on registration if
    // the claim is still in flight). The signal tells another owner now; its stop poll would find
    // the stored request within pollMs anyway.
    if (!this.deliverStop(instanceId, actor)) this.store.signals.publish({ kind: 'stop', instanceId });
    return (
      (await this.waitUntilSettled(instanceId, this.config.stopWaitMs)) ??
      (await this.store.instances.get(instanceId))
    );
  }

  /** The poll behind every signal: claims, stop requests, fencing, housekeeping. */
  private async poll(): Promise<void> {
    // Fencing is judged on every tick, even while the store hangs and earlier polls wait on it.
    this.leases.fenceExpired();
    const now = performance.now();
    for (const [id, { at }] of this.recentStops) if (now - at > REMEMBER_STOP_MS) this.recentStops.delete(id);
    this.claims.pump(true);
    // One poll at a time: a hanging store must not pile up a query per tick.
    if (this.pollInFlight) return;
    this.pollInFlight = true;
    try {
      for (const [id, run] of this.active) {
        if (run.pendingHandle && !run.settling) {
          await this.lifecycle.markRunning(id, run, run.pendingHandle, this.log.child({ instanceId: id }));
        }
      }
      if (this.active.size === 0) return;
      for (const id of await this.store.instances.listStopRequested(this.config.nodeId)) {
        this.deliverStop(id, undefined);
      }
    } catch (error) {
      this.observer.storeError();
      this.log.warn({ err: error }, 'could not poll stop requests');
    } finally {
      this.pollInFlight = false;
    }
  }

  /**
   * Graceful drain: stops claiming, lets running instances finish for up to `drainMs`, then ends
   * the rest (ABORTED, "shut down") and waits up to `waitMs` for them to settle. Queued instances
   * stay queued for the other nodes of a shared store; with a private store there are none, so
   * they are settled ABORTED.
   */
  async shutdown(drainMs: number, waitMs: number): Promise<void> {
    this.claims.stopClaiming();
    if (!this.store.shared) {
      const { from, to } = STATE_CHANGES.abortOnShutdown;
      for (const instance of await this.store.instances.listUnreleased(this.config.nodeId)) {
        if (!from.includes(instance.state)) continue;
        const aborted = await this.store.instances.transition(instance.id, from, to, {
          endedAt: new Date(),
          message: NOT_STARTED_ON_SHUTDOWN,
          failureReason: 'shutdown',
        });
        if (aborted) this.announceSettled(instance.id, aborted);
      }
    }
    const settledAll = () => Promise.all([...this.active.values()].map((r) => r.settled));
    if (this.active.size > 0) {
      this.log.info({ running: this.active.size, drainMs }, 'draining: waiting for running instances');
      await waitAtMost(settledAll(), drainMs);
    }
    if (this.active.size > 0) {
      this.log.warn({ running: this.active.size }, 'drain timeout passed: ending the remaining runs');
      for (const run of this.active.values()) endRun(run, 'shutdown');
      await waitAtMost(settledAll(), waitMs);
    }
    for (const timer of this.timers) clearInterval(timer);
    this.unsubscribe?.();
    this.stopped = true;
    await Promise.allSettled([...this.inFlight]);
  }

  /** Startup recovery (startup-recovery.ts); returns how many instances it settled. */
  recover(): Promise<number> {
    return recoverLeftoverRuns(this.store, this.engineOf, this.config.nodeId, this.log, (id) =>
      this.announceSettled(id),
    );
  }

  /** Ids of the instances that have a run directory (or a result spill) on this node. */
  async runFileIds(): Promise<string[]> {
    const ids = await this.directories.ids();
    const spilled = (await this.config.resultSpills?.ids()) ?? [];
    return [...new Set([...ids, ...spilled])];
  }

  async discardRunFiles(instanceIds: readonly string[]): Promise<void> {
    await this.directories.discard(instanceIds);
    await this.config.resultSpills?.discard(instanceIds);
  }
}
