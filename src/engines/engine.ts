/**
 * The engine port: the one small interface every execution backend implements. The RunSupervisor
 * (runner/) wraps every engine with the cross-cutting behaviour — queueing, timeouts, state
 * transitions, logging — so an engine only runs work, reports a cancellable handle, and ends the
 * work when its signal aborts.
 */
import type { EngineFailureReason } from '../domain/failure-reason.js';
import type { RunHandle, StatementResult } from '../domain/instance.js';
import type { Namespace, ScriptType } from '../domain/script.js';
import type { RunResultSpill } from './result-spill.js';

export interface EngineLimits {
  /** SQL: rows kept per statement result; further rows are dropped and `truncated` is set. Default 1,000. */
  readonly maxResultRows: number;
  /**
   * SQL: bytes of result values kept per instance, across all its statements; rows past it are
   * dropped and `truncated` is set. Absent: 30 MiB (`DEFAULT_MAX_RESULT_BYTES`).
   */
  readonly maxResultBytes?: number;
  /** Shell/Python: total output bytes before the run fails (DataArts: 30 MB). */
  readonly maxOutputBytes: number;
  /** Shell/Python: bytes of output kept in `rawResult`/`rows` of the result. Default 1 MiB. */
  readonly maxResultOutputBytes: number;
}

export interface EngineRunRequest {
  readonly instanceId: string;
  readonly namespace: Namespace;
  readonly scriptType: ScriptType;
  /** Script content with parameters already substituted. */
  readonly content: string;
  /** The script's `database` field (SQL engines). */
  readonly database: string;
  /** A directory that belongs to this run (script file, output log, working directory). */
  readonly runDir: string;
  readonly limits: EngineLimits;
  /**
   * SQL engines: where a statement's rows go once they outgrow the inline caps (result-spill.ts).
   * Absent: rows past the caps are dropped, as before spills existed.
   */
  readonly spill?: RunResultSpill;
}

/** What an engine says about the work behind a handle it reports. */
export interface HandleReport {
  /** The work ends by itself when this process is gone (no `recover` needed after a crash). */
  readonly endsWithThisProcess: boolean;
}

export interface EngineRunContext {
  /**
   * Aborts when the run must end (stop, timeout, shutdown). The engine ends the work — its whole
   * process tree or its query — and resolves `run` with `{ kind: 'aborted' }`. May already be aborted
   * when `run` is called or before the handle exists: the engine must check it after acquiring one.
   */
  readonly signal: AbortSignal;
  /** How long after the polite cancel (SIGTERM, query cancel) the engine escalates (SIGKILL, terminate). */
  readonly stopGraceMs: number;
  /**
   * Called once the work has a cancellable handle; the supervisor persists it (instance RUNNING)
   * before returning, so a crash after this point can still be cleaned up by `recover`. Work that
   * cannot outlive this process (`report.endsWithThisProcess`: the database ends it once this
   * process is gone, sql-session-loop.ts `endsWorkOfLostClient`) needs no stored handle to be
   * ended: the supervisor then stores it only if the run is still going a moment later, and such
   * work may go on before the returned promise resolves.
   */
  reportHandle(handle: RunHandle, report?: HandleReport): Promise<void>;
  /**
   * Shell/Python: receives the run's output as it arrives, exactly the bytes that go to output.log
   * (live logs). Must not block or throw; absent when nobody keeps a live log (connection tests).
   */
  readonly onOutput?: (chunk: Buffer) => void;
}

export type EngineOutcome =
  | { readonly kind: 'succeeded'; readonly results: StatementResult[]; readonly exitCode?: number }
  /** The script itself failed (non-zero exit, SQL error, output limit): not a server error. */
  | {
      readonly kind: 'failed';
      readonly results: StatementResult[];
      readonly message: string;
      readonly exitCode?: number | null;
      /** Why, when the engine knows (domain/failure-reason.ts); unset: classified by the runner. */
      readonly reason?: EngineFailureReason;
      /** The SQLSTATE of the failed statement, for SQL engines that report one. */
      readonly sqlState?: string;
    }
  /** The work was ended because `signal` aborted. */
  | { readonly kind: 'aborted'; readonly results: StatementResult[] };

/** Optional features, so the runner can ask what an engine can do instead of which engine it is. */
export interface EngineCapabilities {
  /**
   * `recover` works from any node, not only the machine that ran the work (the work lives on a
   * database or SSH host every node reaches): a lost node's work is ended by the node that reaps it.
   */
  readonly recoversFromAnyNode: boolean;
}

/** The smallest script an engine runs to show that a connection works (`ischeck=true`). */
export interface EngineProbe {
  readonly scriptType: ScriptType;
  readonly content: string;
}

export interface Engine {
  /** Stable identifier persisted with each instance, e.g. `local-shell`, `duckdb`. */
  readonly name: string;
  readonly capabilities: EngineCapabilities;
  /** What a connection test runs on this engine: its own choice, never guessed from `supports`. */
  readonly connectionProbe: EngineProbe;
  supports(type: ScriptType): boolean;
  /** Runs the work. Never rejects for script errors; a rejection means the engine itself broke. */
  run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome>;
  /**
   * Ends whatever is still running for a handle from a previous server process (best effort).
   * Present exactly when the engine's work can outlive the server process (a process tree, a
   * database or remote session): the runner then writes RUNNING with the handle before the work
   * goes on, and recovery calls this. Absent (DuckDB): the work dies with the process.
   */
  recover?(handle: RunHandle): Promise<void>;
  /**
   * Readiness probe: resolves when the engine could run work now (interpreter present, database
   * opens); rejects with the reason otherwise. Engines of stored connections are not probed (a
   * remote database being down does not make this server unready).
   */
  ping?(): Promise<void>;
  /** Releases pools, database files, connections. */
  close(): Promise<void>;
}
