/**
 * Splits SQL script content into statements with dbgate-query-splitter (dialect-aware: quotes,
 * dollar-quoting, comments, BEGIN…END blocks), dropping pieces that hold only comments (a trailing
 * `-- end` would otherwise be sent to the database as an empty statement).
 */
import { splitQuery, postgreSplitterOptions, mysqlSplitterOptions } from 'dbgate-query-splitter';

export type SqlDialect = 'postgres' | 'mysql';

const OPTIONS = { postgres: postgreSplitterOptions, mysql: mysqlSplitterOptions } as const;

/** Leading whitespace, `-- …` line comments and `/* … *\/` block comments. */
const LEADING_COMMENTS = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*/;

export function isCommentOnly(statement: string): boolean {
  return statement.replace(LEADING_COMMENTS, '').length === 0;
}

export function splitSqlStatements(content: string, dialect: SqlDialect): string[] {
  return splitQuery(content, OPTIONS[dialect])
    .map((item) => (typeof item === 'string' ? item : item.text))
    .filter((statement) => !isCommentOnly(statement));
}

/**
 * The split of recent scripts, by dialect and content: the same script is executed again and again
 * (schedules, the instances-per-second bench), and splitting was ~1% of the event loop's time per
 * trivial run (dbgate-query-splitter scans the text character by character). Only short scripts are
 * kept, so the cache holds at most SPLIT_CACHE_ENTRIES × ~2 × SPLIT_CACHE_MAX_CHARS characters.
 */
const splitCache = new Map<string, readonly string[]>();
const SPLIT_CACHE_ENTRIES = 256;
const SPLIT_CACHE_MAX_CHARS = 4_096;

/** Splits a run's content; a splitter failure becomes the run's failure message instead of a throw. */
export function splitStatementsForRun(
  content: string,
  dialect: SqlDialect,
): { ok: true; statements: readonly string[] } | { ok: false; message: string } {
  const key = content.length <= SPLIT_CACHE_MAX_CHARS ? `${dialect}\u0000${content}` : undefined;
  const cached = key === undefined ? undefined : splitCache.get(key);
  if (cached !== undefined) return { ok: true, statements: cached };
  let statements: readonly string[];
  try {
    statements = Object.freeze(splitSqlStatements(content, dialect));
  } catch (error) {
    return { ok: false, message: `The SQL could not be split into statements: ${String(error)}` };
  }
  if (key !== undefined) {
    if (splitCache.size >= SPLIT_CACHE_ENTRIES) splitCache.clear();
    splitCache.set(key, statements);
  }
  return { ok: true, statements };
}
