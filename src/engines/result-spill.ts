/**
 * The result spill port: where the rows of a SQL statement go once they outgrow the inline caps of
 * the instance row (`maxResultRows`, `maxResultBytes`), so a result of any size can be paged and
 * exported without ever sitting in memory. The instance row keeps its capped inline rows (the
 * documented result, `truncated: true`); the spill keeps every row of the statement, the inline
 * ones included.
 *
 * Writing is synchronous on purpose: an engine hands rows over from its driver's synchronous row
 * callbacks, and a write that returns only once the bytes are with the operating system is the
 * backpressure — the driver's socket (or DuckDB's next chunk) is not read while the spill is
 * behind, so memory stays flat whatever the result's size.
 *
 * Rows cross the reading side as their JSON text (one JSON array per row, the `rows` form of the
 * API), so pages and JSON Lines exports are served without parsing a value.
 */
import type { Readable } from 'node:stream';

/** One statement's spill while it is written (opened by the statement's result builder). */
export interface StatementSpill {
  /**
   * Writes one row, its values already in their API form. Returns false when the instance's spill
   * limit is reached: the row was not written and no later row will be (the spill is truncated).
   * Throws when the write fails (a full disk): the caller stops spilling.
   */
  append(row: readonly unknown[]): boolean;
  /** Completes the spill with the statement's schema: only a finished spill can be read. */
  finish(schema: readonly Record<string, string>[], truncated: boolean): void;
  /** Drops the spill of a statement that did not complete (failed, stopped). */
  abandon(): void;
  /** Bytes of rows written so far (for engines that yield to the event loop every so many). */
  readonly bytesWritten: number;
}

/** The spill of one run: at most one per statement, opened only when a statement outgrows the caps. */
export interface RunResultSpill {
  /** @param index the statement's position in the instance's `results` (0-based). */
  open(index: number): StatementSpill;
}

/** What is known of a finished statement spill. */
export interface SpilledStatement {
  readonly schema: readonly Record<string, string>[];
  /** Rows in the spill (every row of the statement unless `truncated`). */
  readonly rowCount: number;
  /** The instance's spill limit (`maxSpillBytes`) ended the spill before the statement's last row. */
  readonly truncated: boolean;
}

/** The spills of every instance: written by runs, read by the results API, removed with instances. */
export interface ResultSpills {
  forRun(instanceId: string): RunResultSpill;
  /** The finished spill of statement `index`, or undefined when there is none. */
  describe(instanceId: string, index: number): Promise<SpilledStatement | undefined>;
  /** Rows `offset … offset+limit-1` of a finished spill, each as its JSON array text. */
  page(instanceId: string, index: number, offset: number, limit: number): Promise<string[]>;
  /** Every row of a finished spill, each as its JSON array text, in batches read as the consumer pulls. */
  lines(instanceId: string, index: number): AsyncIterable<readonly string[]>;
  /** The whole spill as JSON Lines bytes (one JSON array and `\n` per row). */
  jsonLines(instanceId: string, index: number): Readable;
  /** Ids of the instances that have spills here (for removing those of deleted instances). */
  ids(): Promise<string[]>;
  discard(instanceIds: readonly string[]): Promise<void>;
}
