/**
 * The few SQL differences between the store's dialects. The adapter classes in this folder use
 * dialect-neutral Kysely everywhere else (insert … on conflict, returning, guarded updates).
 */
import { sql, type RawBuilder } from 'kysely';

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
