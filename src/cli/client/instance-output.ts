/**
 * Printing an instance's results: one table per SQL statement, the output text of a Shell/Python
 * run, the whole instance as JSON, or one statement as CSV. Shared by `run --wait` and `result`.
 */
import type { InstanceResult, StatementResult } from '../../client/api-client.js';
import { CliError, EXIT } from './cli-error.js';
import { note, paint, toCsv, toTable, type OutputFormat } from './output.js';

export const columnsOf = (result: StatementResult): string[] =>
  result.schema.map((column) => Object.keys(column)[0] ?? '');

/** Shell/Python results are one `output` column holding the lines; `rawResult` is the text. */
export const isOutputResult = (result: StatementResult): boolean =>
  result.rawResult !== undefined && columnsOf(result).join() === 'output';

/**
 * The statement a CSV (or a single-statement view) shows: `--statement n` (1-based), else the only
 * one with columns. Several candidates without `--statement` is a usage error, never a guess.
 */
export function chooseStatement(instance: InstanceResult, statement: number | undefined): number {
  const results = instance.results;
  if (statement !== undefined) {
    if (statement < 1 || statement > results.length) {
      throw new CliError(
        EXIT.usage,
        `--statement ${statement} is out of range: the instance has ${results.length} result(s)`,
      );
    }
    return statement - 1;
  }
  const withColumns = results.flatMap((result, index) => (result.schema.length > 0 ? [index] : []));
  if (withColumns.length === 1) return withColumns[0] ?? 0;
  if (results.length === 1) return 0;
  if (results.length === 0) throw new CliError(EXIT.usage, 'the instance has no results');
  throw new CliError(
    EXIT.usage,
    `the instance has ${results.length} statement results; choose one with --statement <1-${results.length}>`,
  );
}

/** Writes the results in the chosen format; notes (row counts, truncation) go to stderr. */
export function printInstanceResults(
  instance: InstanceResult,
  format: OutputFormat,
  options: { statement?: number; outputAlreadyShown?: boolean } = {},
): void {
  if (format === 'json') {
    const body =
      options.statement === undefined
        ? instance
        : instance.results[chooseStatement(instance, options.statement)];
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  if (format === 'csv') {
    const result = instance.results[chooseStatement(instance, options.statement)];
    if (result === undefined) return;
    if (result.truncated)
      note('note: this result was truncated by the server; `opendlf result` exports it whole');
    process.stdout.write(toCsv(columnsOf(result), result.rows));
    return;
  }
  const indexes =
    options.statement === undefined
      ? instance.results.map((_, index) => index)
      : [chooseStatement(instance, options.statement)];
  for (const index of indexes) {
    const result = instance.results[index];
    if (result === undefined) continue;
    if (isOutputResult(result)) {
      if (options.outputAlreadyShown) continue;
      const text = result.rawResult ?? '';
      process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
      if (result.truncated) note('note: output truncated by the server');
      continue;
    }
    const label = `statement ${index + 1}: ${result.rowCount} row${result.rowCount === 1 ? '' : 's'} (${formatSeconds(result.duration)} s)`;
    process.stdout.write(`${paint(process.stdout, 'dim', label)}\n`);
    if (result.schema.length > 0)
      process.stdout.write(toTable(process.stdout, columnsOf(result), result.rows));
    else if (result.message) process.stdout.write(`${result.message}\n`);
    if (result.truncated)
      note(`note: statement ${index + 1} was truncated by the server; \`opendlf result\` exports it whole`);
  }
}

/** The one-line summary of a settled instance, e.g. `FAILED (STOPPED): The script instance is stopped.` */
export function statusLine(
  instance: InstanceResult | { status: string; detailedStatus?: string; message?: string },
): string {
  const detail =
    instance.detailedStatus !== undefined && instance.detailedStatus !== instance.status
      ? ` (${instance.detailedStatus})`
      : '';
  const message = instance.status === 'FAILED' && instance.message ? `: ${firstLine(instance.message)}` : '';
  return `${instance.status}${detail}${message}`;
}

function firstLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Durations come as float seconds (`0.0037302479`); milliseconds are enough for a person. */
function formatSeconds(seconds: number): string {
  return Number.isFinite(seconds) ? seconds.toFixed(3) : String(seconds);
}
