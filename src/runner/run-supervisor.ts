/**
 * The RunSupervisor wraps every engine with the behaviour they share: a FIFO queue with a limit on
 * concurrent runs, the per-instance timeout, the abort plumbing of stop/timeout/shutdown, output
 * limits, logging, and every persisted state transition (each one guarded, so the first terminal
 * state wins — see domain/instance-state.ts).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { STOPPED_MESSAGE, type Instance, type RunHandle, type StatementResult } from '../domain/instance.js';
import { allowedSources, isTerminal, type InstanceState } from '../domain/instance-state.js';
import type { Engine, EngineLimits, EngineOutcome } from '../engines/engine.js';
import type { RunJob, RunQueue } from '../services/run-queue.js';
import type { InstanceStore, TransitionPatch } from '../store/store.js';
import { NO_RUN_OBSERVER, type RunObserver } from './run-observer.js';

export interface SupervisorConfig {
  /** Runs at once; the rest wait QUEUED (API status LAUNCHING). Default 8. */
  readonly maxConcurrentRuns: number;
  /** Per-instance timeout. Default 24 h. */
  readonly instanceTimeoutMs: number;
  /** SIGTERM → SIGKILL (and query cancel → harder cancel) grace. Default 2 s. */
  readonly stopGraceMs: number;
  /** How long a stop call waits for the instance to become terminal before answering anyway. */
  readonly stopWaitMs: number;
  /** Where each run's directory (`<runsDir>/<instanceId>`) lives. */
  readonly runsDir: string;
  readonly limits: EngineLimits;
}

/** Why a run was ended from outside the engine. */
type EndCause = 'stop' | 'timeout' | 'shutdown';

interface ActiveRun {
  readonly controller: AbortController;
  settled: Promise<void>;
}

const CAUSE_STATE: Record<EndCause, InstanceState> = {
  stop: 'STOPPED',
  timeout: 'TIMED_OUT',
  shutdown: 'ABORTED',
};

export class RunSupervisor implements RunQueue {
  private readonly queue: RunJob[] = [];
  private readonly active = new Map<string, ActiveRun>();
  private shuttingDown = false;

  constructor(
    private readonly instances: InstanceStore,
    private readonly config: SupervisorConfig,
    private readonly log: Logger,
    private readonly observer: RunObserver = NO_RUN_OBSERVER,
  ) {}

  /** Waiters of `waitUntilSettled`, per instance id. */
  private readonly settleWaiters = new Map<string, Set<() => void>>();

  /** Every persisted transition of the runner goes through here, so settle waiters are woken. */
  private async transition(
    id: string,
    from: readonly InstanceState[],
    to: InstanceState,
    patch: TransitionPatch,
  ): Promise<Instance | undefined> {
    const updated = await this.instances.transition(id, from, to, patch);
    if (updated && isTerminal(updated.state)) {
      const waiters = this.settleWaiters.get(id);
      this.settleWaiters.delete(id);
      for (const wake of waiters ?? []) wake();
    }
    return updated;
  }

  /** Resolves when the instance becomes terminal through this runner, or after `timeoutMs`. */
  waitUntilSettled(instanceId: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.settleWaiters.get(instanceId) ?? new Set<() => void>();
      this.settleWaiters.set(instanceId, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.settleWaiters.get(instanceId) === waiters)
          this.settleWaiters.delete(instanceId);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      waiters.add(done);
    });
  }

  get accepting(): boolean {
    return !this.shuttingDown;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  get activeCount(): number {
    return this.active.size;
  }

  submit(job: RunJob): void {
    this.queue.push(job);
    this.observer.runQueued(job.engine.name);
    this.pump();
  }

  private pump(): void {
    while (!this.shuttingDown && this.active.size < this.config.maxConcurrentRuns) {
      const job = this.queue.shift();
      if (!job) return;
      // Registered synchronously, before any await, so a stop arriving at any later moment finds it.
      const run: ActiveRun = { controller: new AbortController(), settled: Promise.resolve() };
      this.active.set(job.instance.id, run);
      run.settled = this.execute(job, run.controller)
        .catch((error: unknown) =>
          this.log.error({ err: error, instanceId: job.instance.id }, 'run failed to settle'),
        )
        .finally(() => {
          this.active.delete(job.instance.id);
          this.pump();
        });
    }
  }

  private messageFor(cause: EndCause): string {
    switch (cause) {
      case 'stop':
        return STOPPED_MESSAGE;
      case 'timeout':
        return `The script instance exceeded the timeout of ${Math.round(this.config.instanceTimeoutMs / 1000)} s and was ended.`;
      case 'shutdown':
        return 'The server shut down while the script instance was running; the run was ended.';
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
      {
        ...patch,
        endedAt: new Date(),
      },
    );
    return settled;
  }

  private async execute(job: RunJob, controller: AbortController): Promise<void> {
    const id = job.instance.id;
    const log = this.log.child({ instanceId: id, engine: job.engine.name });
    const launched = await this.transition(id, ['QUEUED'], 'LAUNCHING', { startedAt: new Date() });
    if (!launched) return; // Stopped (or deleted) while queued: it never starts.
    const startedAt = performance.now();
    this.observer.runStarted(job.engine.name, (Date.now() - job.instance.createdAt.getTime()) / 1000);
    let stopRequestedAt: number | undefined;
    controller.signal.addEventListener('abort', () => (stopRequestedAt = performance.now()), { once: true });
    const { signal } = controller;
    const causeOf = (): EndCause => (signal.reason as EndCause | undefined) ?? 'stop';
    if (signal.aborted) {
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
      outcome = await job.engine.run(
        { ...job.request, runDir: join(this.config.runsDir, id), limits: this.config.limits },
        {
          signal,
          stopGraceMs: this.config.stopGraceMs,
          reportHandle: (handle: RunHandle) => this.markRunning(id, handle, log),
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
      this.observer.stopCompleted(job.engine.name, (performance.now() - stopRequestedAt) / 1000);
    }
    const settled = await this.finish(id, outcome, signal, log);
    if (settled) this.observer.runEnded(job.engine.name, settled, (performance.now() - startedAt) / 1000);
  }

  private async markRunning(id: string, handle: RunHandle, log: Logger): Promise<void> {
    try {
      await this.transition(id, ['LAUNCHING'], 'RUNNING', { runHandle: handle });
    } catch (error) {
      // The run goes on; only crash recovery of this run is weakened. Never fail the run for it.
      log.error({ err: error }, 'could not persist the run handle');
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
    const index = this.queue.findIndex((job) => job.instance.id === instanceId);
    if (index >= 0) {
      this.queue.splice(index, 1);
      await this.transition(instanceId, ['QUEUED'], 'STOPPED', {
        endedAt: new Date(),
        message: STOPPED_MESSAGE,
      });
      return;
    }
    const run = this.active.get(instanceId);
    if (run) {
      run.controller.abort('stop' satisfies EndCause);
      await waitAtMost(run.settled, this.config.stopWaitMs);
      return;
    }
    // Not in this process's memory: a QUEUED row can still be stopped by its guarded update.
    await this.transition(instanceId, ['QUEUED'], 'STOPPED', {
      endedAt: new Date(),
      message: STOPPED_MESSAGE,
    });
  }

  /** Stops taking work, ends every queued and running instance, waits (bounded) until all are settled. */
  async shutdown(waitMs: number): Promise<void> {
    this.shuttingDown = true;
    const queued = this.queue.splice(0);
    for (const job of queued) {
      await this.transition(job.instance.id, ['QUEUED'], 'ABORTED', {
        endedAt: new Date(),
        message: 'The server shut down before the script instance started.',
      });
    }
    const runs = [...this.active.values()];
    for (const run of runs) run.controller.abort('shutdown' satisfies EndCause);
    await waitAtMost(Promise.all(runs.map((r) => r.settled)), waitMs);
  }

  /**
   * Settles instances a previous process of this node left active: ends their leftover work through
   * the engine (when it can) and marks them ABORTED. Runs before the server accepts requests.
   */
  async recover(
    nodeId: string,
    engineOf: (instance: Instance) => Promise<Engine | undefined>,
  ): Promise<number> {
    const leftovers = await this.instances.listActive(nodeId);
    for (const instance of leftovers) {
      const engine = await engineOf(instance).catch(() => undefined);
      if (instance.runHandle && engine?.capabilities.recoversOrphans && engine.recover) {
        try {
          await engine.recover(instance.runHandle);
        } catch (error) {
          this.log.error({ err: error, instanceId: instance.id }, 'could not end leftover work');
        }
      }
      await this.transition(instance.id, ['QUEUED', 'LAUNCHING', 'RUNNING'], 'ABORTED', {
        endedAt: new Date(),
        message: 'The server restarted while the script instance was active; the run was ended.',
      });
    }
    if (leftovers.length > 0)
      this.log.warn({ count: leftovers.length }, 'settled instances left by a previous run');
    return leftovers.length;
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
