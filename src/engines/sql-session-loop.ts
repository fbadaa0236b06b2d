/**
 * The one statement loop of every SQL engine (Kysely's RuntimeDriver idea): the loop owns what must
 * behave the same on every database — splitting the script into statements, reporting the run
 * handle before the first statement, "no statement starts after a stop", "a stop that arrives while
 * the last statement finishes still counts as a stop", the row and byte caps of the results, and
 * the result entry and message of a failed statement. An engine supplies only the parts that differ
 * (`SqlSessionDriver`): open a session, tell who it is, execute one statement, the stop steps, and
 * what happens to the session afterwards (back to a pool, reset, closed).
 */
import type { EngineFailureReason } from '../domain/failure-reason.js';
import { isStorageFull } from '../domain/storage-full.js';
import type { RunHandle, StatementResult } from '../domain/instance.js';
import type { EngineOutcome, EngineRunContext, EngineRunRequest } from './engine.js';
import {
  DEFAULT_MAX_RESULT_BYTES,
  errorResult,
  ResultByteBudget,
  StatementResultBuilder,
} from './sql-result.js';
import { splitStatementsForRun, type SqlDialect } from './sql-statements.js';
import { ABORTED } from './stop-ladder.js';

/** How a run's session is told to stop (StopLadder for network databases, an interrupt loop for DuckDB). */
export interface SqlStopControl {
  /** Starts listening to the run's signal; acts at once if it already aborted. */
  arm(): void;
  /** Stops listening and waits for stop calls still in flight (a cancel must not land on the next run). */
  finish(): Promise<void>;
  /** True once the stop escalated past the polite step: the session must not be reused. */
  readonly forced: boolean;
}

/** Why a statement failed, as the driver reads its error. */
export interface SqlStatementFailure {
  /** The database's message; the loop shows it as `Statement <n> failed: <detail>`. */
  readonly detail: string;
  /** Replaces the whole message when the failure is not the statement's (the connection could not be opened). */
  readonly message?: string;
  readonly sqlState?: string;
  /** Absent: `script_error`. */
  readonly reason?: EngineFailureReason;
}

/** How the run ended, for the driver deciding what to do with its session. */
export interface SqlSessionEnd {
  /** The run's signal aborted (stop, timeout, shutdown): the statement may have been cancelled. */
  readonly stopped: boolean;
  /** The stop escalated (terminate, KILL): the session is gone or about to be. */
  readonly forced: boolean;
  /** The run's statements (after splitting), e.g. to notice a `USE` that a reset would not undo. */
  readonly statements: readonly string[];
}

/** What one SQL engine supplies to the shared loop. `Session` is the engine's own session object. */
export interface SqlSessionDriver<Session> {
  /** The splitter's dialect for this database's quoting rules. */
  readonly dialect: SqlDialect;
  /** Why a script is refused before any session opens, or undefined (DuckDB's sandbox). */
  refuse?(content: string): string | undefined;
  /**
   * Opens a session for the run, or takes a reset one from a pool. Resolves `ABORTED` when the
   * signal aborted first (the driver closes a session that arrives late). A rejection is a connect
   * failure whose message comes from `openFailure`.
   */
  open(request: EngineRunRequest, signal: AbortSignal): Promise<Session | typeof ABORTED>;
  openFailure(error: unknown, request: EngineRunRequest): string;
  /**
   * The run handle (what `recover` needs to find the work after a crash), usually cached per
   * session. A rejection fails the run with `setupFailure`'s message.
   */
  identify(session: Session, request: EngineRunRequest): Promise<RunHandle>;
  setupFailure(error: unknown): string;
  /**
   * True when the database itself ends this session's statement once this process is gone
   * (PostgreSQL's `client_connection_check_interval`): a crash of this process then leaves no work
   * behind whether or not the handle was stored, so the handle is reported as such
   * (`endsWithThisProcess`: the runner stores it only if the run goes on for a moment) and its
   * write, if any, goes on beside the first statement instead of before it (the loop still waits
   * for it before returning). Absent or false: the handle is stored before any statement starts,
   * so that recovery can end the work.
   */
  endsWorkOfLostClient?(session: Session): boolean;
  /** The stop steps aimed at this session; the loop arms them once the handle is reported. */
  stopControl(session: Session, handle: RunHandle, context: EngineRunContext): SqlStopControl;
  /**
   * Optional work after the stop is armed and before the first statement (ClickHouse: `USE` the
   * script's database). A rejection fails the run with one error result, with `beginFailure`'s
   * message and reason (`script_error` when it gives none: e.g. the script's database is unknown).
   */
  begin?(session: Session, request: EngineRunRequest, statementCount: number): Promise<void>;
  beginFailure?(
    error: unknown,
    request: EngineRunRequest,
  ): { readonly message: string; readonly reason?: EngineFailureReason };
  /** Runs one statement, adding its rows to `builder` (which enforces both caps), and returns its result. */
  execute(
    session: Session,
    sql: string,
    index: number,
    builder: StatementResultBuilder,
  ): Promise<StatementResult>;
  statementFailure(error: unknown, session: Session): SqlStatementFailure;
  /**
   * Called once after the outcome is decided. What the run must wait for (a ROLLBACK that releases
   * a stopped statement's locks) is awaited here; what it need not (resetting a session before it
   * returns to the pool) the driver does after this resolves.
   */
  release(session: Session, end: SqlSessionEnd): Promise<void>;
}

/**
 * Resolves two turns of the event loop later. A driver's `release` starts the session reset it does
 * not wait for (DISCARD ALL, COM_RESET_CONNECTION) after it, so the reset's socket write and reply
 * (one write and one read a run) come after the settle: the runner writes the settle in the turn
 * the outcome arrives, and the SQLite store commits a turn's writes in a setImmediate of that turn
 * (group commit), which would otherwise run after a reset queued in the same turn.
 */
export const afterOutcome = (): Promise<void> =>
  new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/** Runs a script through `driver`: one session, its statements in order, one result per statement. */
export async function runSqlSession<Session>(
  driver: SqlSessionDriver<Session>,
  request: EngineRunRequest,
  context: EngineRunContext,
): Promise<EngineOutcome> {
  const { signal } = context;
  const results: StatementResult[] = [];
  const aborted = (): EngineOutcome => ({ kind: 'aborted', results });
  const split = splitStatementsForRun(request.content, driver.dialect);
  if (!split.ok) return { kind: 'failed', results, message: split.message, reason: 'script_error' };
  const { statements } = split;
  const refused = driver.refuse?.(request.content);
  if (refused !== undefined) return { kind: 'failed', results, message: refused, reason: 'script_error' };
  if (signal.aborted) return aborted();

  let session: Session | typeof ABORTED;
  try {
    session = await driver.open(request, signal);
  } catch (error) {
    // A database kept on this server's disk (DuckDB) cannot be opened while that disk is full.
    const reason = isStorageFull(error) ? 'storage_full' : 'connect_failed';
    return { kind: 'failed', results, message: driver.openFailure(error, request), reason };
  }
  if (session === ABORTED) return aborted();

  let stop: SqlStopControl | undefined;
  /** The handle's write, when it runs beside the statements (`endsWorkOfLostClient`). */
  let handleWrite: Promise<void> | undefined;
  try {
    let handle: RunHandle;
    try {
      handle = await driver.identify(session, request);
    } catch (error) {
      if (signal.aborted) return aborted();
      return { kind: 'failed', results, message: driver.setupFailure(error), reason: 'session_lost' };
    }
    const endsWithThisProcess = driver.endsWorkOfLostClient?.(session) === true;
    const written = context.reportHandle(handle, { endsWithThisProcess });
    if (endsWithThisProcess) {
      handleWrite = written;
      // Awaited in `finally`; until then a rejection must not count as unhandled.
      written.catch(() => undefined);
    } else await written;
    if (signal.aborted) return aborted();
    stop = driver.stopControl(session, handle, context);
    stop.arm();

    if (driver.begin) {
      const started = performance.now();
      try {
        await driver.begin(session, request, statements.length);
      } catch (error) {
        if (signal.aborted) return aborted();
        const { message, reason = 'script_error' } = driver.beginFailure?.(error, request) ?? {
          message: String(error),
        };
        return { kind: 'failed', results: [errorResult(message, started)], message, reason };
      }
    }

    const budget = new ResultByteBudget(request.limits.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES);
    const { spill } = request;
    for (const [index, sql] of statements.entries()) {
      // Stopped between statements: the next one never starts.
      if (signal.aborted) return aborted();
      const started = performance.now();
      // Built first: its clock gives the statement's duration, including the time to start it.
      // Its spill (rows past the caps) is opened only if the statement outgrows them.
      const builder = new StatementResultBuilder(
        request.limits.maxResultRows,
        budget,
        spill && (() => spill.open(results.length)),
      );
      try {
        results.push(await driver.execute(session, sql, index, builder));
        // Stopped while the statement ran: it may have returned only part of its rows.
        if (signal.aborted) builder.abandonSpill();
        else builder.finishSpill();
      } catch (error) {
        builder.abandonSpill();
        // A cancelled statement fails with the database's "canceled"; the run was stopped, not failed.
        if (signal.aborted) return aborted();
        const failure = driver.statementFailure(error, session);
        const message = failure.message ?? `Statement ${index + 1} failed: ${failure.detail}`;
        const outcome: EngineOutcome = {
          kind: 'failed',
          results: [...results, errorResult(message, started)],
          message,
          reason: failure.reason ?? 'script_error',
          ...(failure.sqlState === undefined ? {} : { sqlState: failure.sqlState }),
        };
        return outcome;
      }
    }
    // A stop that arrived while the last statement was finishing still counts as a stop
    // (MySQL's SLEEP() even returns 1 instead of failing when its query is killed).
    return signal.aborted ? aborted() : { kind: 'succeeded', results };
  } finally {
    try {
      // The outcome leads to the settle: the handle's write comes first, as when it was awaited.
      await handleWrite;
    } finally {
      await stop?.finish();
      await driver.release(session, { stopped: signal.aborted, forced: stop?.forced ?? false, statements });
    }
  }
}
