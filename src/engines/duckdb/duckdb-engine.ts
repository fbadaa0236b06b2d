/**
 * The embedded SQL engine: one DuckDB database file per project and workspace in the data
 * directory, one connection per run, driven by the shared SQL loop (sql-session-loop.ts). A run gets
 * the connection of an earlier run that could leave nothing behind on it (only queries, see
 * `leavesNoConnectionState`), else a fresh one (opened ahead, while the previous run executes).
 * Serves every SQL script type for local development.
 * Stop = `connection.interrupt()` (the running statement returns "Interrupted" within milliseconds),
 * repeated each grace period until the run returns; no further statement starts once the signal
 * has aborted. A trivial query makes only its statement's native calls (prepare, execute, fetch):
 * no connect or close, and the attachment check runs only for scripts that mention ATTACH.
 *
 * Sandbox (unless `externalAccess`): each workspace's database is opened with external access off
 * and may touch only its own file (and DuckDB's WAL/temp files next to it), its files folder
 * `<filesDirectory>/<project>/<workspace>/` when configured, and the configured shared
 * directories. Then the configuration is locked, so no script can `SET` it back, change
 * memory/threads/temp settings, or `INSTALL`/`LOAD` an extension that is not compiled in (auto
 * install and auto load are off; the bundled json/parquet/icu work without them). Measured on
 * DuckDB 1.5.6: `read_text`/`read_blob`/`read_csv`/`glob`/`COPY … TO`/`EXPORT DATABASE`/`ATTACH`
 * outside those paths fail with "Permission Error"; `../` out of an allowed directory is refused;
 * `SET`, `SET GLOBAL`, `RESET` fail "the configuration has been locked"; `ATTACH ':memory:'` and
 * attaching a file inside the files folder work and are detached when the run ends; `DETACH` of the
 * workspace database is refused while it is the default, and `USE` lasts only for the run's
 * connection; `CHECKPOINT` and `PRAGMA` (connection-local, e.g. profiling) are harmless.
 */
import { mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve, sep } from 'node:path';
import {
  DuckDBInstance,
  DuckDBTypeId,
  JsonDuckDBValueConverter,
  type DuckDBConnection,
  type DuckDBPreparedStatement,
  type DuckDBResult,
} from '@duckdb/node-api';
import type { StatementResult } from '../../domain/instance.js';
import { isSqlScriptType, type Namespace, type ScriptType } from '../../domain/script.js';
import { mentionsStorageFull } from '../../domain/storage-full.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import type { StatementResultBuilder, ResultColumn } from '../sql-result.js';
import {
  afterOutcome,
  runSqlSession,
  type SqlSessionDriver,
  type SqlStopControl,
} from '../sql-session-loop.js';

/** What a workspace's DuckDB may reach besides its own database file. */
export interface DuckDbSandbox {
  /** '' = none; else each workspace gets `<filesDirectory>/<project>/<workspace>/` (created 0700). */
  readonly filesDirectory: string;
  /** Directories every workspace may read and write. */
  readonly allowedDirectories: readonly string[];
  /** `true` = no sandbox at all (DuckDB's defaults: any file, extension auto-install): single-user only. */
  readonly externalAccess: boolean;
}

export const DEFAULT_DUCKDB_SANDBOX: DuckDbSandbox = {
  filesDirectory: '',
  allowedDirectories: [],
  externalAccess: false,
};

const NUMERIC_TYPES = new Set<DuckDBTypeId>([
  DuckDBTypeId.TINYINT,
  DuckDBTypeId.SMALLINT,
  DuckDBTypeId.INTEGER,
  DuckDBTypeId.BIGINT,
  DuckDBTypeId.UTINYINT,
  DuckDBTypeId.USMALLINT,
  DuckDBTypeId.UINTEGER,
  DuckDBTypeId.UBIGINT,
  DuckDBTypeId.HUGEINT,
  DuckDBTypeId.UHUGEINT,
  DuckDBTypeId.FLOAT,
  DuckDBTypeId.DOUBLE,
  DuckDBTypeId.DECIMAL,
]);

/**
 * DuckDB's threads per database: one core fewer than the machine has (at least one), so a query
 * that parallelises cannot take the core the server needs to accept a stop and interrupt it.
 */
const WORKER_THREADS = String(Math.max(1, availableParallelism() - 1));

/** The key of a workspace's database in the engine's caches. */
const workspaceKey = (ns: Namespace) => `${ns.projectId}/${ns.workspaceId}`;

/** DuckDB's words for a database a fatal error (e.g. a checkpoint on a full disk) left unusable. */
const INVALIDATED = /^FATAL Error|database has been invalidated/;

/** File-name-safe form of an id (ids are validated at the API edge; this is defence in depth). */
const safeSegment = (id: string) => encodeURIComponent(id).replace(/\./g, '%2E');

export class DuckDbEngine implements Engine {
  readonly name = 'duckdb';
  readonly capabilities = { recoversFromAnyNode: false } as const;
  private readonly databases = new Map<string, Promise<DuckDBInstance>>();
  private readonly openConnections = new Set<DuckDBConnection>();
  /** One connection opened ahead per workspace database, for its next run. */
  private readonly spares = new Map<string, Promise<DuckDBConnection>>();
  /**
   * Per workspace database, connections back from runs that could not change them (queries only,
   * not stopped): taken before a spare. Connecting and closing were two of a trivial run's native
   * calls and ~0.3-0.4 ms of the event loop per run under load (bench/throughput.ts instances).
   */
  private readonly idle = new Map<string, DuckDBConnection[]>();
  /** Connections of ended runs, closed after their settle (closeAfterSettle), or by close() first. */
  private readonly closing = new Set<DuckDBConnection>();

  /** @param directory where `<project>/<workspace>.duckdb` files live; `:memory:` for tests. */
  constructor(
    private readonly directory: string,
    private readonly sandbox: DuckDbSandbox = DEFAULT_DUCKDB_SANDBOX,
  ) {}

  /** The workspace's files folder, or undefined when `filesDirectory` is not configured. */
  filesFolder(ns: Namespace): string | undefined {
    if (this.sandbox.filesDirectory === '') return undefined;
    return join(resolve(this.sandbox.filesDirectory), safeSegment(ns.projectId), safeSegment(ns.workspaceId));
  }

  readonly connectionProbe = { scriptType: 'DWSSQL', content: 'SELECT 1' } as const;

  supports(type: ScriptType): boolean {
    return isSqlScriptType(type);
  }

  private database(ns: Namespace): Promise<DuckDBInstance> {
    const key = workspaceKey(ns);
    let db = this.databases.get(key);
    if (!db) {
      let path = ':memory:';
      if (this.directory !== ':memory:') {
        const dir = join(this.directory, safeSegment(ns.projectId));
        mkdirSync(dir, { recursive: true });
        path = join(dir, `${safeSegment(ns.workspaceId)}.duckdb`);
      }
      db = this.sandbox.externalAccess
        ? DuckDBInstance.create(path, { threads: WORKER_THREADS })
        : this.openSandboxed(path, ns);
      db.catch(() => this.databases.delete(key));
      this.databases.set(key, db);
    }
    return db;
  }

  /**
   * Opens the database with external access limited to its own paths, then locks the
   * configuration. The allow-lists are set through SQL on a setup connection: DuckDB 1.5.6 refuses
   * list-valued options in the instance config ("Failed to set config"), and they must be set
   * before `enable_external_access=false` (which forbids widening them afterwards).
   */
  private async openSandboxed(path: string, ns: Namespace): Promise<DuckDBInstance> {
    const directories = this.sandbox.allowedDirectories.map((dir) => asDirectory(resolve(dir)));
    const paths: string[] = [];
    const files = this.filesFolder(ns);
    if (files) {
      mkdirSync(files, { recursive: true, mode: 0o700 });
      directories.push(asDirectory(files));
    }
    if (path !== ':memory:') {
      const absolute = resolve(path);
      paths.push(absolute, `${absolute}.wal`);
      // DuckDB's default spill directory for a file database; spilling must keep working.
      directories.push(asDirectory(`${absolute}.tmp`));
    }
    const instance = await DuckDBInstance.create(path, {
      threads: WORKER_THREADS,
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
    try {
      const setup = await instance.connect();
      try {
        // SET takes no bind parameters; every value is a quoted literal (sqlString).
        await setup.run(`SET allowed_directories = [${directories.map(sqlString).join(', ')}]`);
        await setup.run(`SET allowed_paths = [${paths.map(sqlString).join(', ')}]`);
        await setup.run('SET enable_external_access = false');
        await setup.run('SET lock_configuration = true');
      } finally {
        setup.closeSync();
      }
    } catch (error) {
      instance.closeSync();
      throw error;
    }
    return instance;
  }

  run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    return runSqlSession(this.driver, request, context);
  }

  /** What the shared SQL loop needs from DuckDB (sql-session-loop.ts). */
  private readonly driver: SqlSessionDriver<DuckDbSession> = {
    // DuckDB's SQL quotes like PostgreSQL's.
    dialect: 'postgres',
    refuse: (content) => (this.sandbox.externalAccess ? undefined : refusedBySandbox(content)),
    open: async (request) => {
      const connection = await this.connection(request.namespace);
      this.openConnections.add(connection);
      const workspace = workspaceKey(request.namespace);
      const database = this.databases.get(workspace) ?? this.database(request.namespace);
      return {
        connection,
        workspace,
        database,
        attachedBefore: undefined,
        invalidated: false,
        resultLeftOpen: false,
      };
    },
    openFailure: (error) => `DuckDB could not be opened: ${(error as Error).message}`,
    identify: async (session, request) => {
      // Only a script that says ATTACH can attach (dynamic SQL is refused by the sandbox, and is a
      // deny-listed name anyway): others skip the two catalog reads around the run.
      if (MENTIONS_ATTACH.test(request.content))
        session.attachedBefore = await attachedDatabases(session.connection);
      return { engine: this.name };
    },
    setupFailure: (error) => `The DuckDB session could not be set up: ${(error as Error).message}`,
    stopControl: (session, _handle, context) => new InterruptLoop(session.connection, context),
    execute: async (session, sql, _index, builder) =>
      readResult(await startStatement(session.connection, sql), builder, session),
    statementFailure: (error, session) => {
      const detail = (error as Error).message;
      if (INVALIDATED.test(detail)) session.invalidated = true;
      // The database file, its WAL or a spill could not be written: the server's disk, not the script.
      return mentionsStorageFull(detail) ? { detail, reason: 'storage_full' } : { detail };
    },
    release: async (session, end) => {
      if (session.attachedBefore) await detachAttachedSince(session.connection, session.attachedBefore);
      this.openConnections.delete(session.connection);
      const unchanged = !session.invalidated && !session.resultLeftOpen && !end.stopped;
      if (unchanged && leavesNoConnectionState(end.statements)) {
        if (this.keepIdle(session)) return;
      }
      if (session.invalidated) {
        session.connection.closeSync();
        await this.reopenLater(session.workspace, session.database);
        return;
      }
      this.closeAfterSettle(session.connection);
    },
  };

  /**
   * Keeps a run's connection for the workspace's next run when its database is still the current
   * one and fewer than IDLE_CONNECTIONS_KEPT wait; false: the caller closes it.
   */
  private keepIdle(session: DuckDbSession): boolean {
    if (this.databases.get(session.workspace) !== session.database) return false;
    const idle = this.idle.get(session.workspace) ?? [];
    if (idle.length >= IDLE_CONNECTIONS_KEPT) return false;
    idle.push(session.connection);
    this.idle.set(session.workspace, idle);
    return true;
  }

  /**
   * Closes a run's connection once the run's settle is committed: its statements have returned (a
   * stopped one was interrupted), so the settle — a stop's FAILED, and the stop's 204 — need not
   * wait for the close. Two turns later (afterOutcome), not one: this runs during the release,
   * before the runner writes the settle, and the SQLite store commits it in a setImmediate queued
   * after this one.
   */
  private closeAfterSettle(connection: DuckDBConnection): void {
    this.closing.add(connection);
    void afterOutcome().then(() => {
      if (this.closing.delete(connection)) connection.closeSync();
    });
  }

  /** Closes a workspace's idle connections (its database is being closed or reopened). */
  private closeIdle(workspace: string): void {
    for (const connection of this.idle.get(workspace) ?? []) connection.closeSync();
    this.idle.delete(workspace);
  }

  /**
   * A write that failed for lack of space (a checkpoint, the WAL) leaves DuckDB's database
   * "invalidated": every later statement fails until it is reopened. The cached instance and its
   * spare connection are dropped and closed, so the workspace's next run opens the file afresh
   * (and works once there is space again) instead of failing until the server restarts.
   */
  private async reopenLater(workspace: string, database: Promise<DuckDBInstance>): Promise<void> {
    if (this.databases.get(workspace) !== database) return;
    this.databases.delete(workspace);
    this.closeIdle(workspace);
    const spare = this.spares.get(workspace);
    this.spares.delete(workspace);
    try {
      (await spare)?.closeSync();
    } catch {
      // Never opened.
    }
    try {
      (await database).closeSync();
    } catch {
      // Already closed or never opened.
    }
  }

  /**
   * A connection to the workspace's database that no earlier run changed (`USE`, temporary tables
   * and connection-local settings must not reach the next run): an idle one, else a fresh one. The
   * next fresh one is opened as this one is handed out, so a run does not wait for the connect.
   */
  private async connection(ns: Namespace): Promise<DuckDBConnection> {
    const key = workspaceKey(ns);
    const idle = this.idle.get(key)?.pop();
    if (idle) return idle;
    const spare = this.spares.get(key);
    this.spares.delete(key);
    const instance = await this.database(ns);
    let connection: DuckDBConnection;
    try {
      connection = spare ? await spare : await instance.connect();
    } catch {
      connection = await instance.connect();
    }
    if (!this.spares.has(key) && this.databases.has(key)) {
      const next = instance.connect();
      next.catch(() => undefined);
      this.spares.set(key, next);
    }
    return connection;
  }

  async ping(): Promise<void> {
    const instance = await DuckDBInstance.create(':memory:');
    try {
      const connection = await instance.connect();
      await connection.run('SELECT 1');
      connection.closeSync();
    } finally {
      instance.closeSync();
    }
  }

  async close(): Promise<void> {
    for (const connection of this.openConnections) connection.interrupt();
    for (const workspace of [...this.idle.keys()]) this.closeIdle(workspace);
    for (const connection of this.closing) connection.closeSync();
    this.closing.clear();
    const spares = [...this.spares.values()];
    this.spares.clear();
    for (const spare of spares) {
      try {
        (await spare).closeSync();
      } catch {
        // Never opened.
      }
    }
    const dbs = [...this.databases.values()];
    this.databases.clear();
    for (const db of dbs) {
      try {
        (await db).closeSync();
      } catch {
        // Failed to open in the first place.
      }
    }
  }
}

/**
 * Functions that change the whole DuckDB instance without going through its settings, so
 * `lock_configuration` does not stop them (measured on 1.5.6): `enable_logging` turns on logging for
 * every later run, and with a `storage_path` the sandbox's refusal to create that directory is
 * thrown where nothing catches it — the server process aborts. Any mention refuses the script.
 */
const INSTANCE_FUNCTIONS = /\b(?:enable_logging|disable_logging|truncate_duckdb_logs)\b/i;
/**
 * Table functions that run SQL built from a string at bind time (`query('select * from enable_' ||
 * 'logging()')`), which would hide the names above from any check of the script's text. Matched
 * when called: the name (optionally quoted), then whitespace or comments, then `(`.
 */
const DYNAMIC_SQL_CALL =
  /\b(?:query|query_table|json_execute_serialized_sql)"?(?:\s|\/\*[\s\S]*?\*\/|--[^\n]*(?:\n|$))*\(/i;

/**
 * Why the sandbox refuses a script before running any of it, or undefined. A deny-list of names,
 * checked on the whole text (string literals and comments included: a false positive is a clear
 * refusal, a miss could stop the server).
 */
export function refusedBySandbox(content: string): string | undefined {
  const instanceFunction = INSTANCE_FUNCTIONS.exec(content);
  if (instanceFunction)
    return `${instanceFunction[0]} is not allowed on the duckdb connection: it changes the database for every run`;
  const dynamic = DYNAMIC_SQL_CALL.exec(content);
  if (dynamic)
    return `${dynamic[0].replace(/[\s"(]|\/\*[\s\S]*?\*\/|--[^\n]*/g, '')}() is not allowed on the duckdb connection: SQL built from strings cannot be checked by the sandbox`;
  return undefined;
}

/**
 * A configured directory that would open the server's own files to scripts: one that contains the
 * data directory (keys, store, every workspace's database) or lies inside the DuckDB databases'
 * directory. Returns the first such directory, or undefined.
 */
export function directoryExposingServerFiles(
  sandbox: DuckDbSandbox,
  dataDirectory: string,
  databasesDirectory: string,
): string | undefined {
  const data = asDirectory(resolve(dataDirectory));
  const databases = asDirectory(resolve(databasesDirectory));
  const configured = [sandbox.filesDirectory, ...sandbox.allowedDirectories].filter((dir) => dir !== '');
  return configured.find((dir) => {
    const path = asDirectory(resolve(dir));
    return data.startsWith(path) || path.startsWith(databases);
  });
}

/** A directory entry of `allowed_directories`: DuckDB matches directories by prefix with a trailing separator. */
function asDirectory(path: string): string {
  return path.endsWith(sep) ? path : path + sep;
}

function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

function sqlIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

interface AttachedDatabases {
  /** The connection's default database: the workspace's own. */
  readonly main: string;
  readonly names: ReadonlySet<string>;
}

/** The databases attached to the instance (the workspace's own, and any a run attached). */
async function attachedDatabases(connection: DuckDBConnection): Promise<AttachedDatabases> {
  const reader = await connection.runAndReadAll(
    'SELECT database_name, current_database() FROM duckdb_databases() WHERE NOT internal',
  );
  const rows = reader.getRowsJson();
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  return { main: text(rows[0]?.[1]), names: new Set(rows.map((row) => text(row[0]))) };
}

/**
 * Attachments belong to the DuckDB instance, not the connection: without this, an `ATTACH` would
 * outlive the run and be visible to every later run of the workspace. Best effort: a failure here
 * must not turn a finished run into a failed one.
 */
async function detachAttachedSince(connection: DuckDBConnection, before: AttachedDatabases): Promise<void> {
  try {
    const now = await attachedDatabases(connection);
    const added = [...now.names].filter((name) => !before.names.has(name));
    if (added.length === 0) return;
    // A run may have switched to one of its attachments with USE; the default cannot be detached.
    await connection.run(`USE ${sqlIdentifier(before.main)}`);
    for (const name of added) await connection.run(`DETACH DATABASE IF EXISTS ${sqlIdentifier(name)}`);
  } catch {
    // The connection is closed next; a leftover attachment is harmless to the sandbox (it passed it).
  }
}

/** Spilled bytes after which reading a chunk yields to the event loop once. */
const SPILL_YIELD_BYTES = 16 * 1024 * 1024;

/** A script that may attach databases (checked on the whole text, like the sandbox's deny-list). */
const MENTIONS_ATTACH = /attach/i;

/** Idle connections kept per workspace database (more than the runs at once is never needed). */
const IDLE_CONNECTIONS_KEPT = 16;

/**
 * A statement that only reads: it cannot leave a temporary object, a `USE`, a variable, a prepared
 * statement or an open transaction on its connection (those need CREATE, USE, SET, PREPARE, BEGIN…).
 * Leading whitespace and comments are skipped, as the splitter keeps them.
 */
const QUERY_STATEMENT =
  /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:select|with|values|from|table|show|describe|summarize)\b/i;
/** The one connection-local state a query can set: the random seed of `random()`. */
const SETS_SEED = /setseed/i;

/**
 * Whether a run of these statements leaves its connection as it found it, so the next run may use
 * it: only queries, none that sets the seed. (ATTACH, which a query cannot do, is the instance's.)
 */
function leavesNoConnectionState(statements: readonly string[]): boolean {
  return statements.every(isPlainQuery);
}

/** A query that leaves its connection as it found it (see leavesNoConnectionState). */
function isPlainQuery(sql: string): boolean {
  return QUERY_STATEMENT.test(sql) && !SETS_SEED.test(sql);
}

interface DuckDbSession {
  readonly connection: DuckDBConnection;
  /** `<project>/<workspace>`: the database this connection belongs to. */
  readonly workspace: string;
  readonly database: Promise<DuckDBInstance>;
  /** A statement failed with DuckDB's FATAL error: the database must be reopened (release does it). */
  invalidated: boolean;
  /** The databases attached before the run, when the script may attach more. */
  attachedBefore: AttachedDatabases | undefined;
  /**
   * A result was not read to its end (a cap stopped the fetching): its query still holds the
   * connection's transaction until the connection closes, so the connection is not reused.
   */
  resultLeftOpen: boolean;
}

/**
 * DuckDB's stop: `connection.interrupt()` at once, repeated every grace period (at least 10 ms)
 * until the run returns — an interrupt that lands between two native calls is lost.
 */
class InterruptLoop implements SqlStopControl {
  readonly forced = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: DuckDBConnection,
    private readonly context: EngineRunContext,
  ) {}

  arm(): void {
    if (this.context.signal.aborted) this.interrupt();
    else this.context.signal.addEventListener('abort', this.interrupt, { once: true });
  }

  finish(): Promise<void> {
    this.context.signal.removeEventListener('abort', this.interrupt);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    return Promise.resolve();
  }

  private readonly interrupt = (): void => {
    this.connection.interrupt();
    this.timer ??= setInterval(() => this.connection.interrupt(), Math.max(10, this.context.stopGraceMs));
  };
}

/**
 * Prepared queries kept per connection, by text, for the next run that gets the connection: the
 * same query again (a scheduled script, a polled `SELECT`) is executed without parsing, binding
 * and planning it again. That was ~55% of DuckDB's CPU for `SELECT 1` and one of its four
 * thread-pool round trips (scratch bench, 8 connections: 335-405 µs -> 137-174 µs a query, all
 * threads). Only plain queries are kept (isPlainQuery: those let a connection be reused at all).
 * DuckDB binds a kept statement again whenever what it bound may have changed — a table altered,
 * dropped or recreated by any connection, the files a table function, a view or a replacement scan
 * reads, a glob's matches — and re-evaluates now() and random() at each execution (checked on
 * 1.5.6), so a kept statement answers what a fresh prepare would, errors included. Closing the
 * connection destroys them (DuckDBConnection.closeSync).
 */
const keptQueries = new WeakMap<DuckDBConnection, Map<string, DuckDBPreparedStatement>>();
/** Bounds the statements a connection keeps (the least recently kept one is destroyed first). */
const KEPT_QUERIES_PER_CONNECTION = 16;

function keepQuery(connection: DuckDBConnection, sql: string, prepared: DuckDBPreparedStatement): void {
  let kept = keptQueries.get(connection);
  if (!kept) keptQueries.set(connection, (kept = new Map<string, DuckDBPreparedStatement>()));
  if (kept.size >= KEPT_QUERIES_PER_CONNECTION) {
    const oldest = kept.keys().next();
    if (oldest.done !== true) forgetQuery(connection, oldest.value);
  }
  kept.set(sql, prepared);
}

function forgetQuery(connection: DuckDBConnection, sql: string): void {
  const kept = keptQueries.get(connection);
  const prepared = kept?.get(sql);
  kept?.delete(sql);
  prepared?.destroySync();
}

/**
 * Starts one statement as a stream. The splitter already split the script, so the statement is
 * prepared directly (one native call fewer than `connection.stream`, which extracts statements
 * first), or taken from the connection's kept queries; a piece DuckDB still reads as several
 * statements goes through `stream`, which runs all but the last.
 */
async function startStatement(connection: DuckDBConnection, sql: string): Promise<DuckDBResult> {
  const keep = isPlainQuery(sql);
  const kept = keep ? keptQueries.get(connection)?.get(sql) : undefined;
  let prepared: DuckDBPreparedStatement;
  if (kept) prepared = kept;
  else {
    try {
      prepared = await connection.prepare(sql);
    } catch (error) {
      if (/Cannot prepare multiple statements/.test((error as Error).message)) return connection.stream(sql);
      throw error;
    }
    if (!keep) {
      try {
        return await prepared.stream();
      } finally {
        prepared.destroySync();
      }
    }
    keepQuery(connection, sql, prepared);
  }
  try {
    return await prepared.stream();
  } catch (error) {
    // Not kept after a failure: the next run prepares it afresh.
    forgetQuery(connection, sql);
    throw error;
  }
}

/**
 * Reads the result one chunk at a time and converts one row at a time: converting a whole chunk
 * (up to 2,048 rows) to JSON at once can build gigabytes of strings before any cap is checked.
 * Stops fetching once the builder refuses a row (row cap or byte budget reached), and then marks
 * the session's connection as holding an unfinished result.
 */
async function readResult(
  result: DuckDBResult,
  builder: StatementResultBuilder,
  session: Pick<DuckDbSession, 'resultLeftOpen'>,
): Promise<StatementResult> {
  const columns: ResultColumn[] = [];
  for (let i = 0; i < result.columnCount; i++) {
    columns.push({
      name: result.columnName(i),
      type: result.columnType(i).toString(),
      // DuckDB's JSON form renders BIGINT/DECIMAL/HUGEINT as strings; the API promises JSON numbers.
      numeric: NUMERIC_TYPES.has(result.columnTypeId(i)),
    });
  }
  builder.setColumns(columns);
  let yieldAt = SPILL_YIELD_BYTES;
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    let accepting = true;
    const rows = chunk.rowCount;
    for (let row = 0; row < rows && accepting; row++) {
      accepting = builder.addRow(chunk.convertRowValues(row, JsonDuckDBValueConverter));
      // A chunk of wide rows going to the spill can be gigabytes: let timers run between rows.
      if (builder.spilledBytes >= yieldAt) {
        yieldAt = builder.spilledBytes + SPILL_YIELD_BYTES;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    if (!accepting) {
      session.resultLeftOpen = true;
      break;
    }
  }
  return builder.build();
}
