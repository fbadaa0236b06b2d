/**
 * The ClickHouse engine: runs ClickHouseSQL scripts over ClickHouse's HTTP interface (tested against
 * 18.16, the version Debian bookworm ships; nothing here needs a newer server), through the shared
 * SQL loop (sql-session-loop.ts). Each statement is one POST; all statements of a run of several
 * share an HTTP session (`session_id`), which starts with a `USE <database>`, so the script's own
 * `USE`, `SET` and temporary tables carry from one statement to the next, in order, one result per
 * statement. A one-statement run is one POST with the `database` URL parameter and no session.
 *
 * Query ids: every statement of a run gets `<prefix>-<n>` where the prefix is
 * `<instanceId>-<random token>` (the token because an instance id is not unique per run: the
 * connection check reuses `connection-test-<id>`). The prefix is the run handle, so one
 * `KILL QUERY WHERE <query id is prefix-digits>` reaches whichever statement runs — for a stop and for
 * `recover` after a crash alike.
 *
 * Stop, each KILL over a separate HTTP request:
 *   1. `KILL QUERY … ASYNC` at once; the statement's own request then answers "Query was cancelled"
 *      (measured: its row has left system.processes by the time that answer arrives);
 *   2. after `stopGraceMs`, `KILL QUERY … SYNC` (the server waits until the query has ended — it also
 *      catches a statement that registered only after step 1 looked), then abort our request;
 *   3. one more `stopGraceMs` later, abort our request even if step 2 hangs.
 * ClickHouse 18.16 does not cancel a query whose HTTP client went away (measured: a `sleepEachRow`
 * query ran on after curl disconnected), so dropping the request alone would never be enough.
 *
 * Results: the whole result is never read into memory. The body is parsed as it streams
 * (JsonCompactReader); once a row arrives that no longer fits (`maxResultRows` reached, or the run's
 * `maxResultBytes` budget spent) the request is dropped and that statement's query is killed (SYNC,
 * bounded), so the next statement never overlaps it.
 */
import { randomBytes } from 'node:crypto';
import type { RunHandle, StatementResult } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import type { StatementResultBuilder, ResultColumn } from '../sql-result.js';
import { runSqlSession, type SqlSessionDriver } from '../sql-session-loop.js';
import { StopLadder } from '../stop-ladder.js';
import { ClickHouseConnectError, ClickHouseHttp, ClickHouseServerError } from './clickhouse-http.js';
import { JsonCompactReader, type ResultMeta } from './json-compact-reader.js';

/** Where and as whom the engine connects. */
export interface ClickHouseTarget {
  host: string;
  /** The HTTP(S) port (ClickHouse's default: 8123; 8443 for HTTPS). */
  port: number;
  user: string;
  password: string;
  /** Used when a script names no database. */
  database: string;
  /** HTTPS, with the server certificate verified against the system CAs. Default false. */
  secure?: boolean;
  /** Bound on opening each HTTP connection (TCP, TLS). Default 10 s. */
  connectTimeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Bound on one KILL/recover request; a stop must not hang on it (SYNC waits for the query to end). */
const CONTROL_QUERY_TIMEOUT_MS = 10_000;
/**
 * Every statement asks for JSONCompact through `default_format` rather than by appending
 * `FORMAT JSONCompact` to the SQL: the server applies it exactly to the statements that return
 * data, a statement's own FORMAT clause still wins, and no SQL is rewritten (an appended clause
 * would land inside a trailing `-- comment`, or need guessing which statements return data).
 */
const RESULT_FORMAT = 'JSONCompact';
/** Query-id prefixes we build and accept back from a persisted handle: no quote, backslash or wildcard. */
const SAFE_PREFIX = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Integer, floating-point and decimal types (also inside Nullable/LowCardinality) become JSON numbers. */
const NUMERIC_TYPE = /^(?:U?Int(?:8|16|32|64|128|256)|Float(?:32|64)|Decimal(?:32|64|128|256)?(?:\(.*\))?)$/;

export function isNumericClickHouseType(type: string): boolean {
  let inner = type.trim();
  for (;;) {
    const wrapped = /^(?:Nullable|LowCardinality)\((.*)\)$/.exec(inner);
    if (!wrapped?.[1]) break;
    inner = wrapped[1].trim();
  }
  return NUMERIC_TYPE.test(inner);
}

const ignore = () => undefined;

/** One run: its query-id prefix (the run handle), the URL parameters of its statements, the request in flight. */
interface ClickHouseRun {
  readonly prefix: string;
  readonly database: string;
  params: Readonly<Record<string, string>>;
  current: AbortController | undefined;
}

export class ClickHouseEngine implements Engine {
  readonly capabilities = { recoversFromAnyNode: true } as const;
  private readonly http: ClickHouseHttp;
  /** Query-id prefixes of the runs in progress, so `close` can end their queries on the server. */
  private readonly activeRuns = new Set<string>();

  constructor(
    readonly name: string,
    private readonly target: ClickHouseTarget,
  ) {
    this.http = new ClickHouseHttp({
      host: target.host,
      port: target.port,
      user: target.user,
      password: target.password,
      secure: target.secure ?? false,
      connectTimeoutMs: target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    });
  }

  readonly connectionProbe = { scriptType: 'ClickHouseSQL', content: 'SELECT 1' } as const;

  supports(type: ScriptType): boolean {
    return type === 'ClickHouseSQL';
  }

  run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    return runSqlSession(this.driver, request, context);
  }

  /** What the shared SQL loop needs from ClickHouse (sql-session-loop.ts). */
  private readonly driver: SqlSessionDriver<ClickHouseRun> = {
    // ClickHouse quotes like MySQL: strings with backslash escapes ('it\'s'), identifiers in
    // backticks or double quotes, no dollar quoting — the 'postgres' splitter would end a string
    // at \' and split at a ; inside it.
    dialect: 'mysql',
    // Nothing to open: each statement is its own HTTP request.
    open: (request) => {
      const prefix = runPrefix(request.instanceId);
      this.activeRuns.add(prefix);
      return Promise.resolve({
        prefix,
        database: request.database || this.target.database,
        params: { default_format: RESULT_FORMAT },
        current: undefined,
      });
    },
    openFailure: (error) => describeError(error),
    identify: (run) =>
      Promise.resolve({
        engine: this.name,
        host: this.target.host,
        port: this.target.port,
        queryIdPrefix: run.prefix,
      }),
    setupFailure: (error) => describeError(error),
    stopControl: (run, _handle, context) =>
      new StopLadder(context.signal, context.stopGraceMs, {
        polite: () => this.killRun(run.prefix, 'ASYNC'),
        forceful: async () => {
          try {
            await this.killRun(run.prefix, 'SYNC');
          } finally {
            run.current?.abort();
          }
        },
        abandon: () => run.current?.abort(),
      }),
    begin: async (run, _request, statementCount) => {
      if (statementCount === 1) {
        // One statement needs no session (none is left on the server for its timeout) and no USE:
        // the `database` URL parameter applies to exactly that request.
        if (run.database) run.params = { ...run.params, database: run.database };
        return;
      }
      // Several statements share an HTTP session, so the script's own USE, SET and temporary tables
      // carry from one to the next. The `database` URL parameter applies to one request only, even
      // inside a session (measured on 18.16: the next statement ran in `default` again); a USE sets
      // the session's database and lets the script's own USE statements stick.
      run.params = { ...run.params, session_id: run.prefix };
      if (!run.database) return;
      run.current = new AbortController();
      await this.http.post({
        sql: `USE ${identifier(run.database)}`,
        params: { ...run.params, query_id: `${run.prefix}-0` },
        signal: run.current.signal,
      });
    },
    beginFailure: (error, request) =>
      error instanceof ClickHouseConnectError
        ? { message: this.connectFailure(error), reason: 'connect_failed' }
        : {
            message: `Database ${request.database || this.target.database} cannot be used: ${describeError(error)}`,
          },
    execute: (run, sql, index, builder) => {
      run.current = new AbortController();
      return this.execute(
        sql,
        { ...run.params, query_id: `${run.prefix}-${index + 1}` },
        builder,
        run.current.signal,
      );
    },
    statementFailure: (error) =>
      error instanceof ClickHouseConnectError
        ? { detail: error.message, message: this.connectFailure(error), reason: 'connect_failed' }
        : { detail: describeError(error) },
    release: (run) => {
      this.activeRuns.delete(run.prefix);
      return Promise.resolve();
    },
  };

  /** Kills whatever still runs of a run of a previous server process (its query-id prefix). */
  async recover(handle: RunHandle): Promise<void> {
    const prefix = handle['queryIdPrefix'];
    if (typeof prefix !== 'string' || !SAFE_PREFIX.test(prefix)) return;
    // The prefix holds a random token, so this cannot reach another run, even on another server
    // the connection has since been pointed at.
    await this.killRun(prefix, 'SYNC');
  }

  /**
   * Kills the queries of runs still in progress (dropping their requests alone would leave them
   * running on the server), then destroys every request in flight.
   */
  async close(): Promise<void> {
    const prefixes = [...this.activeRuns];
    await Promise.all(prefixes.map((prefix) => this.killRun(prefix, 'ASYNC').catch(ignore)));
    this.http.close();
  }

  /**
   * Runs one statement, keeping the first `maxRows` rows within the run's byte budget (see the
   * header on truncation).
   */
  private async execute(
    sql: string,
    params: Readonly<Record<string, string>>,
    builder: StatementResultBuilder,
    signal: AbortSignal,
  ): Promise<StatementResult> {
    const reader = new JsonCompactReader(
      {
        columns: (columns) => builder.setColumns(columns.map(toResultColumn)),
        // The first row refused (past the row cap or the byte budget) marks the result truncated;
        // then stop reading and end the query.
        row: (values) => builder.addRow(values),
        rowTooLarge: () => builder.markTruncated(),
      },
      // A row whose JSON text is longer than the budget left could never be kept: stop buffering it.
      builder.budgetRemaining + 1024,
    );
    const { complete } = await this.http.post({ sql, params, signal, onText: (text) => reader.push(text) });
    if (!complete) {
      // We dropped the connection, which this server does not notice until it next writes.
      const queryId = params['query_id'] ?? '';
      await this.control(`KILL QUERY WHERE query_id = ${sqlString(queryId)} SYNC`).catch(ignore);
    } else {
      const failure = reader.end();
      if (failure) throw new Error(failure);
    }
    return builder.build();
  }

  /** KILL QUERY for every statement of the run `prefix`: exactly the ids `<prefix>-<digits>`. */
  private killRun(prefix: string, mode: 'ASYNC' | 'SYNC'): Promise<void> {
    if (!SAFE_PREFIX.test(prefix)) return Promise.resolve();
    const head = `${prefix}-`;
    return this.control(
      `KILL QUERY WHERE startsWith(query_id, ${sqlString(head)}) ` +
        `AND match(substring(query_id, ${head.length + 1}), '^[0-9]+$') ${mode}`,
    );
  }

  /** A control statement on its own connection, outside the run's session, bounded in time. */
  private async control(sql: string): Promise<void> {
    await this.http.post({ sql, params: {}, signal: AbortSignal.timeout(CONTROL_QUERY_TIMEOUT_MS) });
  }

  private connectFailure(error: ClickHouseConnectError): string {
    return `Could not connect to ClickHouse at ${this.target.host}:${this.target.port}: ${error.message}`;
  }
}

/** `<instanceId>-<token>`, or `run-<token>` when the instance id holds characters unsafe in SQL text. */
function runPrefix(instanceId: string): string {
  const token = randomBytes(4).toString('hex');
  const prefix = `${instanceId}-${token}`;
  return SAFE_PREFIX.test(prefix) ? prefix : `run-${randomBytes(8).toString('hex')}`;
}

/** A ClickHouse identifier in backticks (backslash escapes, as in string literals). */
function identifier(name: string): string {
  return `\`${name.replace(/\\/g, '\\\\').replace(/`/g, '\\`')}\``;
}

/** A ClickHouse string literal: backslash and quote escaped (ClickHouse strings take backslash escapes). */
function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function toResultColumn(meta: ResultMeta): ResultColumn {
  return { name: meta.name, type: meta.type, numeric: isNumericClickHouseType(meta.type) };
}

/** The server's exception text as is (`Code: 60, e.displayText() = DB::Exception: …`), else the error. */
function describeError(error: unknown): string {
  if (error instanceof ClickHouseServerError) return error.message;
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
