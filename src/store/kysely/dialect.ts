/**
 * The few SQL differences between the store's dialects. The adapter classes in this folder use
 * dialect-neutral Kysely everywhere else (insert … on conflict, returning, guarded updates).
 */
export type StoreDialect = 'sqlite' | 'postgres';

/**
 * The exact, case-sensitive substring test used by list filters. LIKE is not used: SQLite's is
 * case-insensitive and both treat % and _ as wildcards. Both functions take (haystack, needle)
 * and return the 1-based position, 0 when absent.
 */
export function substringFunction(dialect: StoreDialect): 'instr' | 'strpos' {
  return dialect === 'sqlite' ? 'instr' : 'strpos';
}
