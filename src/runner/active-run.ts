/**
 * What this node keeps in memory about one run it holds (claimed, running or settling). Shared by
 * the runner's parts: the lifecycle drives it, the lease keeper renews and fences it, stops abort it.
 */
import type { Instance, RunHandle } from '../domain/instance.js';
import type { EndCause } from '../domain/instance-state.js';

export interface ActiveRun {
  /** The row as claimed: which script and namespace the run belongs to (in-memory stop checks). */
  readonly instance: Instance;
  /** Aborted with the EndCause as reason: stop, timeout, shutdown or fencing. */
  readonly controller: AbortController;
  /** Resolves with the settled row (undefined when another writer settled it, or it failed). */
  settled: Promise<Instance | undefined>;
  /** performance.now() until which this node's lease on the instance certainly holds. */
  leaseValidUntil: number;
  /** The work is over and its settle is being written: a missing lease renewal is then expected. */
  settling: boolean;
  /** A run handle the store could not take yet (LAUNCHING → RUNNING); retried by the poll. */
  pendingHandle: RunHandle | undefined;
  /** A stop delivered here before any store write: recorded with the settle (first one wins). */
  stopRequest: { at: Date; by: string } | undefined;
  /** The settling update has returned (its waiters were woken in the same step). */
  settleWritten: boolean;
  /** The engine reported its handle: the work runs, whether or not RUNNING is written yet. */
  handleReported: boolean;
  /**
   * The work runs inside this process (DuckDB): once aborted it ends within moments (an interrupt,
   * no grace period or kill ladder), so a read may wait for its settle instead of showing RUNNING.
   */
  inProcess: boolean;
}

/** The runs this node holds, by instance id. */
export type ActiveRuns = Map<string, ActiveRun>;

export function newActiveRun(instance: Instance, leaseValidUntil: number): ActiveRun {
  return {
    instance,
    controller: new AbortController(),
    settled: Promise.resolve(undefined),
    leaseValidUntil,
    settling: false,
    pendingHandle: undefined,
    stopRequest: undefined,
    settleWritten: false,
    handleReported: false,
    inProcess: false,
  };
}

/** Aborts the run with `cause` unless it is already ending. */
export function endRun(run: ActiveRun, cause: EndCause): void {
  if (!run.controller.signal.aborted) run.controller.abort(cause);
}

export function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void promise.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
