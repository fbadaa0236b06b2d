/**
 * The MySQL/MariaDB engine: runs RDSSQL scripts. Connections are kept between runs per database, at
 * most `maxConnections` at once, and reset (COM_RESET_CONNECTION) after each run before the next
 * run gets them, so no session state leaks into the next run; all statements of a run on one
 * connection, in order, one result per statement (the shared loop, sql-session-loop.ts). A run on
 * an idle connection costs one round trip per statement; the reset runs after the outcome.
 *
 * Stop, from control connections of its own: `KILL QUERY <thread>` at once, on a connection kept
 * open while runs come (warm-connection.ts), so the KILL leaves in the abort event itself;
 * `KILL <thread>` after `stopGraceMs` from a small control pool (then wait until the thread has left
 * the process list), and finally drop our socket. The run's transaction is rolled back before the
 * connection closes, so a stopped `START TRANSACTION; SELECT … FOR UPDATE; SELECT SLEEP(…)` holds no
 * row lock when the run returns (`KILL QUERY` ends the statement, not the transaction). Limitation:
 * MariaDB does not notice a vanished client while a statement runs (measured on 10.11 with the
 * client process SIGKILLed: `SLEEP(20)` ended after ~4.5 s, as SLEEP polls its connection, but
 * `BENCHMARK(2000000000, MD5('x'))` still ran 25 s later), so when neither KILL can be delivered the
 * statement runs to its end on the server — and the run's handle is stored before its first
 * statement (no `endsWorkOfLostClient`), so that recovery after a crash of this process can KILL it.
 *
 * Trap handled here: mysql2 reports a lost connection only as a connection 'error' event when the
 * running query has no callback (our streaming queries), so each statement also listens on the
 * connection and the abandon step fails the statement locally.
 */
import mysql, { type FieldPacket, type QueryError } from 'mysql2';
import type { RunHandle, StatementResult } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import { describeDriverError } from '../driver-error.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import { SessionSlots } from '../session-slots.js';
import type { StatementResultBuilder, ResultColumn } from '../sql-result.js';
import {
  afterOutcome,
  runSqlSession,
  type SqlSessionDriver,
  type SqlSessionEnd,
} from '../sql-session-loop.js';
import { ABORTED, raceAbort, StopLadder } from '../stop-ladder.js';
import { WarmConnection } from '../warm-connection.js';

/** Where and as whom the engine connects. */
export interface MysqlTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Used when a script names no database. */
  database: string;
  /** Bound on opening a connection (TCP, handshake, authentication). Default 10 s. */
  connectTimeoutMs?: number;
}

export interface MysqlEngineOptions {
  /** Connections held open at once; further runs wait for one. Default 10. */
  maxConnections?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CONNECTIONS = 10;
/** End-of-run ROLLBACK longer than this means a sick connection: destroy it instead. */
const CLEANUP_TIMEOUT_MS = 5_000;
/** Bound on one KILL/recover call once connected; a stop must not hang on it. */
const CONTROL_QUERY_TIMEOUT_MS = 10_000;
/**
 * How long the forceful step waits for a killed thread to leave the process list (measured:
 * 3–7 ms), so its locks are gone when the run returns. A thread stuck longer is left to the server.
 */
const KILL_WAIT_MS = 5_000;
/**
 * Two estimates of the server's start time (now − Uptime, whole seconds) differ by up to 2 s for
 * the same server; a larger gap means it restarted and thread ids started over.
 */
const SERVER_START_TOLERANCE_S = 5;

/** Idle connections are closed after this; a reused one saves a connect, an idle one costs a thread. */
const IDLE_TIMEOUT_MS = 30_000;
/** Server status flags of an OK packet (MySQL protocol). */
const SERVER_STATUS_IN_TRANS = 1;
const SERVER_STATUS_AUTOCOMMIT = 2;
/**
 * A statement that changes the connection's character set. Measured on MariaDB 10.11: after
 * `SET NAMES latin1` and COM_RESET_CONNECTION the variables read utf8mb4 again, yet non-ASCII
 * text came back garbled; and mysql2 follows the server's session-state reports of
 * `character_set_client` on its side. Such a connection is closed, not reused.
 */
const CHANGES_CHARSET = /\b(?:names|charset|character\s+set|character_set_\w+|collation_\w+)\b/i;
/** A statement that switches the connection's database, which COM_RESET_CONNECTION keeps. */
const SWITCHES_DATABASE = /^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*use\b/i;

const ER_NO_SUCH_THREAD = 1094;
const BINARY_CHARSET = 63;
const FLAG_UNSIGNED = 32;
const FLAG_ENUM = 256;
const FLAG_SET = 2048;

const T = mysql.Types;
const NUMERIC_TYPES: ReadonlySet<number> = new Set([
  T.DECIMAL,
  T.NEWDECIMAL,
  T.TINY,
  T.SHORT,
  T.LONG,
  T.INT24,
  T.LONGLONG,
  T.FLOAT,
  T.DOUBLE,
  T.YEAR,
  T.BIT,
]);
const INTEGER_TYPES: ReadonlySet<number> = new Set([T.TINY, T.SHORT, T.LONG, T.INT24, T.LONGLONG]);

/** A connection kept between runs, with the identity asked once. */
interface PooledConnection {
  readonly connection: mysql.Connection;
  readonly database: string;
  /** The client character set mysql2 negotiated when the connection opened. */
  readonly charsetNumber: number | undefined;
  /** The server knows COM_RESET_CONNECTION: without it the connection is never reused. */
  readonly resettable: boolean;
  identity: { threadId: number; serverStartedAt: number } | undefined;
  idleTimer?: NodeJS.Timeout;
  onIdleLost?: () => void;
}

/** One run's session on a pooled connection. */
interface MysqlSession {
  readonly pooled: PooledConnection;
  readonly releaseSlot: () => void;
  lost: boolean;
  onLost: () => void;
  /** Rejects when the stop abandoned the connection: the statement fails locally (see the header). */
  readonly abandoned: Promise<never>;
  readonly abandon: (error: Error) => void;
  /** Server status of the last OK packet of the run, if any. */
  lastStatus: number | undefined;
}

const ignore = () => undefined;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class MysqlEngine implements Engine {
  readonly capabilities = { recoversFromAnyNode: true } as const;
  private readonly slots: SessionSlots;
  private controlPool: mysql.Pool | undefined;
  private readonly open = new Set<mysql.Connection>();
  /** Reset connections waiting for the next run, per database (last in, first out). */
  private readonly idle = new Map<string, PooledConnection[]>();
  /** The connection `KILL QUERY` goes through (the control pool is its fallback). */
  private readonly killer = new WarmConnection<mysql.Connection>(
    {
      open: () => this.connect(''),
      onLost: (connection, lost) => {
        connection.on('error', lost);
        connection.on('end', lost);
      },
      close: (connection) => connection.destroy(),
    },
    IDLE_TIMEOUT_MS,
  );
  /** Connections being reset after their run returned; `close` waits for them. */
  private readonly resets = new Set<Promise<void>>();

  constructor(
    readonly name: string,
    private readonly target: MysqlTarget,
    options: MysqlEngineOptions = {},
  ) {
    this.slots = new SessionSlots(options.maxConnections ?? DEFAULT_MAX_CONNECTIONS);
  }

  readonly connectionProbe = { scriptType: 'RDSSQL', content: 'SELECT 1' } as const;

  supports(type: ScriptType): boolean {
    return type === 'RDSSQL';
  }

  run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    return runSqlSession(this.driver, request, context);
  }

  /** What the shared SQL loop needs from MySQL/MariaDB (sql-session-loop.ts). */
  private readonly driver: SqlSessionDriver<MysqlSession> = {
    dialect: 'mysql',
    open: (request, signal) => this.openSession(request.database || this.target.database, signal),
    openFailure: (error, request) => this.connectFailure(request.database || this.target.database, error),
    identify: async (session) => {
      // Asked once per pooled connection: its thread id and the server's start do not change.
      session.pooled.identity ??= await threadIdentity(session.pooled.connection);
      return { engine: this.name, ...session.pooled.identity };
    },
    setupFailure: (error) => `The MySQL session could not be set up: ${describeMysqlError(error)}`,
    stopControl: (session, handle, context) => {
      this.killer.warm();
      const threadId = Number(handle['threadId']);
      return new StopLadder(context.signal, context.stopGraceMs, {
        polite: () => this.killQuery(threadId),
        forceful: () => this.kill(threadId),
        abandon: () => {
          session.pooled.connection.destroy();
          session.abandon(
            new Error('The connection was abandoned after the stop could not end the statement'),
          );
        },
      });
    },
    execute: (session, sql, _index, builder) =>
      Promise.race([execute(session, sql, builder), session.abandoned]),
    statementFailure: (error, session) => {
      const { sqlState } = (error ?? {}) as Partial<QueryError>;
      return {
        detail: describeMysqlError(error),
        ...(typeof sqlState === 'string' && sqlState ? { sqlState } : {}),
        ...(session.lost ? { reason: 'session_lost' as const } : {}),
      };
    },
    release: (session, end) => this.endSession(session, end),
  };

  /**
   * A connection for the run within the engine's slots: an idle, reset one of the same database if
   * there is one, else a new one. `ABORTED` when the run was stopped first.
   */
  private async openSession(database: string, signal: AbortSignal): Promise<MysqlSession | typeof ABORTED> {
    const releaseSlot = await this.slots.acquire(signal);
    if (!releaseSlot) return ABORTED;
    let pooled = this.takeIdle(database);
    if (!pooled) {
      try {
        const connecting = this.connect(database);
        const opened = await raceAbort(connecting, signal, (late) => late.destroy());
        if (opened === ABORTED) {
          // The slot frees once the late session is closed: never more sessions than slots.
          void connecting.then(ignore, ignore).finally(releaseSlot);
          return ABORTED;
        }
        pooled = {
          connection: opened,
          database,
          charsetNumber: charsetNumberOf(opened),
          resettable: supportsReset(opened),
          identity: undefined,
        };
      } catch (error) {
        releaseSlot();
        throw error;
      }
    }
    this.open.add(pooled.connection);
    let abandon!: (error: Error) => void;
    const abandoned = new Promise<never>((_, reject) => (abandon = reject));
    abandoned.catch(ignore);
    const session: MysqlSession = {
      pooled,
      releaseSlot,
      lost: false,
      onLost: () => undefined,
      abandoned,
      abandon,
      lastStatus: undefined,
    };
    session.onLost = () => (session.lost = true);
    pooled.connection.on('error', session.onLost);
    pooled.connection.on('end', session.onLost);
    return session;
  }

  /**
   * Leaves no trace of the run on the server. A lost or killed connection is destroyed at once. A
   * stopped run's connection is rolled back (KILL QUERY ends the statement, not the transaction, so
   * its row locks are gone when the run returns) and closed, never reused. Otherwise the connection
   * is reset (COM_RESET_CONNECTION: transaction rolled back, session variables, temporary tables,
   * user locks and prepared statements gone) and goes back to the idle list; the run waits for that
   * only when the server said a transaction may still be open, and the slot frees only once the
   * reset is done, so no run gets another run's state. A run that switched databases with `USE`
   * (which a reset keeps) is closed instead.
   */
  private async endSession(session: MysqlSession, end: SqlSessionEnd): Promise<void> {
    const { connection } = session.pooled;
    const finish = (keep: boolean) => {
      connection.removeListener('error', session.onLost);
      connection.removeListener('end', session.onLost);
      this.open.delete(connection);
      if (keep && !session.lost) this.putIdle(session.pooled);
      else connection.destroy();
      session.releaseSlot();
    };
    if (session.lost || end.forced) {
      finish(false);
      return;
    }
    if (end.stopped) {
      const clean = await bounded(simpleQuery(connection, 'ROLLBACK'));
      if (clean) connection.end(ignore);
      finish(false);
      return;
    }
    const reusable =
      !end.statements.some((sql) => SWITCHES_DATABASE.test(sql) || CHANGES_CHARSET.test(sql)) &&
      charsetNumberOf(connection) === session.pooled.charsetNumber &&
      session.pooled.resettable;
    const status = session.lastStatus;
    const mayHoldTransaction =
      status !== undefined && (status & SERVER_STATUS_IN_TRANS || !(status & SERVER_STATUS_AUTOCOMMIT));
    const reset = (mayHoldTransaction ? Promise.resolve() : afterOutcome())
      .then(() =>
        bounded(
          new Promise<void>((resolve, reject) =>
            connection.reset((error) => (error ? reject(error) : resolve())),
          ),
        ),
      )
      .then((clean) => finish(clean && reusable));
    if (mayHoldTransaction) {
      await reset;
      return;
    }
    this.resets.add(reset);
    void reset.finally(() => this.resets.delete(reset));
  }

  private takeIdle(database: string): PooledConnection | undefined {
    const list = this.idle.get(database);
    const pooled = list?.pop();
    if (pooled) {
      clearTimeout(pooled.idleTimer);
      pooled.connection.removeListener('end', pooled.onIdleLost ?? ignore);
      pooled.connection.removeListener('error', pooled.onIdleLost ?? ignore);
    }
    return pooled;
  }

  /** An idle connection closes after `IDLE_TIMEOUT_MS`, or leaves the list when the server drops it. */
  private putIdle(pooled: PooledConnection): void {
    let list = this.idle.get(pooled.database);
    if (!list) {
      list = [];
      this.idle.set(pooled.database, list);
    }
    const remove = () => {
      const index = list.indexOf(pooled);
      if (index >= 0) list.splice(index, 1);
      clearTimeout(pooled.idleTimer);
      pooled.connection.destroy();
    };
    pooled.onIdleLost = remove;
    pooled.connection.once('end', remove);
    pooled.connection.once('error', remove);
    pooled.idleTimer = setTimeout(remove, IDLE_TIMEOUT_MS);
    pooled.idleTimer.unref();
    list.push(pooled);
  }

  /** Kills the thread that ran a run of a previous server process, if it still exists. */
  async recover(handle: RunHandle): Promise<void> {
    const threadId = handle['threadId'];
    const startedAt = handle['serverStartedAt'];
    if (typeof threadId !== 'number' || !Number.isSafeInteger(threadId)) return;
    // Thread ids restart at 1 when the server restarts: never kill a newer server's thread.
    if (typeof startedAt !== 'number') return;
    const now = await serverStartedAt((sql) => this.controlQuery(sql));
    if (Math.abs(now - startedAt) > SERVER_START_TOLERANCE_S) return;
    await this.killIgnoringGone(`KILL ${threadId}`);
  }

  async close(): Promise<void> {
    this.killer.close();
    for (const connection of this.open) connection.destroy();
    this.open.clear();
    await Promise.all(this.resets);
    for (const list of this.idle.values()) {
      for (const pooled of list) {
        clearTimeout(pooled.idleTimer);
        pooled.connection.destroy();
      }
    }
    this.idle.clear();
    const pool = this.controlPool;
    this.controlPool = undefined;
    if (pool) await new Promise<void>((resolve) => pool.end(() => resolve()));
  }

  private connect(database: string): Promise<mysql.Connection> {
    return new Promise((resolve, reject) => {
      const connection = mysql.createConnection(this.options(database));
      // Fatal errors with no callback waiting are emitted here; unheard they crash the process.
      connection.on('error', ignore);
      connection.connect((error) => {
        if (error) {
          connection.destroy();
          reject(error);
        } else resolve(connection);
      });
    });
  }

  private options(database: string): mysql.ConnectionOptions {
    return {
      host: this.target.host,
      port: this.target.port,
      user: this.target.user,
      password: this.target.password,
      database: database || undefined,
      connectTimeout: this.target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      charset: 'utf8mb4',
      // Exact values arrive as text and become numbers in one place (StatementResultBuilder);
      // dates stay the server's text (no JS Date, no time zone shift); JSON stays the server's text.
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
      dateStrings: true,
      jsonStrings: true,
      multipleStatements: false,
      // The engine never prepares statements (query, not execute), and mysql2 empties its prepared
      // statement cache (16,000 slots by default) on every COM_RESET_CONNECTION: ~25 µs of CPU a
      // run in a profile of SELECT 1 runs.
      maxPreparedStatements: 1,
    };
  }

  /** KILL and the process list need no database: the control pool does not depend on one existing. */
  private control(): mysql.Pool {
    if (!this.controlPool) {
      const pool = mysql.createPool({
        ...this.options(''),
        connectionLimit: 2,
        maxIdle: 1,
      });
      pool.on('connection', (connection) => connection.on('error', ignore));
      this.controlPool = pool;
    }
    return this.controlPool;
  }

  private controlQuery(sql: string, values: unknown[] = []): Promise<unknown[][]> {
    return controlQueryOn(this.control(), sql, values);
  }

  /**
   * The polite step: on the warm connection when it is open (written at once), else, or when that
   * connection turns out to be broken, through the control pool (which may first have to connect).
   */
  private killQuery(threadId: number): Promise<void> {
    const sql = `KILL QUERY ${threadId}`;
    const viaPool = () => this.controlQuery(sql).then(ignore);
    const ready = this.killer.ready();
    if (!ready) return viaPool();
    // A broken warm connection is worth a second try; a thread that is already gone is not.
    return controlQueryOn(ready, sql).then(ignore, (error: unknown) =>
      (error as QueryError).errno === ER_NO_SUCH_THREAD ? undefined : viaPool(),
    );
  }

  private async killIgnoringGone(sql: string): Promise<void> {
    try {
      await this.controlQuery(sql);
    } catch (error) {
      if ((error as QueryError).errno !== ER_NO_SUCH_THREAD) throw error;
    }
  }

  private async kill(threadId: number): Promise<void> {
    await this.killIgnoringGone(`KILL ${threadId}`);
    // Monotonic: a step of the wall clock neither cuts the wait short nor stretches it.
    const deadline = performance.now() + KILL_WAIT_MS;
    while (performance.now() < deadline) {
      const rows = await this.controlQuery('SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?', [
        threadId,
      ]);
      if (rows.length === 0) return;
      await sleep(20);
    }
  }

  private connectFailure(database: string, error: unknown): string {
    const where = database ? `, database "${database}"` : '';
    return `Could not connect to MySQL at ${this.target.host}:${this.target.port}${where}: ${describeMysqlError(error)}`;
  }
}

/** The thread id, and the server's start time as a token that tells this server from a restarted one. */
async function threadIdentity(
  connection: mysql.Connection,
): Promise<{ threadId: number; serverStartedAt: number }> {
  const query = (sql: string) => simpleQuery(connection, sql);
  // The handshake already told the thread id (CONNECTION_ID()); ask only when it did not.
  let threadId = connection.threadId;
  if (typeof threadId !== 'number' || !Number.isSafeInteger(threadId) || threadId <= 0) {
    const [row] = await query('SELECT CONNECTION_ID()');
    threadId = Number(row?.[0]);
    if (!Number.isSafeInteger(threadId)) throw new Error(`unexpected connection id ${String(row?.[0])}`);
  }
  return { threadId, serverStartedAt: await serverStartedAt(query) };
}

/** Seconds since the epoch at which the server started (SHOW works on MySQL and MariaDB alike). */
async function serverStartedAt(query: (sql: string) => Promise<unknown[][]>): Promise<number> {
  const [now] = await query('SELECT UNIX_TIMESTAMP()');
  const [uptime] = await query("SHOW GLOBAL STATUS LIKE 'Uptime'");
  return Math.round(Number(now?.[0]) - Number(uptime?.[1]));
}

/** A KILL or process-list query, bounded by `CONTROL_QUERY_TIMEOUT_MS`. */
function controlQueryOn(
  target: mysql.Pool | mysql.Connection,
  sql: string,
  values: unknown[] = [],
): Promise<unknown[][]> {
  return new Promise((resolve, reject) => {
    target.query<mysql.RowDataPacket[]>(
      { sql, values, rowsAsArray: true, timeout: CONTROL_QUERY_TIMEOUT_MS },
      (error, rows) =>
        error ? reject(error) : resolve(Array.isArray(rows) ? (rows as unknown as unknown[][]) : []),
    );
  });
}

function simpleQuery(connection: mysql.Connection, sql: string): Promise<unknown[][]> {
  return new Promise((resolve, reject) => {
    connection.query<mysql.RowDataPacket[]>({ sql, rowsAsArray: true }, (error, rows) =>
      error ? reject(error) : resolve(Array.isArray(rows) ? (rows as unknown as unknown[][]) : []),
    );
  });
}

/**
 * Runs one statement, keeping the first `maxRows` rows of its first result set (a CALL can return
 * several; the rest are read and dropped) within the run's byte budget. Rows are streamed ('result'
 * events, not accumulated) and dropped past either cap: memory stays bounded, but a huge SELECT
 * takes as long as reading all of it.
 */
function execute(
  session: MysqlSession,
  sql: string,
  builder: StatementResultBuilder,
): Promise<StatementResult> {
  const { connection } = session.pooled;
  return new Promise((resolve, reject) => {
    let resultIndex = -1;
    let shownIndex: number | undefined;
    let bits: boolean[] = [];
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      connection.removeListener('error', onConnectionError);
      connection.removeListener('end', onConnectionEnd);
      if (error) reject(error instanceof Error ? error : new Error(describeDriverError(error)));
      else resolve(builder.build());
    };
    const onConnectionError = (error: unknown) => settle(error);
    const onConnectionEnd = () => settle(new Error('The server closed the connection'));
    connection.on('error', onConnectionError);
    connection.on('end', onConnectionEnd);

    const query = connection.query({ sql, rowsAsArray: true });
    query.on('fields', (fields: FieldPacket[] | undefined) => {
      resultIndex += 1;
      if (fields && shownIndex === undefined) {
        shownIndex = resultIndex;
        builder.setColumns(fields.map(columnOf));
        bits = fields.map((f) => f.columnType === T.BIT);
      }
    });
    query.on('result', (row: unknown, index: number | undefined) => {
      // An OK packet (no result set) carries the server status: in a transaction, autocommit.
      const status = (row as { serverStatus?: unknown } | null)?.serverStatus;
      if (!Array.isArray(row) && typeof status === 'number') session.lastStatus = status;
      if (!Array.isArray(row) || index !== shownIndex) return;
      builder.addRow(
        row.map((value: unknown, i) =>
          Buffer.isBuffer(value) ? bufferValue(value, bits[i] ?? false) : value,
        ),
      );
    });
    query.on('error', (error: unknown) => settle(error));
    query.on('end', () => settle());
  });
}

/** BIT columns are numbers; other binary values (BLOB, BINARY, VARBINARY) are shown as 0x… hex. */
function bufferValue(value: Buffer, bit: boolean): unknown {
  if (bit) return value.reduce((n, byte) => n * 256 + byte, 0);
  return `0x${value.toString('hex')}`;
}

function columnOf(field: FieldPacket): ResultColumn {
  const type = field.columnType ?? field.type ?? -1;
  return { name: field.name, type: typeName(field, type), numeric: NUMERIC_TYPES.has(type) };
}

/** The column's SQL type name from its protocol metadata (MariaDB adds names for UUID, INET4…). */
function typeName(field: FieldPacket, type: number): string {
  if (field.extendedTypeName) return field.extendedTypeName.toUpperCase();
  if (field.extendedFormat === 'json') return 'JSON';
  const flags = typeof field.flags === 'number' ? field.flags : 0;
  const binary = field.characterSet === BINARY_CHARSET;
  const unsigned = INTEGER_TYPES.has(type) && flags & FLAG_UNSIGNED ? ' UNSIGNED' : '';
  if (flags & FLAG_ENUM) return 'ENUM';
  if (flags & FLAG_SET) return 'SET';
  switch (type) {
    case T.DECIMAL:
    case T.NEWDECIMAL:
      return 'DECIMAL';
    case T.TINY:
      return `TINYINT${unsigned}`;
    case T.SHORT:
      return `SMALLINT${unsigned}`;
    case T.INT24:
      return `MEDIUMINT${unsigned}`;
    case T.LONG:
      return `INT${unsigned}`;
    case T.LONGLONG:
      return `BIGINT${unsigned}`;
    case T.FLOAT:
      return 'FLOAT';
    case T.DOUBLE:
      return 'DOUBLE';
    case T.NULL:
      return 'NULL';
    case T.TIMESTAMP:
      return 'TIMESTAMP';
    case T.DATE:
    case T.NEWDATE:
      return 'DATE';
    case T.TIME:
      return 'TIME';
    case T.DATETIME:
      return 'DATETIME';
    case T.YEAR:
      return 'YEAR';
    case T.BIT:
      return 'BIT';
    case T.JSON:
      return 'JSON';
    case T.ENUM:
      return 'ENUM';
    case T.SET:
      return 'SET';
    case T.VARCHAR:
    case T.VAR_STRING:
      return binary ? 'VARBINARY' : 'VARCHAR';
    case T.STRING:
      return binary ? 'BINARY' : 'CHAR';
    case T.TINY_BLOB:
      return binary ? 'TINYBLOB' : 'TINYTEXT';
    case T.MEDIUM_BLOB:
      return binary ? 'MEDIUMBLOB' : 'MEDIUMTEXT';
    case T.LONG_BLOB:
      return binary ? 'LONGBLOB' : 'LONGTEXT';
    case T.BLOB:
      return binary ? 'BLOB' : 'TEXT';
    case T.GEOMETRY:
      return 'GEOMETRY';
    default:
      return `TYPE ${type}`;
  }
}

/** The client character set mysql2 uses on this connection (it follows the server's state reports). */
function charsetNumberOf(connection: mysql.Connection): number | undefined {
  return (connection.config as { charsetNumber?: number }).charsetNumber;
}

/**
 * COM_RESET_CONNECTION exists since MySQL 5.7.3 and MariaDB 10.2.4. mysql2 takes any answer to it
 * as success, so on an older server a "reset" connection would keep the run's state: such servers
 * get a new connection per run. MariaDB announces itself as `5.5.5-<version>-MariaDB`.
 */
function supportsReset(connection: mysql.Connection): boolean {
  const handshake = (connection as unknown as { _handshakePacket?: { serverVersion?: unknown } })
    ._handshakePacket;
  const version = typeof handshake?.serverVersion === 'string' ? handshake.serverVersion : '';
  const match = /^(?:5\.5\.5-)?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match) return false;
  const [major, minor, patch] = match.slice(1).map(Number) as [number, number, number];
  const atLeast = (a: number, b: number, c: number) =>
    major !== a ? major > a : minor !== b ? minor > b : patch >= c;
  return /mariadb/i.test(version) ? atLeast(10, 2, 4) : atLeast(5, 7, 3);
}

/** Whether `query` ended well within `CLEANUP_TIMEOUT_MS`; a connection that fails or hangs here is sick. */
async function bounded(query: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>(
    (resolve) => (timer = setTimeout(() => resolve(false), CLEANUP_TIMEOUT_MS)),
  );
  const clean = await Promise.race([
    query.then(
      () => true,
      () => false,
    ),
    timedOut,
  ]);
  clearTimeout(timer);
  return clean;
}

/** The server's message, with its error number and SQLSTATE when it has them. */
function describeMysqlError(error: unknown): string {
  const message = describeDriverError(error);
  const { errno, sqlState } = (error ?? {}) as Partial<QueryError>;
  if (typeof errno === 'number' && sqlState) return `${message} (errno ${errno}, SQLSTATE ${sqlState})`;
  return message;
}
