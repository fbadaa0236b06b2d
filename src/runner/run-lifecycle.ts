/**
 * One claimed run from start to settle: find the engine, arm the per-instance timeout, run the
 * work with the abort signal, record RUNNING when the engine reports its handle, and settle it with
 * one guarded update (domain `settlementOf` decides state, message and failure reason).
 *
 * Store writes per run: none between claim and work for work that dies with this process —
 * in-process DuckDB (its handle is useless to recovery), and a SQL session whose server ends the
 * work of a lost client by itself (PostgreSQL opened with `client_connection_check_interval`: the
 * engine reports its handle with `endsWithThisProcess`, see `endsWorkOfLostClient` in
 * engines/sql-session-loop.ts). Their RUNNING is written only if the run is still going after
 * RUNNING_WRITE_DELAY_MS — a trivial run goes LAUNCHING → FINISHED in its one settling update —
 * while reads on this node show RUNNING as soon as the engine reports it. Engines whose work can
 * outlive the process (processes, remote sessions) write RUNNING with the handle before the work
 * starts, so recovery and the reaper can end it.
 */
import type { Logger } from 'pino';
import type { Instance, RunHandle } from '../domain/instance.js';
import {
  causeSettlement,
  settleChange,
  settlementOf,
  STATE_CHANGES,
  type EndCause,
  type InstanceState,
  type Settlement,
  unsavedResultsSettlement,
} from '../domain/instance-state.js';
import { isStorageFull } from '../domain/storage-full.js';
import type { Engine, EngineLimits, EngineOutcome, HandleReport } from '../engines/engine.js';
import type { ResultSpills } from '../engines/result-spill.js';
import type { ClaimedRun, InstanceLogStore, InstanceStore, TransitionPatch } from '../store/store.js';
import type { ActiveRun } from './active-run.js';
import type { RunDirectories } from './run-directories.js';
import { RunLogWriter } from './run-log-writer.js';
import type { RunObserver } from './run-observer.js';

/** Finds the engine that runs a claimed instance (its connection may have changed since execute). */
export type EngineLookup = (instance: Instance) => Promise<Engine | undefined>;

/**
 * How long an in-process run goes before its RUNNING state is written. A GET on this node sees
 * RUNNING at once (RunQueue.runningHere); a GET served by another node of a shared store sees
 * LAUNCHING for at most this long after the work started.
 */
export const RUNNING_WRITE_DELAY_MS = 250;

/** A settle refused for a full disk is retried after this, doubling up to SETTLE_RETRY_MAX_MS. */
const SETTLE_RETRY_FIRST_MS = 100;
const SETTLE_RETRY_MAX_MS = 2_000;

export interface RunLifecycleConfig {
  readonly nodeId: string;
  readonly instanceTimeoutMs: number;
  readonly stopGraceMs: number;
  readonly limits: EngineLimits;
  /** Where SQL results past the inline caps are spilled; absent: they are dropped. */
  readonly resultSpills?: ResultSpills;
}

export class RunLifecycle {
  constructor(
    private readonly instances: Pick<InstanceStore, 'transition' | 'releaseHandle'>,
    private readonly engineOf: EngineLookup,
    private readonly config: RunLifecycleConfig,
    private readonly directories: RunDirectories,
    private readonly log: Logger,
    private readonly observer: RunObserver,
    /** Called with every terminal row this node writes: wakes long polls here and on other nodes. */
    private readonly settled: (row: Instance) => void,
    /** Where Shell/Python output goes as it arrives (live logs); absent: no live log is kept. */
    private readonly logs?: Pick<InstanceLogStore, 'append'>,
  ) {}

  /** Runs and settles; resolves with the settled row, or undefined when another writer got there first. */
  async run(claimed: ClaimedRun, run: ActiveRun): Promise<Instance | undefined> {
    const { controller } = run;
    const { instance, request } = claimed;
    const id = instance.id;
    const log = this.log.child({ instanceId: id, engine: instance.engine });
    const engine = request ? await this.engineOf(instance).catch(() => undefined) : undefined;
    if (!engine || !request) {
      run.settling = true;
      return this.settle(id, run, {
        state: 'FAILED',
        message: request
          ? `Node ${this.config.nodeId} has no '${instance.engine}' engine for the data connection '${instance.connectionName}' (deleted or changed since the execute, or not enabled on this node).`
          : 'The instance was queued by an older opendlf version and cannot be run.',
        exitCode: null,
        failureReason: 'engine_error',
        sqlState: null,
      });
    }
    // The run's own limit (execute's timeoutSeconds or the script's default), never past this node's.
    const timeoutMs = Math.min(request.timeoutMs ?? Number.POSITIVE_INFINITY, this.config.instanceTimeoutMs);
    const startedAt = performance.now();
    this.observer.runStarted(engine.name, (Date.now() - instance.createdAt.getTime()) / 1000);
    let stopRequestedAt: number | undefined;
    controller.signal.addEventListener('abort', () => (stopRequestedAt = performance.now()), { once: true });
    const { signal } = controller;
    const causeOf = (): EndCause | undefined =>
      signal.aborted ? ((signal.reason as EndCause | undefined) ?? 'stop') : undefined;
    if (signal.aborted) {
      run.settling = true;
      return this.settle(id, run, causeSettlement(causeOf() ?? 'stop', timeoutMs));
    }
    const timer = setTimeout(() => controller.abort('timeout' satisfies EndCause), timeoutMs);
    timer.unref();
    // In-process work dies with this process: its RUNNING (and handle) need not be written first.
    const deferRunning = engine.recover === undefined;
    run.inProcess = deferRunning;
    let runningTimer: NodeJS.Timeout | undefined;
    // Writes only when the engine reports output (Shell/Python), in batches (run-log-writer.ts);
    // made on the first chunk, so a run without output (every SQL run) has no writer to close.
    const logs = this.logs;
    let liveLog: RunLogWriter | undefined;
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
          runDir: this.directories.pathOf(id),
          limits: this.config.limits,
          ...(this.config.resultSpills ? { spill: this.config.resultSpills.forRun(id) } : {}),
        },
        {
          signal,
          stopGraceMs: this.config.stopGraceMs,
          reportHandle: (handle: RunHandle, report?: HandleReport) => {
            run.handleReported = true;
            if (!deferRunning && report?.endsWithThisProcess !== true) {
              return this.markRunning(id, run, handle, log);
            }
            runningTimer = setTimeout(
              () => void this.markRunning(id, run, handle, log),
              RUNNING_WRITE_DELAY_MS,
            );
            return Promise.resolve();
          },
          ...(logs
            ? { onOutput: (chunk: Buffer) => (liveLog ??= new RunLogWriter(logs, id, log)).append(chunk) }
            : {}),
        },
      );
    } catch (error) {
      log.error({ err: error }, 'engine error');
      // Typically the run directory or the script file could not be written.
      const full = isStorageFull(error);
      outcome = {
        kind: 'failed',
        results: [],
        message: full
          ? `The server's storage is full: the script could not be run (${(error as Error).message}).`
          : `The engine failed to run the script: ${(error as Error).message}`,
        reason: full ? 'storage_full' : 'engine_error',
      };
    } finally {
      clearTimeout(timer);
      clearTimeout(runningTimer);
    }
    if (stopRequestedAt !== undefined && signal.reason === 'stop') {
      this.observer.stopCompleted(engine.name, (performance.now() - stopRequestedAt) / 1000);
    }
    run.settling = true;
    // The whole live log is stored before the settle: a reader that sees the instance terminal
    // knows no more output will come.
    await liveLog?.close();
    const settlement = settlementOf(outcome, causeOf(), timeoutMs);
    const settled = await this.settle(id, run, settlement, outcome.results);
    log.info({ state: settled?.state ?? 'unchanged', outcome: outcome.kind }, 'run ended');
    if (settled) this.observer.runEnded(engine.name, settled.state, (performance.now() - startedAt) / 1000);
    return settled;
  }

  /** LAUNCHING → RUNNING with the handle; a store blip leaves it pending for the poll to retry. */
  async markRunning(id: string, run: ActiveRun, handle: RunHandle, log: Logger): Promise<void> {
    if (run.settling) return;
    try {
      const { from, to } = STATE_CHANGES.markRunning;
      await this.instances.transition(id, from, to, { runHandle: handle });
      run.pendingHandle = undefined;
    } catch (error) {
      // The run goes on (never fail it for this); the poll retries, so the instance does not stay
      // LAUNCHING after a store blip and crash recovery gets the handle.
      run.pendingHandle = handle;
      log.error({ err: error }, 'could not persist the run handle yet');
    }
  }

  /**
   * The settling update, retried while the store's disk is full (SQLITE_FULL, ENOSPC): the work is
   * over and only its record is missing, which is written as soon as space returns — the run stays
   * held here (settling, so it is not fenced) until then. Any other store error is thrown as before.
   */
  private async transitionWhenStored(
    id: string,
    from: readonly InstanceState[],
    to: InstanceState,
    patch: TransitionPatch,
  ): Promise<Instance | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.instances.transition(id, from, to, patch);
      } catch (error) {
        if (!isStorageFull(error)) throw error;
        if (attempt === 0)
          this.log.error({ err: error, instanceId: id }, 'storage full: the settle waits for space');
        this.observer.storeError();
        const delay = Math.min(SETTLE_RETRY_MAX_MS, SETTLE_RETRY_FIRST_MS * 2 ** attempt);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** The settle of a run whose results could not be saved (see `unsavedResultsSettlement`). */
  private settleWithoutResults(
    id: string,
    settlement: Settlement,
    patch: TransitionPatch,
    error: unknown,
  ): Promise<Instance | undefined> {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    // V8 refuses strings past ~512 MiB: the results outgrew what one process can serialise.
    const tooLarge = error instanceof RangeError;
    const cause = tooLarge
      ? `they are too large to store (${detail}). Lower maxResultBytes (now ${this.config.limits.maxResultBytes ?? 'the default'}) or return fewer or narrower rows.`
      : `${detail}.`;
    this.log.error({ err: error, instanceId: id }, 'the results could not be saved: settling without them');
    if (!tooLarge) this.observer.storeError();
    const unsaved = unsavedResultsSettlement(settlement, tooLarge ? 'output_limit' : 'engine_error', cause);
    const { from, to } = settleChange(unsaved.state);
    return this.transitionWhenStored(id, from, to, {
      ...patch,
      message: unsaved.message,
      failureReason: unsaved.failureReason,
      results: [],
    });
  }

  /** The one settling update: state, message, reason, results, handle release and a stop heard here. */
  private async settle(
    id: string,
    run: ActiveRun,
    settlement: Settlement,
    results: TransitionPatch['results'] = [],
  ): Promise<Instance | undefined> {
    const { from, to } = settleChange(settlement.state);
    const patch: TransitionPatch = {
      message: settlement.message,
      exitCode: settlement.exitCode,
      failureReason: settlement.failureReason,
      sqlState: settlement.sqlState,
      results,
      endedAt: new Date(),
      // The work is over: the handle is released with the state in the same guarded update.
      runHandle: null,
      ...(run.stopRequest ? { stopRequest: run.stopRequest } : {}),
    };
    let settled: Instance | undefined;
    try {
      settled = await this.transitionWhenStored(id, from, to, patch);
    } catch (error) {
      // Building or writing this row failed (results too large to serialise, a value JSON cannot
      // hold, the store refused the row): the instance still settles, without its results, with the
      // cause as its message — never left active for the reaper. Should this write fail too, the
      // store itself is unreachable and the lease reaper settles the instance.
      settled = await this.settleWithoutResults(id, settlement, patch, error);
    }
    run.settleWritten = true;
    if (settled) this.settled(settled);
    // Someone else settled it first (reaper, recovery): the work is still over, release the handle.
    else await this.instances.releaseHandle(id);
    return settled;
  }
}
