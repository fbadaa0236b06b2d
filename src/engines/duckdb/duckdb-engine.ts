/**
 * The embedded SQL engine: one DuckDB database file per project and workspace in the data
 * directory, one connection per run. Serves every SQL script type for local development.
 * Stop = `connection.interrupt()` (the running statement returns "Interrupted" within milliseconds),
 * repeated each grace period until the run returns; no further statement starts once the signal
 * has aborted.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance, DuckDBTypeId, type DuckDBConnection, type DuckDBResult } from '@duckdb/node-api';
import type { StatementResult } from '../../domain/instance.js';
import { isSqlScriptType, type Namespace, type ScriptType } from '../../domain/script.js';
import type { Engine, EngineOutcome, EngineRunContext, EngineRunRequest } from '../engine.js';
import { splitStatementsForRun } from '../sql-statements.js';

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

/** File-name-safe form of an id (ids are validated at the API edge; this is defence in depth). */
const safeSegment = (id: string) => encodeURIComponent(id).replace(/\./g, '%2E');

export class DuckDbEngine implements Engine {
  readonly name = 'duckdb';
  readonly capabilities = { recoversOrphans: false, recoversFromAnyNode: false } as const;
  private readonly databases = new Map<string, Promise<DuckDBInstance>>();
  private readonly openConnections = new Set<DuckDBConnection>();

  /** @param directory where `<project>/<workspace>.duckdb` files live; `:memory:` for tests. */
  constructor(private readonly directory: string) {}

  supports(type: ScriptType): boolean {
    return isSqlScriptType(type);
  }

  private database(ns: Namespace): Promise<DuckDBInstance> {
    const key = `${ns.projectId}/${ns.workspaceId}`;
    let db = this.databases.get(key);
    if (!db) {
      let path = ':memory:';
      if (this.directory !== ':memory:') {
        const dir = join(this.directory, safeSegment(ns.projectId));
        mkdirSync(dir, { recursive: true });
        path = join(dir, `${safeSegment(ns.workspaceId)}.duckdb`);
      }
      db = DuckDBInstance.create(path);
      db.catch(() => this.databases.delete(key));
      this.databases.set(key, db);
    }
    return db;
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    const { signal } = context;
    const results: StatementResult[] = [];
    const split = splitStatementsForRun(request.content, 'postgres');
    if (!split.ok) return { kind: 'failed', results, message: split.message };
    const { statements } = split;
    if (signal.aborted) return { kind: 'aborted', results };
    let connection: DuckDBConnection;
    try {
      connection = await (await this.database(request.namespace)).connect();
    } catch (error) {
      return { kind: 'failed', results, message: `DuckDB could not be opened: ${(error as Error).message}` };
    }
    this.openConnections.add(connection);
    let interruptTimer: NodeJS.Timeout | undefined;
    const interrupt = () => {
      connection.interrupt();
      // An interrupt that lands between two native calls is lost; repeat until the run returns.
      interruptTimer = setInterval(() => connection.interrupt(), Math.max(10, context.stopGraceMs));
    };
    try {
      await context.reportHandle({ engine: this.name });
      if (signal.aborted) return { kind: 'aborted', results };
      signal.addEventListener('abort', interrupt, { once: true });
      for (const [index, sql] of statements.entries()) {
        // Stopped between statements: the next one never starts.
        if (signal.aborted) return { kind: 'aborted', results };
        const started = performance.now();
        try {
          const result = await connection.stream(sql);
          results.push(await readResult(result, request.limits.maxResultRows, started));
        } catch (error) {
          if (signal.aborted) return { kind: 'aborted', results };
          const message = `Statement ${index + 1} failed: ${(error as Error).message}`;
          return { kind: 'failed', results: [...results, errorResult(message, started)], message };
        }
      }
      return { kind: 'succeeded', results };
    } finally {
      signal.removeEventListener('abort', interrupt);
      if (interruptTimer) clearInterval(interruptTimer);
      this.openConnections.delete(connection);
      connection.closeSync();
    }
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

function errorResult(message: string, started: number): StatementResult {
  return { schema: [], rows: [], rowCount: 0, duration: (performance.now() - started) / 1000, message };
}

async function readResult(result: DuckDBResult, maxRows: number, started: number): Promise<StatementResult> {
  const columnCount = result.columnCount;
  const schema: Record<string, string>[] = [];
  const numeric: boolean[] = [];
  for (let i = 0; i < columnCount; i++) {
    schema.push({ [result.columnName(i)]: result.columnType(i).toString() });
    numeric.push(NUMERIC_TYPES.has(result.columnTypeId(i)));
  }
  const rows: unknown[][] = [];
  let truncated = false;
  for await (const chunk of result.yieldRowsJson()) {
    for (const row of chunk) {
      if (rows.length >= maxRows) {
        truncated = true;
        break;
      }
      // DuckDB's JSON form renders BIGINT/DECIMAL/HUGEINT as strings; the API promises JSON numbers.
      rows.push(row.map((value, i) => (numeric[i] && typeof value === 'string' ? Number(value) : value)));
    }
    if (truncated) break;
  }
  const out: StatementResult = {
    schema,
    rows,
    rowCount: rows.length,
    duration: (performance.now() - started) / 1000,
    message: '',
  };
  if (truncated) out.truncated = true;
  return out;
}
