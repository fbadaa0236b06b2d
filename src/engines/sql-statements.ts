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

/** Splits a run's content; a splitter failure becomes the run's failure message instead of a throw. */
export function splitStatementsForRun(
  content: string,
  dialect: SqlDialect,
): { ok: true; statements: string[] } | { ok: false; message: string } {
  try {
    return { ok: true, statements: splitSqlStatements(content, dialect) };
  } catch (error) {
    return { ok: false, message: `The SQL could not be split into statements: ${String(error)}` };
  }
}
