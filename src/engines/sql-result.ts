/**
 * Shapes one SQL statement's result the way the API promises it (docs/compatibility.md §4), for engines that
 * receive rows one at a time from a network driver: schema as ordered single-key `{"column":"type"}`
 * maps, rows as arrays with JSON numbers for numeric columns and `null` for NULL, at most
 * `maxRows` rows kept (`truncated` set when more arrived), and at most the run's `ResultByteBudget`
 * of value bytes kept across all its statements. Every SQL engine counts through these two classes,
 * so the bound on what an instance holds in memory and writes to the store lives in one place.
 */
import type { StatementResult } from '../domain/instance.js';
import type { StatementSpill } from './result-spill.js';

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

/** `maxResultBytes` when the limits do not say: the Shell output limit (DataArts: 30 MB). */
export const DEFAULT_MAX_RESULT_BYTES = 30 * 1024 * 1024;

/**
 * The bytes of result values one instance may keep, shared by all its statements: the instance's
 * result JSON (held in memory, then written to the store) stays near this size however many
 * statements or rows the script produces. Sizes are the values' JSON length, estimated cheaply.
 */
export class ResultByteBudget {
  private used = 0;

  constructor(readonly maxBytes: number) {}

  /** Refuses everything from now on (a row was refused before it was even complete). */
  exhaust(): void {
    this.used = this.maxBytes;
  }

  /** Bytes still free: a single value longer than this cannot be kept. */
  get remaining(): number {
    return this.maxBytes - this.used;
  }

  /** Takes `bytes` from the budget if they fit; a refused request takes nothing. */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.maxBytes) {
      // Once one row did not fit, no later (smaller) row is kept either: a result is a prefix.
      this.used = this.maxBytes;
      return false;
    }
    this.used += bytes;
    return true;
  }
}

/**
 * Roughly the length of a value in the result JSON (strings count their UTF-16 length: escapes can
 * make the JSON longer, multi-byte characters make the UTF-8 bytes longer, neither by an unbounded
 * factor that matters for a memory bound).
 */
export function estimatedJsonBytes(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return value.length + 2;
    case 'number':
    case 'bigint':
    case 'boolean':
      return String(value).length;
    case 'undefined':
      return 4;
    case 'object': {
      if (value === null) return 4;
      try {
        return (JSON.stringify(value) ?? '').length;
      } catch {
        // Unserialisable (a cycle): the store could not write it either; count it as large.
        return Number.MAX_SAFE_INTEGER;
      }
    }
    default:
      // Functions and symbols do not appear in driver rows; JSON drops them.
      return 4;
  }
}

/**
 * Collects the rows of one statement as they arrive, keeping the first `maxRows` and no more than
 * the run's byte budget allows. With a spill (result-spill.ts), the first row past either cap opens
 * the statement's spill, which then gets every row — the kept ones first — until the statement
 * ends or the spill's own limit is reached; the kept rows and `truncated` are the same either way.
 */
export class StatementResultBuilder {
  private readonly started = performance.now();
  private columns: readonly ResultColumn[] = [];
  private readonly rows: unknown[][] = [];
  private truncated = false;
  private spill: StatementSpill | undefined;
  /** The spill stopped before the statement's last row (its limit, or a failed write). */
  private spillTruncated = false;

  /** @param openSpill opens this statement's spill; absent: rows past the caps are dropped. */
  constructor(
    private readonly maxRows: number,
    private readonly budget: ResultByteBudget,
    private readonly openSpill?: () => StatementSpill,
  ) {}

  get hasColumns(): boolean {
    return this.columns.length > 0;
  }

  /** Bytes the run's budget still has: a single value longer than this cannot be kept. */
  get budgetRemaining(): number {
    return this.budget.remaining;
  }

  setColumns(columns: readonly ResultColumn[]): void {
    this.columns = columns;
  }

  /**
   * Keeps the row if it fits under both caps; otherwise drops it and marks the result truncated.
   * Returns whether further rows could still be kept: `false` tells a streaming engine to stop
   * reading (and end the query where the driver allows), since every later row is dropped anyway.
   */
  addRow(values: readonly unknown[]): boolean {
    if (this.truncated && this.spill === undefined) return false;
    const row = values.map((value, i) =>
      value === null || value === undefined ? null : this.columns[i]?.numeric ? toJsonNumber(value) : value,
    );
    if (!this.truncated) {
      if (this.rows.length < this.maxRows && this.budget.tryTake(rowBytes(row))) {
        this.rows.push(row);
        return true;
      }
      this.truncated = true;
      if (!this.startSpill()) return false;
    }
    return this.spillRow(row);
  }

  /**
   * Bytes of this statement's rows written to its spill so far: an engine that hands over many
   * rows in one synchronous stretch (DuckDB's chunks of up to 2,048 rows) yields to the event loop
   * every so many bytes, so timers (lease renewals, the stop) are not held up by the writes.
   */
  get spilledBytes(): number {
    return this.spill?.bytesWritten ?? 0;
  }

  /**
   * For engines that refuse a row before it is complete (one value longer than the budget left):
   * the row is dropped, the result marked truncated, and later rows are refused (a spill ends
   * there too, marked truncated: it never skips a row).
   */
  markTruncated(): void {
    this.truncated = true;
    this.budget.exhaust();
    if (this.spill) this.endSpill();
  }

  /** The first row past the caps: opens the spill and writes the kept rows to it. */
  private startSpill(): boolean {
    if (!this.openSpill) return false;
    try {
      this.spill = this.openSpill();
    } catch {
      // No spill (the directory cannot be written): the statement is capped as without one.
      this.spillTruncated = true;
      return false;
    }
    for (const kept of this.rows) if (!this.spillRow(kept)) return false;
    return true;
  }

  private spillRow(row: readonly unknown[]): boolean {
    let written: boolean;
    try {
      written = this.spill?.append(row) ?? false;
    } catch {
      written = false;
    }
    if (!written) this.endSpill();
    return written;
  }

  /** The spill's limit was reached or a write failed: it keeps the rows it has, marked truncated. */
  private endSpill(): void {
    this.spillTruncated = true;
    this.finishSpill();
  }

  /**
   * Completes the spill (a no-op without one) once the statement has returned all its rows. Called
   * by the statement loop, not by `build`: a statement that returns early because the run was
   * stopped (DuckDB ends an interrupted stream like a finished one) must not leave a spill that
   * looks complete.
   */
  finishSpill(): void {
    const spill = this.spill;
    if (!spill) return;
    this.spill = undefined;
    try {
      spill.finish(this.schema(), this.spillTruncated);
    } catch {
      spill.abandon();
    }
  }

  /** The statement did not complete (failed, stopped): its partial spill is dropped. */
  abandonSpill(): void {
    const spill = this.spill;
    this.spill = undefined;
    spill?.abandon();
  }

  private schema(): Record<string, string>[] {
    return this.columns.map((column) => ({ [column.name]: column.type }));
  }

  build(message = ''): StatementResult {
    const result: StatementResult = {
      schema: this.schema(),
      rows: this.rows,
      rowCount: this.rows.length,
      duration: (performance.now() - this.started) / 1000,
      message,
    };
    if (this.truncated) result.truncated = true;
    return result;
  }
}

/** Brackets and commas of the row array, then each value. */
function rowBytes(row: readonly unknown[]): number {
  let bytes = 2 + row.length;
  for (const value of row) bytes += estimatedJsonBytes(value);
  return bytes;
}

/** The result entry of the statement that failed: no rows, the database's message. */
export function errorResult(message: string, started: number): StatementResult {
  return { schema: [], rows: [], rowCount: 0, duration: (performance.now() - started) / 1000, message };
}
