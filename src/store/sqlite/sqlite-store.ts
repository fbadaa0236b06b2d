/**
 * The embedded store: SQLite (better-sqlite3 12, WAL) through Kysely. The queries live in
 * store/kysely and are shared with the PostgreSQL adapter; this file only opens the database.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { CachingSqliteDatabase } from '../kysely/dialect.js';
import { openKyselyStore } from '../kysely/kysely-store.js';
import type { Database } from '../kysely/schema.js';
import { LocalSignals } from '../local-signals.js';
import type { Store } from '../store.js';

/** Opens (creating if needed) the SQLite file and applies pending migrations. */
export async function openSqliteStore(file: string): Promise<Store> {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new BetterSqlite3(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  if (file !== ':memory:') {
    // The store holds sealed secrets and every script: the server's alone, whatever the umask of
    // whoever opened it first (SQLite gives new -wal/-shm files the main file's mode).
    for (const path of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(path)) chmodSync(path, 0o600);
  }
  const database = new CachingSqliteDatabase(sqlite);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return openKyselyStore(db, 'sqlite', {
    signals: new LocalSignals(),
    shared: false,
    externalChanges: () => database.dataVersion(),
  });
}
