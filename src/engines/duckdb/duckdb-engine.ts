/**
 * The embedded SQL engine: one DuckDB database file per project and workspace in the data
 * directory, one fresh connection per run (opened ahead, while the previous run executes), driven by
 * the shared SQL loop (sql-session-loop.ts). Serves every SQL script type for local development.
 * Stop = `connection.interrupt()` (the running statement returns "Interrupted" within milliseconds),
 * repeated each grace period until the run returns; no further statement starts once the signal
 * has aborted. A trivial run makes only its statement's native calls (prepare, execute, fetch) and
 * a synchronous close: the attachment check runs only for scripts that mention ATTACH.
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
import { runSqlSession, type SqlSessionDriver, type SqlStopControl } from '../sql-session-loop.js';

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
      return { connection, workspace, database, attachedBefore: undefined, invalidated: false };
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
      readResult(await startStatement(session.connection, sql), builder),
    statementFailure: (error, session) => {
      const detail = (error as Error).message;
      if (INVALIDATED.test(detail)) session.invalidated = true;
      // The database file, its WAL or a spill could not be written: the server's disk, not the script.
      return mentionsStorageFull(detail) ? { detail, reason: 'storage_full' } : { detail };
    },
    release: async (session) => {
      if (session.attachedBefore) await detachAttachedSince(session.connection, session.attachedBefore);
      this.openConnections.delete(session.connection);
      session.connection.closeSync();
      if (session.invalidated) await this.reopenLater(session.workspace, session.database);
    },
  };

  /**
   * A write that failed for lack of space (a checkpoint, the WAL) leaves DuckDB's database
   * "invalidated": every later statement fails until it is reopened. The cached instance and its
   * spare connection are dropped and closed, so the workspace's next run opens the file afresh
   * (and works once there is space again) instead of failing until the server restarts.
   */
  private async reopenLater(workspace: string, database: Promise<DuckDBInstance>): Promise<void> {
    if (this.databases.get(workspace) !== database) return;
    this.databases.delete(workspace);
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
   * A fresh connection to the workspace's database (per run: `USE`, temporary tables and
   * connection-local settings must not reach the next run). The next one is opened as this one is
   * handed out, so a run does not wait for the connect.
   */
  private async connection(ns: Namespace): Promise<DuckDBConnection> {
    const key = workspaceKey(ns);
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

/** A script that may attach databases (checked on the whole text, like the sandbox's deny-list). */
const MENTIONS_ATTACH = /attach/i;

interface DuckDbSession {
  readonly connection: DuckDBConnection;
  /** `<project>/<workspace>`: the database this connection belongs to. */
  readonly workspace: string;
  readonly database: Promise<DuckDBInstance>;
  /** A statement failed with DuckDB's FATAL error: the database must be reopened (release does it). */
  invalidated: boolean;
  /** The databases attached before the run, when the script may attach more. */
  attachedBefore: AttachedDatabases | undefined;
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
 * Starts one statement as a stream. The splitter already split the script, so the statement is
 * prepared directly (one native call fewer than `connection.stream`, which extracts statements
 * first); a piece DuckDB still reads as several statements goes through `stream`, which runs all
 * but the last.
 */
async function startStatement(connection: DuckDBConnection, sql: string): Promise<DuckDBResult> {
  let prepared: DuckDBPreparedStatement;
  try {
    prepared = await connection.prepare(sql);
  } catch (error) {
    if (/Cannot prepare multiple statements/.test((error as Error).message)) return connection.stream(sql);
    throw error;
  }
  try {
    return await prepared.stream();
  } finally {
    prepared.destroySync();
  }
}

/**
 * Reads the result one chunk at a time and converts one row at a time: converting a whole chunk
 * (up to 2,048 rows) to JSON at once can build gigabytes of strings before any cap is checked.
 * Stops fetching once the builder refuses a row (row cap or byte budget reached).
 */
async function readResult(result: DuckDBResult, builder: StatementResultBuilder): Promise<StatementResult> {
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
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    let accepting = true;
    for (let row = 0; row < chunk.rowCount && accepting; row++) {
      accepting = builder.addRow(chunk.convertRowValues(row, JsonDuckDBValueConverter));
    }
    if (!accepting) break;
  }
  return builder.build();
}
