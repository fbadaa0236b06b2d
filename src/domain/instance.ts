/**
 * A script instance: one execution of a script, with its state and results (docs/compatibility.md §4).
 */
import type { FailureReason } from './failure-reason.js';
import type { InstanceState } from './instance-state.js';
import type { Namespace, ScriptType } from './script.js';

/** Engine-defined, JSON-serialisable description of a running piece of work. */
export interface RunHandle {
  /** Which engine wrote it; only that engine interprets the rest. */
  readonly engine: string;
  readonly [key: string]: string | number | boolean | null;
}

/** One per SQL statement, or one for a Shell/Python run (docs/compatibility.md §4). */
export interface StatementResult {
  /** Ordered single-key objects `{"column":"type"}`. */
  schema: Record<string, string>[];
  rows: unknown[][];
  rowCount: number;
  /** Seconds. */
  duration: number;
  message: string;
  /** Extension: true when rows were capped at the configured maximum. */
  truncated?: boolean;
  /** Shell/Python: the captured output text (capped). */
  rawResult?: string;
}

/** How a stop or failure happened, beyond the terminal state itself. */
export interface InstanceEnding {
  state: InstanceState;
  message: string;
  exitCode?: number | null;
  failureReason?: FailureReason | null;
}

export interface Instance {
  readonly id: string;
  readonly namespace: Namespace;
  readonly scriptId: string;
  readonly scriptName: string;
  state: InstanceState;
  /** The connection the run was resolved to at execute time. */
  readonly connectionName: string;
  readonly engine: string;
  readonly createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  stopRequestedAt: Date | null;
  /** Who asked for the stop (principal id), for the audit trail. */
  stopRequestedBy: string | null;
  /** Who executed it (principal id); null on rows written before migration 0009. */
  readonly startedBy: string | null;
  /** Human-readable reason for FAILED/STOPPED/TIMED_OUT/ABORTED. */
  message: string;
  exitCode: number | null;
  /** Why it did not finish (null while active, when FINISHED, and on rows settled before 0006). */
  failureReason: FailureReason | null;
  /** SQLSTATE of the failed statement, when the SQL engine reported one. */
  sqlState: string | null;
  results: StatementResult[];
  /**
   * What the engine reported it can be cancelled by (a process group, a backend id), persisted so a
   * restarted server can still end work that outlived its previous process.
   */
  runHandle: RunHandle | null;
  /**
   * The node that accepted the execute until a node claims it, then the node that runs it (for
   * stop routing, the lease reaper and recovery of that node's runs).
   */
  nodeId: string;
  /** While claimed: until when (database clock) the owner's lease holds; null otherwise. */
  leaseExpiresAt: Date | null;
}

/** An instance without its results and run handle: what run-history listings read. */
export type InstanceSummary = Omit<Instance, 'results' | 'runHandle'>;

/**
 * What to run, fixed at execute time and stored with the instance, so that whichever node claims
 * it runs exactly what was executed (parameters substituted), even if the script is edited meanwhile.
 */
export interface RunRequest {
  readonly scriptType: ScriptType;
  readonly content: string;
  readonly database: string;
  /**
   * Extension: this run's time limit (execute's `timeoutSeconds` or the script's default); absent,
   * the claiming node's instance timeout. The runner applies the smaller of the two.
   */
  readonly timeoutMs?: number;
}

export { STOPPED_MESSAGE } from './instance-state.js';
