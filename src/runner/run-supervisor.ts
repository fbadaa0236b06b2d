/**
 * The RunSupervisor is this node's runner. It wraps every engine with the behaviour they share —
 * the per-instance timeout, the abort plumbing of stop/timeout/drain/fencing, output limits, logging
 * and every persisted state transition (each one guarded, so the first terminal state wins; see
 * domain/instance-state.ts) — and it is this node's half of the store-backed queue:
 *
 *  - Work: execute persists a QUEUED instance carrying its run request. Each node claims QUEUED
 *    rows within its own concurrency limit (`InstanceStore.claim`: FOR UPDATE SKIP LOCKED on
 *    PostgreSQL), so every instance is claimed exactly once. The accepting node claims at once when
 *    it has room; a full one signals `work` to the others; a poll catches whatever is left.
 *  - Leases: a claim records this node as the owner with a lease on the database clock; a heartbeat
 *    renews it. A node that cannot renew (cut off from the database) stops its own runs before the
 *    lease runs out (fencing), and a run whose row was settled by someone else is stopped too.
 *  - Reaper: the LeaseReaper (lease-reaper.ts), on every node, settles instances whose lease
 *    expired (their node is lost); its `settled` signals wake this node's waiters.
 *  - Stops: a stop for a run on this node aborts it here; otherwise the request is already stored
 *    and a `stop` signal tells the owner, backed by a poll of stop requests — a lost signal delays
 *    a stop by at most one poll, it never loses it.
 *
 * With the embedded SQLite store there is one node and the same code runs with in-process signals.
 * docs/adr/0004-leases.md explains the lease length and heartbeat trade-offs.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { STOPPED_MESSAGE, type Instance, type RunHandle, type StatementResult } from '../domain/instance.js';
import { allowedSources, isTerminal, type InstanceState } from '../domain/instance-state.js';
import type { Engine, EngineLimits, EngineOutcome } from '../engines/engine.js';
import type { RunQueue } from '../services/run-queue.js';
import type { ClaimedRun, InstanceSignal, Store, TransitionPatch } from '../store/store.js';
import { NO_RUN_OBSERVER, type RunObserver } from './run-observer.js';

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
}

/** Finds the engine that runs a claimed instance (its connection may have changed since execute). */
export type EngineLookup = (instance: Instance) => Promise<Engine | undefined>;

/** Why a run was ended from outside the engine. */
type EndCause = 'stop' | 'timeout' | 'shutdown' | 'fenced';

interface ActiveRun {
  readonly controller: AbortController;
  settled: Promise<void>;
  /** performance.now() until which this node's lease on the instance certainly holds. */
  leaseValidUntil: number;
  /** The work is over and its settle is being written: a missing lease renewal is then expected. */
  settling: boolean;
  /** A run handle the store could not take yet (LAUNCHING → RUNNING); retried by the poll. */
  pendingHandle: RunHandle | undefined;
}

const CAUSE_STATE: Record<EndCause, InstanceState> = {
  stop: 'STOPPED',
  timeout: 'TIMED_OUT',
  shutdown: 'ABORTED',
  fenced: 'ABORTED',
};

/** How long a stop signal for a run not (yet) on this node is remembered, for a claim in flight. */
const REMEMBER_STOP_MS = 10_000;
/** Run directories are named by instance id (a server-generated UUID). */
const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export class RunSupervisor implements RunQueue {
  private readonly active = new Map<string, ActiveRun>();
  /** Stop signals for instances this node did not run at that moment (a claim may be in flight). */
  private readonly recentStops = new Map<string, number>();
  /** Waiters of `waitUntilSettled`, per instance id. */
  private readonly settleWaiters = new Map<string, Set<() => void>>();
  private claiming = true;
  private pumping = false;
  private pumpAgain = false;
  private heartbeatInFlight = false;
  private pollInFlight = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Store work started by timers and signals, awaited by shutdown before the store closes. */
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: Pick<Store, 'instances' | 'signals' | 'shared'>,
    private readonly engineOf: EngineLookup,
    private readonly config: SupervisorConfig,
    private readonly log: Logger,
    private readonly observer: RunObserver = NO_RUN_OBSERVER,
  ) {}

  private get instances() {
    return this.store.instances;
  }

  /** Subscribes to signals and starts the poll and the heartbeat; then claims waiting work. */
  start(): void {
    this.unsubscribe = this.store.signals.subscribe((signal) => this.onSignal(signal));
    this.store.signals.onReconnect(() => this.track(() => this.poll()));
    const every = (ms: number, task: () => Promise<void>) => {
      const timer = setInterval(() => this.track(task), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.config.pollMs, () => this.poll());
    // A heartbeat every third of the lease: one lost heartbeat never costs the lease.
    every(this.config.leaseMs / 3, () => this.heartbeat());
    this.pump();
  }

  /** Runs store work unless shut down, and remembers it until it ends. */
  private track(task: () => Promise<void>): void {
    if (this.stopped) return;
    const running = task().finally(() => this.inFlight.delete(running));
    this.inFlight.add(running);
  }

  private onSignal(signal: InstanceSignal): void {
    switch (signal.kind) {
      case 'work':
        this.pump();
        return;
      case 'stop':
        this.stopLocal(signal.instanceId);
        return;
      case 'settled':
        this.wakeWaiters(signal.instanceId);
        return;
      default:
        signal satisfies never;
    }
  }

  /** Stops the run if it is on this node; otherwise remembers the stop for a claim in flight. */
  private stopLocal(id: string): void {
    const run = this.active.get(id);
    if (run) {
      if (!run.controller.signal.aborted) run.controller.abort('stop' satisfies EndCause);
    } else {
      this.recentStops.set(id, performance.now());
    }
  }

  /** Ends a run this node can no longer be sure it owns (fencing), counted and logged. */
  private fence(id: string, run: ActiveRun, why: string): void {
    this.log.error({ instanceId: id }, why);
    this.observer.runFenced();
    run.controller.abort('fenced' satisfies EndCause);
  }

  private wakeWaiters(id: string): void {
    const waiters = this.settleWaiters.get(id);
    this.settleWaiters.delete(id);
    for (const wake of waiters ?? []) wake();
  }

  /** Every persisted transition of the runner goes through here, so waiters on every node are woken. */
  private async transition(
    id: string,
    from: readonly InstanceState[],
    to: InstanceState,
    patch: TransitionPatch,
  ): Promise<Instance | undefined> {
    const updated = await this.instances.transition(id, from, to, patch);
    if (updated && isTerminal(updated.state)) this.announceSettled(id);
    return updated;
  }

  private announceSettled(id: string): void {
    this.wakeWaiters(id);
    if (this.store.shared) this.store.signals.publish({ kind: 'settled', instanceId: id });
  }

  /** Resolves after `ms` or when a settle of `id` is announced (here or by a signal). */
  private settleSignal(id: string, ms: number): { promise: Promise<void>; cancel: () => void } {
    let cancel = () => undefined as void;
    const promise = new Promise<void>((resolve) => {
      const waiters = this.settleWaiters.get(id) ?? new Set<() => void>();
      this.settleWaiters.set(id, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.settleWaiters.get(id) === waiters) this.settleWaiters.delete(id);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      waiters.add(done);
      cancel = done;
    });
    return { promise, cancel };
  }

  /**
   * Resolves when the instance is terminal (or gone), or after `timeoutMs`. Woken by settle signals
   * from any node; re-reads the store every poll interval in case a signal was lost.
   */
  async waitUntilSettled(instanceId: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const remaining = deadline - performance.now();
      // Registered before the read, so a settle between the read and the wait is not missed.
      const wake = this.settleSignal(instanceId, Math.min(remaining, this.config.pollMs));
      const current = await this.instances.get(instanceId);
      if (!current || isTerminal(current.state) || remaining <= 0) {
        wake.cancel();
        return;
      }
      await wake.promise;
    }
  }

  get accepting(): boolean {
    return this.claiming;
  }

  /** Instances waiting in the store for any node (queue-depth gauge). */
  queuedCount(): Promise<number> {
    return this.instances.countQueued();
  }

  get activeCount(): number {
    return this.active.size;
  }

  announce(instance: Instance): void {
    this.observer.runQueued(instance.engine);
    if (this.claiming && this.active.size < this.config.maxConcurrentRuns) {
      // This node has room: it claims the work itself, without a round trip through the other
      // nodes (which would race it for the row). Should the slot be gone by the time the claim
      // runs, the other nodes' polls find the instance within pollMs.
      this.pump();
    } else if (this.store.shared) {
      this.store.signals.publish({ kind: 'work' });
    }
  }

  /** Claims while this node has free slots; at most one claim loop runs at a time. */
  private pump(): void {
    if (!this.claiming) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.track(() =>
      this.claimWhileFree().finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.pump();
        }
      }),
    );
  }

  private async claimWhileFree(): Promise<void> {
    for (;;) {
      const free = this.config.maxConcurrentRuns - this.active.size;
      if (!this.claiming || free <= 0) return;
      const sentAt = performance.now();
      let claimed: ClaimedRun[];
      try {
        claimed = await this.instances.claim(this.config.nodeId, free, this.config.leaseMs, new Date());
      } catch (error) {
        this.observer.storeError();
        this.log.error({ err: error }, 'could not claim queued instances');
        return;
      }
      for (const run of claimed) this.begin(run, sentAt + this.config.leaseMs);
      if (claimed.length < free) return;
    }
  }

  private begin(claimed: ClaimedRun, leaseValidUntil: number): void {
    const id = claimed.instance.id;
    // Registered synchronously, before any await, so a stop arriving at any later moment finds it.
    const run: ActiveRun = {
      controller: new AbortController(),
      settled: Promise.resolve(),
      leaseValidUntil,
      settling: false,
      pendingHandle: undefined,
    };
    this.active.set(id, run);
    if (claimed.instance.stopRequestedAt || this.recentStops.delete(id)) run.controller.abort('stop');
    run.settled = this.execute(claimed, run)
      .catch((error: unknown) => {
        this.observer.storeError();
        this.log.error({ err: error, instanceId: id }, 'run failed to settle');
      })
      .finally(() => {
        this.active.delete(id);
        this.pump();
      });
  }

  private messageFor(cause: EndCause): string {
    switch (cause) {
      case 'stop':
        return STOPPED_MESSAGE;
      case 'timeout':
        return `The script instance exceeded the timeout of ${Math.round(this.config.instanceTimeoutMs / 1000)} s and was ended.`;
      case 'shutdown':
        return 'The server shut down while the script instance was running; the run was ended.';
      case 'fenced':
        return 'The node running the script instance lost its lease (cut off from the store); the run was ended.';
      default:
        return cause satisfies never;
    }
  }

  private async settle(
    id: string,
    to: InstanceState,
    patch: { message: string; results: StatementResult[]; exitCode?: number | null },
  ): Promise<Instance | undefined> {
    const settled = await this.transition(
      id,
      allowedSources(to).filter((s) => s !== 'QUEUED'),
      to,
      // The work is over: the handle is released with the state in the same guarded update.
      { ...patch, endedAt: new Date(), runHandle: null },
    );
    // Someone else settled it first (reaper, recovery): the work is still over, release the handle.
    if (!settled) await this.instances.releaseHandle(id);
    return settled;
  }

  private async execute(claimed: ClaimedRun, run: ActiveRun): Promise<void> {
    const { controller } = run;
    const { instance, request } = claimed;
    const id = instance.id;
    const log = this.log.child({ instanceId: id, engine: instance.engine });
    const engine = request ? await this.engineOf(instance).catch(() => undefined) : undefined;
    if (!engine || !request) {
      run.settling = true;
      await this.settle(id, 'FAILED', {
        message: request
          ? `Node ${this.config.nodeId} has no '${instance.engine}' engine for the data connection '${instance.connectionName}' (deleted or changed since the execute, or not enabled on this node).`
          : 'The instance was queued by an older opendlf version and cannot be run.',
        results: [],
      });
      return;
    }
    const startedAt = performance.now();
    this.observer.runStarted(engine.name, (Date.now() - instance.createdAt.getTime()) / 1000);
    let stopRequestedAt: number | undefined;
    controller.signal.addEventListener('abort', () => (stopRequestedAt = performance.now()), { once: true });
    const { signal } = controller;
    const causeOf = (): EndCause => (signal.reason as EndCause | undefined) ?? 'stop';
    if (signal.aborted) {
      run.settling = true;
      await this.settle(id, CAUSE_STATE[causeOf()], { message: this.messageFor(causeOf()), results: [] });
      return;
    }
    const timer = setTimeout(
      () => controller.abort('timeout' satisfies EndCause),
      this.config.instanceTimeoutMs,
    );
    timer.unref();
    log.info('run started');
    let outcome: EngineOutcome;
    try {
      outcome = await engine.run(
        {
          instanceId: id,
          namespace: instance.namespace,
          scriptType: request.scriptType,
          content: request.content,
          database: request.database,
          runDir: join(this.config.runsDir, id),
          limits: this.config.limits,
        },
        {
          signal,
          stopGraceMs: this.config.stopGraceMs,
          reportHandle: (handle: RunHandle) => this.markRunning(id, run, handle, log),
        },
      );
    } catch (error) {
      log.error({ err: error }, 'engine error');
      outcome = {
        kind: 'failed',
        results: [],
        message: `The engine failed to run the script: ${(error as Error).message}`,
      };
    } finally {
      clearTimeout(timer);
    }
    if (stopRequestedAt !== undefined && signal.reason === 'stop') {
      this.observer.stopCompleted(engine.name, (performance.now() - stopRequestedAt) / 1000);
    }
    run.settling = true;
    const settled = await this.finish(id, outcome, signal, log);
    if (settled) this.observer.runEnded(engine.name, settled, (performance.now() - startedAt) / 1000);
  }

  private async markRunning(id: string, run: ActiveRun, handle: RunHandle, log: Logger): Promise<void> {
    try {
      await this.transition(id, ['LAUNCHING'], 'RUNNING', { runHandle: handle });
      run.pendingHandle = undefined;
    } catch (error) {
      // The run goes on (never fail it for this); the poll retries, so the instance does not stay
      // LAUNCHING after a store blip and crash recovery gets the handle.
      run.pendingHandle = handle;
      log.error({ err: error }, 'could not persist the run handle yet');
    }
  }

  /** Settles the run; returns the state written, or undefined when another writer got there first. */
  private async finish(
    id: string,
    outcome: EngineOutcome,
    signal: AbortSignal,
    log: Logger,
  ): Promise<InstanceState | undefined> {
    const cause = signal.aborted ? ((signal.reason as EndCause | undefined) ?? 'stop') : undefined;
    let to: InstanceState;
    let message = '';
    let exitCode: number | null = null;
    switch (outcome.kind) {
      case 'succeeded':
        // The work completed before a late stop could end it: the truth is FINISHED.
        to = 'FINISHED';
        exitCode = outcome.exitCode ?? null;
        break;
      case 'failed':
        // A failure caused by our own kill is reported as the cause, not as a script error.
        to = cause ? CAUSE_STATE[cause] : 'FAILED';
        message = cause ? this.messageFor(cause) : outcome.message;
        exitCode = outcome.exitCode ?? null;
        break;
      case 'aborted':
        to = CAUSE_STATE[cause ?? 'stop'];
        message = this.messageFor(cause ?? 'stop');
        break;
      default:
        outcome satisfies never;
        return undefined;
    }
    const settled = await this.settle(id, to, { message, results: outcome.results, exitCode });
    log.info({ state: settled?.state ?? 'unchanged', outcome: outcome.kind }, 'run ended');
    return settled?.state;
  }

  async stop(instanceId: string): Promise<void> {
    const run = this.active.get(instanceId);
    if (run) {
      run.controller.abort('stop' satisfies EndCause);
      await waitAtMost(run.settled, this.config.stopWaitMs);
      return;
    }
    // Still queued (on any node): the guarded update stops it and it never starts.
    const stopped = await this.transition(instanceId, ['QUEUED'], 'STOPPED', {
      endedAt: new Date(),
      message: STOPPED_MESSAGE,
    });
    if (stopped) return;
    // Claimed by another node, or by this one meanwhile (then stopped here, or on registration if
    // the claim is still in flight). The request is stored; the signal tells another owner now, its
    // stop poll would find it within pollMs anyway.
    this.stopLocal(instanceId);
    this.store.signals.publish({ kind: 'stop', instanceId });
    await this.waitUntilSettled(instanceId, this.config.stopWaitMs);
  }

  /** The poll behind every signal: claims, stop requests, fencing, housekeeping. */
  private async poll(): Promise<void> {
    // Fencing is judged on every tick, even while the store hangs and earlier polls wait on it.
    this.fenceExpired();
    const now = performance.now();
    for (const [id, at] of this.recentStops) if (now - at > REMEMBER_STOP_MS) this.recentStops.delete(id);
    this.pump();
    // One poll at a time: a hanging store must not pile up a query per tick.
    if (this.pollInFlight) return;
    this.pollInFlight = true;
    try {
      for (const [id, run] of this.active) {
        if (run.pendingHandle && !run.settling)
          await this.markRunning(id, run, run.pendingHandle, this.log.child({ instanceId: id }));
      }
      if (this.active.size === 0) return;
      for (const id of await this.instances.listStopRequested(this.config.nodeId)) this.stopLocal(id);
    } catch (error) {
      this.observer.storeError();
      this.log.warn({ err: error }, 'could not poll stop requests');
    } finally {
      this.pollInFlight = false;
    }
  }

  /**
   * Fencing: a run whose lease this node could not renew in time is ended here, before any reaper
   * can judge the lease expired, so a node cut off from the store leaves nothing running.
   */
  private fenceExpired(): void {
    const margin = this.config.leaseMs / 6;
    const now = performance.now();
    for (const [id, run] of this.active) {
      if (!run.settling && !run.controller.signal.aborted && now > run.leaseValidUntil - margin) {
        this.fence(id, run, 'lease not renewed in time: ending the run (fencing)');
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.heartbeatInFlight || this.active.size === 0) return;
    this.heartbeatInFlight = true;
    const sentAt = performance.now();
    const held = [...this.active.keys()];
    try {
      const renewed = new Set(
        await this.instances.renewLeases(this.config.nodeId, held, this.config.leaseMs),
      );
      for (const id of held) {
        const run = this.active.get(id);
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

  /**
   * Graceful drain: stops claiming, lets running instances finish for up to `drainMs`, then ends
   * the rest (ABORTED, "shut down") and waits up to `waitMs` for them to settle. Queued instances
   * stay queued for the other nodes of a shared store; with a private store there are none, so
   * they are settled ABORTED.
   */
  async shutdown(drainMs: number, waitMs: number): Promise<void> {
    this.claiming = false;
    if (!this.store.shared) {
      for (const instance of await this.instances.listUnreleased(this.config.nodeId)) {
        if (instance.state !== 'QUEUED') continue;
        await this.transition(instance.id, ['QUEUED'], 'ABORTED', {
          endedAt: new Date(),
          message: 'The server shut down before the script instance started.',
        });
      }
    }
    const settledAll = () => Promise.all([...this.active.values()].map((r) => r.settled));
    if (this.active.size > 0) {
      this.log.info({ running: this.active.size, drainMs }, 'draining: waiting for running instances');
      await waitAtMost(settledAll(), drainMs);
    }
    if (this.active.size > 0) {
      this.log.warn({ running: this.active.size }, 'drain timeout passed: ending the remaining runs');
      for (const run of this.active.values()) run.controller.abort('shutdown' satisfies EndCause);
      await waitAtMost(settledAll(), waitMs);
    }
    for (const timer of this.timers) clearInterval(timer);
    this.unsubscribe?.();
    this.stopped = true;
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Ends work a previous process of this node left behind and settles its instances: active ones
   * (ABORTED, "restarted") and ones a reaper already settled while this node was gone (their run
   * handle was never released). Queued instances stay queued when the store is shared.
   */
  async recover(): Promise<number> {
    const leftovers = await this.instances.listUnreleased(this.config.nodeId);
    let settled = 0;
    for (const instance of leftovers) {
      if (instance.state === 'QUEUED' && this.store.shared) continue;
      const engine = await this.engineOf(instance).catch(() => undefined);
      if (instance.runHandle && engine?.capabilities.recoversOrphans && engine.recover) {
        try {
          await engine.recover(instance.runHandle);
        } catch (error) {
          this.log.error({ err: error, instanceId: instance.id }, 'could not end leftover work');
        }
      }
      const ended = await this.transition(instance.id, ['QUEUED', 'LAUNCHING', 'RUNNING'], 'ABORTED', {
        endedAt: new Date(),
        message: 'The server restarted while the script instance was active; the run was ended.',
        runHandle: null,
      });
      if (!ended) await this.instances.releaseHandle(instance.id);
      settled += 1;
    }
    if (settled > 0) this.log.warn({ count: settled }, 'ended work left by a previous run of this node');
    return settled;
  }

  /** Ids of the instances that have a run directory on this node. */
  async runFileIds(): Promise<string[]> {
    const entries = await readdir(this.config.runsDir).catch(() => [] as string[]);
    return entries.filter((name) => INSTANCE_ID.test(name));
  }

  async discardRunFiles(instanceIds: readonly string[]): Promise<void> {
    for (const id of instanceIds) {
      // Instance ids are server-generated UUIDs, never user input, so the join cannot escape runsDir.
      await rm(join(this.config.runsDir, id), { recursive: true, force: true });
    }
  }
}

function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
