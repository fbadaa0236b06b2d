/**
 * The embedded store: SQLite (better-sqlite3 12, WAL) through Kysely. The queries live in
 * store/kysely and are shared with the PostgreSQL adapter; this file only opens the database.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely } from 'kysely';
import { CachingSqliteDatabase } from '../kysely/dialect.js';
import { openKyselyStore } from '../kysely/kysely-store.js';
import type { Database } from '../kysely/schema.js';
import { LocalSignals } from '../local-signals.js';
import { GroupCommitSqliteDialect } from './group-commit-driver.js';
import type { Store } from '../store.js';

/** Opens (creating if needed) the SQLite file and applies pending migrations. */
export async function openSqliteStore(file: string): Promise<Store> {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const sqlite = new BetterSqlite3(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  // Every write of a group commit runs inside the group's transaction, so SQLite keeps a statement
  // journal for it (to undo that statement alone on a constraint). With the default temp_store that
  // journal spills past 64 KiB into a temporary file, opened, written and deleted within the group
  // (an instance row touches nine b-trees). Kept in memory: 30% fewer pwrite calls
  // and ~35% less main-thread CPU per claimed insert or settle (scratch bench, 4,000 of each).
  // Temporary tables and sorts stay small: the store's listings read their indexes in order.
  sqlite.pragma('temp_store = MEMORY');
  if (file !== ':memory:') {
    // The store holds sealed secrets and every script: the server's alone, whatever the umask of
    // whoever opened it first (SQLite gives new -wal/-shm files the main file's mode).
    for (const path of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(path)) chmodSync(path, 0o600);
  }
  const database =
    file === ':memory:' ? new CachingSqliteDatabase(sqlite) : new CheckpointedSqliteDatabase(sqlite, file);
  const db = new Kysely<Database>({ dialect: new GroupCommitSqliteDialect(database, sqlite) });
  return openKyselyStore(db, 'sqlite', {
    signals: new LocalSignals(),
    shared: false,
    externalChanges: () => database.dataVersion(),
  });
}

/**
 * How often the checkpoint thread looks for committed WAL pages to copy into the database file.
 * Once every page is copied, the next write restarts the WAL, and SQLite fsyncs the new WAL header
 * in the writing connection (sqlite3WalFrames, ticket ff5be73dee). Left to the server's own
 * connection that fsync ran on the event loop after nearly every pause, e.g. in the settle a stop's
 * 204 waits for (strace: ~1 main-thread fsync per run in bench/stop-latency.ts). So the checkpoint
 * thread restarts the WAL itself, with a one-row write (WAL_RESTART_TABLE) right after a checkpoint
 * that copied everything: the header fsync is paid on that thread, and the server's next write
 * appends behind that row (its price: the row is another connection's commit, so the server's
 * caches keyed on PRAGMA data_version are dropped at most once an interval while writes go on).
 * The WAL still starts over in the blocks it has (a higher checkpoint
 * threshold, tried first, let it grow into new blocks, and on a full disk the settle could no
 * longer be written: fault-disk-full.test.ts).
 */
const CHECKPOINT_INTERVAL_MS = 100;
/**
 * WAL pages after which the main connection checkpoints after all (SQLite's default is 1,000).
 * Under steady writes the worker's checkpoint never catches up with the last commit, and SQLite
 * restarts the WAL only when a write begins with every page copied: this backstop, run right after
 * a commit with no other writer, copies the little the worker has not, and the next write restarts
 * the WAL (bounded near 16 MB instead of growing while the load lasts).
 */
const MAIN_CHECKPOINT_PAGES = 4_000;
/**
 * The one-row table the checkpoint thread writes to restart the WAL. Not part of the shared schema
 * (PostgreSQL has no WAL of this kind): created here, it holds nothing but a counter.
 */
const WAL_RESTART_TABLE = 'opendlf_wal_restart';

/**
 * The checkpoint thread: its own connection to the file, which never waits for a lock (busy: the
 * next tick tries again). A tick does nothing unless another connection committed since the last
 * complete one (PRAGMA data_version), so an idle server is left alone and its next write appends
 * behind the restart row instead of restarting the WAL on the event loop. Otherwise a PASSIVE
 * checkpoint (never blocks a writer or reader), and when it copied every frame, the restart write.
 * CommonJS source run with `eval`; better-sqlite3 is required by the path resolved here.
 */
const CHECKPOINT_WORKER = `
const { workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true, timeout: 0 });
db.pragma('synchronous = NORMAL');
db.pragma('wal_autocheckpoint = 0');
const restart = db.prepare(\`UPDATE \${workerData.restartTable} SET restarts = restarts + 1 WHERE id = 1\`);
let handled;
setInterval(() => {
  try {
    const version = db.pragma('data_version', { simple: true });
    if (version === handled) return;
    const [copied] = db.pragma('wal_checkpoint(PASSIVE)');
    if (copied.busy === 0 && copied.log > 0 && copied.checkpointed === copied.log) restart.run();
    handled = version;
  } catch { /* busy, full or closing: the next tick tries again */ }
}, workerData.intervalMs);
`;

/**
 * The store's connection with WAL checkpoints moved off the event loop. SQLite's automatic
 * checkpoint runs inside the commit that crosses 1,000 WAL pages: it copies them into the database
 * file and syncs it on the server's main thread (measured on the instance table: 5-6 ms stalls,
 * ~25 µs per write on average; three writes per trivial run). Here a worker thread copies the
 * pages and the main connection only finishes the job every MAIN_CHECKPOINT_PAGES pages; should
 * that thread fail to start or die, SQLite's default automatic checkpoints come back.
 */
class CheckpointedSqliteDatabase extends CachingSqliteDatabase {
  private readonly worker: Worker;
  private closed = false;

  constructor(
    private readonly sqlite: BetterSqlite3.Database,
    file: string,
  ) {
    super(sqlite);
    sqlite.pragma(`wal_autocheckpoint = ${MAIN_CHECKPOINT_PAGES}`);
    sqlite.exec(
      `CREATE TABLE IF NOT EXISTS ${WAL_RESTART_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), restarts INTEGER NOT NULL);
       INSERT OR IGNORE INTO ${WAL_RESTART_TABLE} (id, restarts) VALUES (1, 0);`,
    );
    this.worker = new Worker(CHECKPOINT_WORKER, {
      eval: true,
      workerData: {
        file,
        module: createRequire(import.meta.url).resolve('better-sqlite3'),
        intervalMs: CHECKPOINT_INTERVAL_MS,
        restartTable: WAL_RESTART_TABLE,
      },
    });
    this.worker.unref();
    const fallBack = () => {
      if (!this.closed && this.sqlite.open) this.sqlite.pragma('wal_autocheckpoint = 1000');
    };
    this.worker.once('error', fallBack);
    this.worker.once('exit', fallBack);
  }

  override close(): void {
    this.closed = true;
    void this.worker.terminate();
    super.close();
  }
}
