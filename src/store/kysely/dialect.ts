/**
 * The few SQL differences between the store's dialects. The adapter classes in this folder use
 * dialect-neutral Kysely everywhere else (insert … on conflict, returning, guarded updates).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { sql, type RawBuilder, type SqliteDatabase, type SqliteStatement } from 'kysely';

export type StoreDialect = 'sqlite' | 'postgres';

/**
 * The exact, case-sensitive substring test used by list filters. LIKE is not used: SQLite's is
 * case-insensitive and both treat % and _ as wildcards. Both functions take (haystack, needle)
 * and return the 1-based position, 0 when absent.
 */
export function substringFunction(dialect: StoreDialect): 'instr' | 'strpos' {
  return dialect === 'sqlite' ? 'instr' : 'strpos';
}

/**
 * The database's own clock in epoch milliseconds. Leases are written and judged with it, so nodes
 * whose clocks disagree still agree on when a lease expired (clock_timestamp(), not now(): now() is
 * frozen at the start of a transaction).
 */
export function dbNowMillis(dialect: StoreDialect): RawBuilder<number> {
  return dialect === 'sqlite'
    ? sql<number>`CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
    : sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`;
}

/** How stale another process's commit may be seen through `dataVersion()`. */
export const DATA_VERSION_RECHECK_MS = 1;

/** Distinct SQL texts whose prepared statements are kept (the store issues a few dozen shapes). */
export const STATEMENT_CACHE_SIZE = 256;

/**
 * better-sqlite3 for Kysely's SqliteDialect, with prepared statements kept by SQL text. Kysely's
 * SQLite driver calls `prepare(sql)` for every query, and preparing was the largest single cost of
 * a GET script (about 10 µs per statement, 19% of the server's CPU under load, bench/ profile).
 * Kysely compiles the same text for the same query shape (values are parameters), so a small LRU
 * map serves nearly every call. A statement still iterating (a Kysely stream) is busy and cannot
 * be run again: such a call gets a fresh, uncached statement. SQLite re-prepares a cached
 * statement itself when the schema changes (migrations), so entries never go stale.
 */
/** Kysely's ROLLBACK when SQLite has already rolled the transaction back: nothing to do. */
const NOTHING_TO_ROLL_BACK: SqliteStatement = {
  reader: false,
  all: () => [],
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  iterate: () => [][Symbol.iterator](),
};

export class CachingSqliteDatabase implements SqliteDatabase {
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  private readonly dataVersionStatement: BetterSqlite3.Statement<[], number>;
  private dataVersionReadAt = Number.NEGATIVE_INFINITY;
  private lastDataVersion = 0;

  constructor(
    private readonly database: BetterSqlite3.Database,
    private readonly capacity = STATEMENT_CACHE_SIZE,
  ) {
    this.dataVersionStatement = database.prepare<[], number>('PRAGMA data_version').pluck();
  }

  prepare(text: string): SqliteStatement {
    // SQLite ends the transaction itself when a statement in it fails with SQLITE_FULL (a full
    // disk), SQLITE_IOERR or SQLITE_NOMEM; Kysely's ROLLBACK would then fail ("no transaction is
    // active") and replace the error that says what happened (a full disk answers OPENDLF.0507).
    if (text === 'rollback' && !this.database.inTransaction) return NOTHING_TO_ROLL_BACK;
    const cached = this.statements.get(text);
    if (cached !== undefined) {
      if (cached.busy) return this.database.prepare(text);
      // Map order is insertion order: re-inserting makes this the most recently used entry.
      this.statements.delete(text);
      this.statements.set(text, cached);
      return cached;
    }
    const statement = this.database.prepare(text);
    this.statements.set(text, statement);
    if (this.statements.size > this.capacity) {
      const oldest = this.statements.keys().next();
      if (oldest.done !== true) this.statements.delete(oldest.value);
    }
    return statement;
  }

  /**
   * SQLite's `PRAGMA data_version` of this connection: it changes whenever another connection (another
   * process, such as `opendlf credentials add`) commits to the file, never for this connection's own
   * writes. Reading it opens a read transaction (about 4 µs in WAL mode, as much as a small query),
   * so it is read at most once per DATA_VERSION_RECHECK_MS: another process's commit is seen within
   * that time, far less than a CLI command takes from its commit to its exit.
   */
  dataVersion(): number {
    const now = performance.now();
    if (now - this.dataVersionReadAt >= DATA_VERSION_RECHECK_MS) {
      this.dataVersionReadAt = now;
      this.lastDataVersion = this.dataVersionStatement.get() ?? 0;
    }
    return this.lastDataVersion;
  }

  close(): void {
    this.statements.clear();
    this.database.close();
  }
}
