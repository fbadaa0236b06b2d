/**
 * Whether an error means "the disk is full" — the server's data directory, a quota, or the store's
 * database — as opposed to any other I/O failure. Such a failure is the environment's, not the
 * script's and not a bug: runs fail with the reason `storage_full`, API calls answer OPENDLF.0507,
 * and both work again by themselves once space is freed.
 *
 * Recognised: node:fs `ENOSPC` / `EDQUOT`, SQLite's `SQLITE_FULL`, PostgreSQL's SQLSTATE 53100
 * (disk_full), and drivers that only say it in words (DuckDB: "No space left on device"). The
 * `cause` chain is followed, so a wrapped driver error still counts.
 */
const STORAGE_FULL_CODES: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);
const STORAGE_FULL_WORDS = /no space left on device|disk quota exceeded|database or disk is full/i;

export function isStorageFull(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const { code, message, cause } = current as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string' && STORAGE_FULL_CODES.has(code)) return true;
    if (typeof message === 'string' && STORAGE_FULL_WORDS.test(message)) return true;
    current = cause;
  }
  return false;
}

/** The same test for an engine's or driver's message alone (DuckDB reports I/O errors as text). */
export function mentionsStorageFull(message: string): boolean {
  return STORAGE_FULL_WORDS.test(message);
}
