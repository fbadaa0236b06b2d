/**
 * One server per data directory. A second `opendlf serve` on the same directory would take the
 * same node id, and its startup recovery would abort the first server's running instances and kill
 * their processes; it would also share the DuckDB files and run directories. So the server holds
 * an exclusive lock on `<dataDir>/server.lock` for as long as it lives, taken before anything else
 * reads the directory.
 *
 * The lock is SQLite's (better-sqlite3, already the embedded store's driver): an EXCLUSIVE
 * transaction held open in exclusive locking mode. That is a POSIX advisory lock (fcntl) kept by
 * the kernel: it goes with the process however the process ends — SIGKILL, a crash, power loss — so
 * a stale lock cannot exist, no pid is compared (no pid-reuse question) and no clock is read. SQLite
 * also refuses a second connection of the same process, so two servers embedded in one process
 * exclude each other too. Like every POSIX lock it is only as reliable as the file system's
 * locking: keep the data directory on a local file system.
 *
 * The admin command (`opendlf credentials`) takes no lock: it may run next to a live server.
 */
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';

export const LOCK_FILE_NAME = 'server.lock';

export interface DataDirectoryLock {
  /** Releases the lock (idempotent); the process ending releases it too. */
  release(): void;
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** Takes the data directory's lock, or throws naming the directory when another server holds it. */
export function lockDataDirectory(dataDir: string): DataDirectoryLock {
  const file = join(dataDir, LOCK_FILE_NAME);
  // timeout 0: a held lock is refused at once, never waited for.
  const lock = new BetterSqlite3(file, { timeout: 0 });
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    lock.close();
    if (!isBusy(error)) throw error;
    throw new Error(
      `the data directory ${dataDir} is in use by another opendlf server (it holds ${file}): ` +
        'stop that server first, or give this one its own --data-dir (every node of a deployment ' +
        'needs its own data directory)',
    );
  }
  return {
    release() {
      if (lock.open) lock.close();
    },
  };
}
