/**
 * Shapes one SQL statement's result the way the API promises it (DIGEST §6.2), for engines that
 * receive rows one at a time from a network driver: schema as ordered single-key `{"column":"type"}`
 * maps, rows as arrays with JSON numbers for numeric columns and `null` for NULL, at most
 * `maxRows` rows kept (`truncated` set when more arrived).
 */
import type { StatementResult } from '../domain/instance.js';

export interface ResultColumn {
  readonly name: string;
  /** The database's own type name, shown as is in `schema`. */
  readonly type: string;
  /** Values of this column become JSON numbers (drivers deliver exact types as text). */
  readonly numeric: boolean;
}

/**
 * A numeric column's value as a JSON number. Text that is not a finite number (`NaN`, `Infinity`,
 * which NUMERIC and floating-point columns can hold) stays text: JSON has no spelling for it and
 * `JSON.stringify` would silently turn it into `null`. Integers beyond 2^53 lose precision, as they
 * do in the DuckDB engine; the API promises numbers.
 */
export function toJsonNumber(value: unknown): unknown {
  if (typeof value === 'string') {
    const number = Number(value);
    return value.trim() !== '' && Number.isFinite(number) ? number : value;
  }
  if (typeof value === 'bigint') return Number(value);
  return value;
}

/** Collects the rows of one statement as they arrive, keeping the first `maxRows`. */
export class StatementResultBuilder {
  private readonly started = performance.now();
  private columns: readonly ResultColumn[] = [];
  private readonly rows: unknown[][] = [];
  private truncated = false;

  constructor(private readonly maxRows: number) {}

  get hasColumns(): boolean {
    return this.columns.length > 0;
  }

  setColumns(columns: readonly ResultColumn[]): void {
    this.columns = columns;
  }

  /** Rows past the cap are counted as dropped, not kept: memory stays bounded by `maxRows`. */
  addRow(values: readonly unknown[]): void {
    if (this.rows.length >= this.maxRows) {
      this.truncated = true;
      return;
    }
    this.rows.push(
      values.map((value, i) =>
        value === null || value === undefined ? null : this.columns[i]?.numeric ? toJsonNumber(value) : value,
      ),
    );
  }

  build(message = ''): StatementResult {
    const result: StatementResult = {
      schema: this.columns.map((column) => ({ [column.name]: column.type })),
      rows: this.rows,
      rowCount: this.rows.length,
      duration: (performance.now() - this.started) / 1000,
      message,
    };
    if (this.truncated) result.truncated = true;
    return result;
  }
}

/** The result entry of the statement that failed: no rows, the database's message. */
export function errorResult(message: string, started: number): StatementResult {
  return { schema: [], rows: [], rowCount: 0, duration: (performance.now() - started) / 1000, message };
}
