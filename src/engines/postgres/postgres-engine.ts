/**
 * The PostgreSQL engine: runs DWSSQL and RDSSQL scripts on a PostgreSQL server (DWS speaks the same
 * protocol). One bounded pg.Pool per database, created on first use; all statements of a run go
 * through one session, in order, one result per statement (the shared loop, sql-session-loop.ts).
 * A run costs one round trip per statement: the session's identity (backend pid and start) is
 * asked once per pooled session, the connection check is a startup option, and the DISCARD ALL
 * that cleans the session runs after the outcome is reported, before the session is handed out again.
 * With the connection check the backend ends a statement whose client vanished (this process
 * crashed), so the run's handle is stored beside its first statement, not before it.
 *
 * Stop, from control sessions of its own so a full run pool cannot block it:
 * `pg_cancel_backend(pid)` at once, on a session kept open while runs come (warm-connection.ts), so
 * the cancel leaves in the abort event itself; `pg_terminate_backend(pid)` after `stopGraceMs` from
 * a small control pool (then wait until the backend has exited), and finally drop our socket. After
 * a cancel the session's transaction is rolled back before the run returns, so a stopped
 * `BEGIN; LOCK …; SELECT pg_sleep(…)` holds no lock; a stopped session is never reused.
 *
 * Traps of pg 8 handled here: every pool and every client has an 'error' listener — a
 * client without one crashes the process when its backend is terminated; pg-pool's connect timeout
 * also bounds the wait for a free client, so runs wait for a slot in `SessionSlots` instead.
 */
import pg from 'pg';
import type { RunHandle, StatementResult } from '../../domain/instance.js';
import type { ScriptType } from '../../domain/script.js';
import { describeDriverError } from '../driver-error.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import { SessionSlots } from '../session-slots.js';
import type { StatementResultBuilder } from '../sql-result.js';
import { type ResultColumn } from '../sql-result.js';
import {
  afterOutcome,
  runSqlSession,
  type SqlSessionDriver,
  type SqlSessionEnd,
} from '../sql-session-loop.js';
import { ABORTED, raceAbort, StopLadder } from '../stop-ladder.js';
import { WarmConnection } from '../warm-connection.js';

/** Where and as whom the engine connects. */
export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Used when a script names no database, and for the control connection (cancel/terminate). */
  database: string;
  ssl: boolean;
  /** Bound on opening a session (TCP, TLS, authentication). Default 10 s. */
  connectTimeoutMs?: number;
}

export interface PostgresEngineOptions {
  /** Sessions held open per database at most; further runs wait for one. Default 10. */
  maxPoolSize?: number;
  /**
   * The backend's TCP keepalive on run sessions (LOST_HOST_KEEPALIVE): how soon a statement whose
   * client host vanished ends on the server. Tests shorten it.
   */
  lostHostKeepalive?: TcpKeepalive;
}

/** The server's side of TCP keepalive, as PostgreSQL's `tcp_keepalives_*` settings name it. */
export interface TcpKeepalive {
  idleSeconds: number;
  intervalSeconds: number;
  count: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_POOL_SIZE = 10;
/** End-of-run ROLLBACK/DISCARD ALL longer than this means a sick session: destroy it instead. */
const CLEANUP_TIMEOUT_MS = 5_000;
/** Bound on one cancel/terminate/recover call once connected; a stop must not hang on it. */
const CONTROL_QUERY_TIMEOUT_MS = 10_000;
const CONTROL_QUERY_CONFIG: pg.ClientConfig = { query_timeout: CONTROL_QUERY_TIMEOUT_MS };
/**
 * How long the forceful step waits for a terminated backend to exit (measured: 22–30 ms), so its
 * locks are gone when the run returns. A backend stuck longer is left to the server.
 */
const TERMINATE_WAIT_MS = 5_000;
/** Idle sessions are closed after this; a reused session saves a connect, an idle one costs a backend. */
const IDLE_TIMEOUT_MS = 30_000;
/**
 * `client_connection_check_interval` (PostgreSQL 14+, Linux): a running query checks this often
 * whether its client is still there. Without it a backend whose client vanished — this server
 * crashed, or a stop had to drop the socket because the control connection failed — runs its
 * statement to the end (measured: `pg_sleep` stays 'active' after the socket closed).
 *
 * The check only sees a socket the client's kernel closed. When the client's host is gone (power
 * loss, a network partition) no packet ever comes, and the backend's socket looks alive until TCP
 * keepalive gives up on it — with Linux's defaults, which the server keeps unless told otherwise,
 * after 2 h 11 min (idle 7,200 s, then 9 probes 75 s apart). So run sessions also set the backend's
 * keepalive: with LOST_HOST_KEEPALIVE a vanished host is noticed within 25 s, and the next check
 * ends the statement (measured with the session's packets dropped by iptables: gone after 4.7 s
 * with 2 s/1 s/2 probes; still 'active' after 15 s without). That also covers the moment before
 * the run's handle is stored (`endsWorkOfLostClient`), when the reaping node could not end the
 * backend itself. The settings are the user's to set (no privilege), and DISCARD ALL keeps startup
 * options, like the check.
 */
const CONNECTION_CHECK_INTERVAL = '1s';
/** Default of PostgresEngineOptions.lostHostKeepalive: idle 10 s + 3 probes 5 s apart = 25 s. */
const LOST_HOST_KEEPALIVE: TcpKeepalive = { idleSeconds: 10, intervalSeconds: 5, count: 3 };

/** The startup options of run sessions that make the backend end a vanished client's statement. */
function lostClientOptions(keepalive: TcpKeepalive): pg.PoolConfig {
  const settings = [
    `client_connection_check_interval=${CONNECTION_CHECK_INTERVAL}`,
    `tcp_keepalives_idle=${keepalive.idleSeconds}`,
    `tcp_keepalives_interval=${keepalive.intervalSeconds}`,
    `tcp_keepalives_count=${keepalive.count}`,
  ];
  return { options: settings.map((setting) => `-c ${setting}`).join(' ') };
}

/** Built-in type OIDs (stable across servers, pg_type.h) → names shown in `schema`. */
// prettier-ignore
const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [16, 'bool'], [17, 'bytea'], [18, 'char'], [19, 'name'], [20, 'int8'], [21, 'int2'], [23, 'int4'],
  [25, 'text'], [26, 'oid'], [114, 'json'], [142, 'xml'], [700, 'float4'], [701, 'float8'],
  [705, 'unknown'], [790, 'money'], [869, 'inet'], [650, 'cidr'], [829, 'macaddr'], [1042, 'bpchar'],
  [1043, 'varchar'], [1082, 'date'], [1083, 'time'], [1114, 'timestamp'], [1184, 'timestamptz'],
  [1186, 'interval'], [1266, 'timetz'], [1560, 'bit'], [1562, 'varbit'], [1700, 'numeric'],
  [2249, 'record'], [2278, 'void'], [2950, 'uuid'], [3802, 'jsonb'], [1000, '_bool'], [1005, '_int2'],
  [1007, '_int4'], [1016, '_int8'], [1009, '_text'], [1015, '_varchar'], [1021, '_float4'],
  [1022, '_float8'], [1231, '_numeric'], [1182, '_date'], [1115, '_timestamp'], [1185, '_timestamptz'],
  [2951, '_uuid'], [199, '_json'], [3807, '_jsonb'],
]);

/** int2, int4, int8, oid, float4, float8, numeric: their values become JSON numbers. */
const NUMERIC_OIDS: ReadonlySet<number> = new Set([21, 23, 20, 26, 700, 701, 1700]);
const BOOL_OID = 16;

const asText = (value: string) => value;
const asBool = (value: string) => value === 't';
/**
 * Per-pool type parsers: every value arrives as PostgreSQL's own text except booleans. int8 and
 * numeric thus arrive exactly and become numbers in one place (StatementResultBuilder); dates and
 * timestamps stay in the server's ISO DateStyle text (no JS Date, no time zone shift — the same form
 * the DuckDB engine returns); json stays the text the server sent.
 */
const TEXT_TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number) =>
    oid === BOOL_OID ? asBool : asText) as pg.CustomTypesConfig['getTypeParser'],
};

interface DatabaseSessions {
  pool: pg.Pool;
  readonly slots: SessionSlots;
  /** Names of non-built-in types seen in results of this database (enums, domains, arrays…). */
  readonly typeNames: Map<number, string>;
  /** False once the server rejected `client_connection_check_interval` (before PostgreSQL 14, DWS). */
  connectionCheck: boolean;
  /** Replaces the pool by one whose sessions do not ask for the connection check. */
  withoutConnectionCheck(): void;
}

/** One run's session: a pooled client, the slot it holds, and whether its connection was lost. */
interface PostgresSession {
  readonly client: pg.PoolClient;
  readonly sessions: DatabaseSessions;
  readonly releaseSlot: () => void;
  lost: boolean;
  onLost: () => void;
}

/** Backend identities of pooled clients: asked once per session, not once per run. */
const identities = new WeakMap<pg.PoolClient, { backendPid: number; backendStart: string | null }>();

const ignore = () => undefined;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class PostgresEngine implements Engine {
  readonly capabilities = { recoversFromAnyNode: true } as const;
  private readonly databases = new Map<string, DatabaseSessions>();
  private controlPool: pg.Pool | undefined;
  /** The session the polite cancel goes through (the pool is its fallback). */
  private readonly canceller = new WarmConnection<pg.Client>(
    {
      open: async () => {
        const client = new pg.Client(this.clientConfig(this.target.database, CONTROL_QUERY_CONFIG));
        // A failed or terminated session reports here; unheard it would crash the process.
        client.on('error', ignore);
        await client.connect();
        return client;
      },
      onLost: (client, lost) => {
        client.on('error', lost);
        client.on('end', lost);
      },
      close: (client) => void client.end().catch(ignore),
    },
    IDLE_TIMEOUT_MS,
  );
  /** A cancel is running on the warm session (see cancel). */
  private cancelInFlight = false;
  private readonly maxPoolSize: number;
  private readonly lostClientOptions: pg.PoolConfig;
  /** Sessions being reset after their run returned; `close` waits for them. */
  private readonly resets = new Set<Promise<void>>();

  constructor(
    readonly name: string,
    private readonly target: PostgresTarget,
    options: PostgresEngineOptions = {},
  ) {
    this.maxPoolSize = options.maxPoolSize ?? DEFAULT_POOL_SIZE;
    this.lostClientOptions = lostClientOptions(options.lostHostKeepalive ?? LOST_HOST_KEEPALIVE);
  }

  readonly connectionProbe = { scriptType: 'DWSSQL', content: 'SELECT 1' } as const;

  supports(type: ScriptType): boolean {
    return type === 'DWSSQL' || type === 'RDSSQL';
  }

  run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    return runSqlSession(this.driver, request, context);
  }

  /** What the shared SQL loop needs from PostgreSQL (sql-session-loop.ts). */
  private readonly driver: SqlSessionDriver<PostgresSession> = {
    dialect: 'postgres',
    open: (request, signal) => this.openSession(request.database || this.target.database, signal),
    openFailure: (error, request) => this.connectFailure(request.database || this.target.database, error),
    identify: async (session) => {
      // Cached per pooled session: a backend's pid and start time do not change while it lives.
      let identity = identities.get(session.client);
      if (!identity) {
        identity = await backendIdentity(session.client);
        identities.set(session.client, identity);
      }
      return { engine: this.name, ...identity };
    },
    setupFailure: (error) => `The PostgreSQL session could not be set up: ${describePgError(error)}`,
    // Sessions opened with the connection check and keepalive: the backend ends the statement of a
    // client that vanished on its own, within 1 s when this process crashed and within
    // LOST_HOST_KEEPALIVE when its host is gone. Read after the session opened: a pool replaced
    // meanwhile (the server refused the options) says false.
    endsWorkOfLostClient: (session) => session.sessions.connectionCheck,
    stopControl: (session, handle, context) => {
      this.canceller.warm();
      const pid = Number(handle['backendPid']);
      return new StopLadder(context.signal, context.stopGraceMs, {
        polite: () => this.cancel(pid),
        forceful: () => this.terminate(pid),
        // With a query active, end() destroys the socket instead of waiting for the server.
        abandon: () => void session.client.end().catch(ignore),
      });
    },
    execute: (session, sql, _index, builder) =>
      this.execute(session.client, sql, builder, session.sessions.typeNames),
    statementFailure: (error, session) => ({
      detail: describePgError(error),
      ...(error instanceof pg.DatabaseError && error.code ? { sqlState: error.code } : {}),
      ...(session.lost ? { reason: 'session_lost' as const } : {}),
    }),
    release: (session, end) => this.endSession(session, end),
  };

  /** A session from the database's pool, within its slots; `ABORTED` if the run was stopped first. */
  private async openSession(
    database: string,
    signal: AbortSignal,
  ): Promise<PostgresSession | typeof ABORTED> {
    const sessions = this.sessions(database);
    const releaseSlot = await sessions.slots.acquire(signal);
    if (!releaseSlot) return ABORTED;
    let client: pg.PoolClient;
    try {
      const connecting = connectClient(sessions);
      const opened = await raceAbort(connecting, signal, (late) => late.release(true));
      if (opened === ABORTED) {
        // The slot frees once the late session is closed: never more sessions than slots.
        void connecting.then(ignore, ignore).finally(releaseSlot);
        return ABORTED;
      }
      client = opened;
    } catch (error) {
      releaseSlot();
      throw error;
    }
    const session: PostgresSession = { client, sessions, releaseSlot, lost: false, onLost: () => undefined };
    session.onLost = () => (session.lost = true);
    client.on('error', session.onLost);
    client.on('end', session.onLost);
    return session;
  }

  /**
   * Leaves no trace of the run on the server. What the run waits for: an open or failed transaction
   * is rolled back (so a stopped statement inside `BEGIN` releases its locks before the run
   * returns). What it does not wait for: DISCARD ALL (settings, temp tables, prepared statements,
   * advisory locks, LISTEN) before the session goes back to the pool — that runs after the outcome
   * is reported, and the session's slot frees only once it is clean, so no run ever gets a session
   * with another run's state. A lost, terminated or stopped session is destroyed instead.
   */
  private async endSession(session: PostgresSession, end: SqlSessionEnd): Promise<void> {
    const { client } = session;
    const finish = (destroy: boolean) => {
      client.removeListener('error', session.onLost);
      client.removeListener('end', session.onLost);
      client.release(destroy);
      session.releaseSlot();
    };
    if (session.lost || end.forced) {
      finish(true);
      return;
    }
    if (client.getTransactionStatus() !== 'I') {
      if (!(await bounded(client.query('ROLLBACK')))) {
        finish(true);
        return;
      }
    }
    if (end.stopped) {
      finish(true);
      return;
    }
    const reset = afterOutcome()
      .then(() => bounded(client.query('DISCARD ALL')))
      .then((clean) => finish(!clean || session.lost));
    this.resets.add(reset);
    void reset.finally(() => this.resets.delete(reset));
  }

  /** Ends the backend that ran a run of a previous server process, if it still exists. */
  async recover(handle: RunHandle): Promise<void> {
    const pid = handle['backendPid'];
    const start = handle['backendStart'];
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid)) return;
    // The start time guards against a pid the OS has since given to another backend.
    await this.controlQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid = $1 AND ($2::text IS NULL OR extract(epoch FROM backend_start)::text = $2)`,
      [pid, typeof start === 'string' ? start : null],
    );
  }

  async close(): Promise<void> {
    this.canceller.close();
    await Promise.all(this.resets);
    const pools = [...this.databases.values()].map((s) => s.pool);
    if (this.controlPool) pools.push(this.controlPool);
    this.databases.clear();
    this.controlPool = undefined;
    await Promise.all(pools.map((pool) => pool.end().catch(ignore)));
  }

  private sessions(database: string): DatabaseSessions {
    let sessions = this.databases.get(database);
    if (!sessions) {
      const newPool = (connectionCheck: boolean) =>
        this.newPool(database, this.maxPoolSize, connectionCheck ? this.lostClientOptions : {});
      sessions = {
        pool: newPool(true),
        slots: new SessionSlots(this.maxPoolSize),
        typeNames: new Map(),
        connectionCheck: true,
        withoutConnectionCheck: () => {
          const old = sessions!.pool;
          sessions!.pool = newPool(false);
          sessions!.connectionCheck = false;
          void old.end().catch(ignore);
        },
      };
      this.databases.set(database, sessions);
    }
    return sessions;
  }

  private clientConfig(database: string, extra: pg.ClientConfig): pg.ClientConfig {
    return {
      host: this.target.host,
      port: this.target.port,
      user: this.target.user,
      password: this.target.password,
      database,
      ssl: this.target.ssl,
      connectionTimeoutMillis: this.target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'opendlf',
      types: TEXT_TYPES,
      ...extra,
    };
  }

  private newPool(database: string, max: number, extra: pg.PoolConfig = {}): pg.Pool {
    const pool = new pg.Pool({
      ...this.clientConfig(database, extra),
      max,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
    });
    // An idle client whose backend dies is reported here; the pool already drops it.
    pool.on('error', ignore);
    // Checked-out clients: a terminated backend emits 'error' on its client, which must be heard.
    pool.on('connect', (client) => client.on('error', ignore));
    return pool;
  }

  private control(): pg.Pool {
    this.controlPool ??= this.newPool(this.target.database, 2, CONTROL_QUERY_CONFIG);
    return this.controlPool;
  }

  /**
   * The polite step: on the warm cancel session when it is open (written at once), else, or when
   * that session turns out to be broken, through the control pool (which may first have to connect).
   */
  private cancel(pid: number): Promise<void> {
    const viaPool = () => this.controlQuery('SELECT pg_cancel_backend($1)', [pid]).then(ignore);
    const ready = this.canceller.ready();
    // A second stop while a cancel is in flight takes the pool: on the same session it would
    // wait behind the first, and pg 9 refuses a query sent to a busy client (pg 8 warns).
    if (!ready || this.cancelInFlight) return viaPool();
    this.cancelInFlight = true;
    return ready
      .query('SELECT pg_cancel_backend($1)', [pid])
      .finally(() => (this.cancelInFlight = false))
      .then(ignore, viaPool);
  }

  private controlQuery(sql: string, params: unknown[]): Promise<pg.QueryResult> {
    return this.control().query(sql, params);
  }

  private async terminate(pid: number): Promise<void> {
    await this.controlQuery('SELECT pg_terminate_backend($1)', [pid]);
    // Monotonic: a step of the wall clock neither cuts the wait short nor stretches it.
    const deadline = performance.now() + TERMINATE_WAIT_MS;
    while (performance.now() < deadline) {
      const { rowCount } = await this.controlQuery('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
      if (!rowCount) return;
      await sleep(20);
    }
  }

  /**
   * Runs one statement, keeping the first `maxRows` rows within the run's byte budget. Rows are
   * taken one at a time from the wire ('row' events, so pg does not accumulate them) and dropped
   * past either cap: memory stays
   * bounded, but the server still sends — and the statement still produces — every row, so a huge
   * SELECT takes as long as reading all of it. (pg-cursor would let us stop early; it is not a
   * dependency, and stopping early would leave the statement unfinished inside the user's
   * transaction.)
   */
  private async execute(
    client: pg.PoolClient,
    sql: string,
    builder: StatementResultBuilder,
    typeNames: Map<number, string>,
  ): Promise<StatementResult> {
    const ended = await new Promise<pg.QueryResult | pg.QueryResult[]>((resolve, reject) => {
      const query = new pg.Query({ text: sql, rowMode: 'array' } as pg.QueryArrayConfig);
      query.on('row', (row: unknown[], result) => {
        if (!builder.hasColumns && result) builder.setColumns(columnsOf(result.fields, typeNames));
        builder.addRow(row);
      });
      query.on('error', reject);
      query.on('end', (result) => resolve(result as pg.QueryResult | pg.QueryResult[]));
      client.query(query);
    });
    // The splitter yields one statement per call, but a statement the server sees as several
    // (possible only for exotic input) reports an array: the last result is the one shown.
    const result = Array.isArray(ended) ? ended[ended.length - 1] : ended;
    const fields = result?.fields ?? [];
    await resolveTypeNames(client, fields, typeNames);
    builder.setColumns(columnsOf(fields, typeNames));
    return builder.build();
  }

  private connectFailure(database: string, error: unknown): string {
    return (
      `Could not connect to PostgreSQL at ${this.target.host}:${this.target.port}, database "${database}": ` +
      describePgError(error)
    );
  }
}

/** The backend pid, and its start time as a token that tells this backend from a later one with the same pid. */
async function backendIdentity(
  client: pg.PoolClient,
): Promise<{ backendPid: number; backendStart: string | null }> {
  const { rows } = await client.query<[string, string | null]>({
    text:
      'SELECT pg_backend_pid(), ' +
      '(SELECT extract(epoch FROM backend_start)::text FROM pg_stat_activity WHERE pid = pg_backend_pid())',
    rowMode: 'array',
  });
  const [pid, start] = rows[0] ?? [];
  const backendPid = Number(pid);
  if (!Number.isSafeInteger(backendPid)) throw new Error(`unexpected backend pid ${String(pid)}`);
  return { backendPid, backendStart: start ?? null };
}

/**
 * A client from the pool. The connection check and keepalive are startup options of every session
 * rather than a SET per run: DISCARD ALL resets settings to their session defaults, which include
 * the startup options, so they survive the reset without a round trip. A server that does not know
 * one of them (the check: before PostgreSQL 14, DWS) refuses the connection; the database's pool is
 * then replaced by one without them (keepalive alone would not end a running statement).
 */
async function connectClient(sessions: DatabaseSessions): Promise<pg.PoolClient> {
  try {
    return await sessions.pool.connect();
  } catch (error) {
    if (!sessions.connectionCheck || !rejectsConnectionCheck(error)) throw error;
    sessions.withoutConnectionCheck();
    return sessions.pool.connect();
  }
}

function rejectsConnectionCheck(error: unknown): boolean {
  return (
    error instanceof pg.DatabaseError &&
    /client_connection_check_interval|tcp_keepalives_(idle|interval|count)/.test(error.message)
  );
}

/** Whether `query` ended well within `CLEANUP_TIMEOUT_MS`; a session that fails or hangs here is sick. */
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

function columnsOf(fields: readonly pg.FieldDef[], typeNames: ReadonlyMap<number, string>): ResultColumn[] {
  return fields.map((field) => ({
    name: field.name,
    type: TYPE_NAMES.get(field.dataTypeID) ?? typeNames.get(field.dataTypeID) ?? `oid:${field.dataTypeID}`,
    numeric: NUMERIC_OIDS.has(field.dataTypeID),
  }));
}

/**
 * Looks up names of types outside the built-in table (enums, domains, extension types) on the run's
 * own session — their OIDs are per database. Runs only after a statement succeeded, so the user's
 * transaction is healthy; a failure just leaves `oid:<n>` as the name.
 */
async function resolveTypeNames(
  client: pg.PoolClient,
  fields: readonly pg.FieldDef[],
  typeNames: Map<number, string>,
): Promise<void> {
  const unknown = [...new Set(fields.map((f) => f.dataTypeID))].filter(
    (oid) => !TYPE_NAMES.has(oid) && !typeNames.has(oid),
  );
  if (unknown.length === 0) return;
  try {
    const { rows } = await client.query<[string, string]>({
      text: 'SELECT oid::text, typname FROM pg_type WHERE oid = ANY($1::oid[])',
      values: [unknown],
      rowMode: 'array',
    });
    for (const [oid, name] of rows) typeNames.set(Number(oid), name);
  } catch {
    // Cosmetic only.
  }
}

/** The server's message, with its SQLSTATE when it has one (e.g. 42P01, 57014). */
function describePgError(error: unknown): string {
  const message = describeDriverError(error);
  const code = error instanceof pg.DatabaseError ? error.code : undefined;
  return code ? `${message} (SQLSTATE ${code})` : message;
}
