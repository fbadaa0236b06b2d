/**
 * One run's live log writer: the output chunks of a Shell/Python run (EngineRunContext.onOutput)
 * collect in memory and go to the store's InstanceLogStore as one row at most every
 * LOG_FLUSH_MS, or as soon as LOG_FLUSH_BYTES are waiting — never a write per chunk, and none at
 * all for a run without output. One write is in flight at a time, so rows land in order without
 * gaps. `close()` stores what is left; the run lifecycle awaits it before the settle, so a reader
 * that sees the instance terminal finds the whole log stored.
 *
 * A failed write (store unreachable or full) keeps the bytes and is retried with a growing delay:
 * the live log lags, the run is never failed for it. What still cannot be written at `close()` (one
 * more attempt, LOG_CLOSE_WAIT_MS at most) is dropped (logged): the log then ends early, output.log
 * and the result still have it.
 */
import type { Logger } from 'pino';
import type { InstanceLogStore } from '../store/store.js';

/** Longest a chunk waits in memory before it is written (while the store keeps up). */
export const LOG_FLUSH_MS = 250;
/** Bytes waiting that trigger a write at once. */
export const LOG_FLUSH_BYTES = 64 * 1024;
/** Largest row: a store that fell behind catches up in rows of at most this. */
const MAX_ROW_BYTES = 1024 * 1024;
/** Upper bound of the retry delay after failed writes. */
const RETRY_MAX_MS = 5_000;
/**
 * How long `close()` waits for the last writes: the settle waits for it, and a store that does
 * not answer must not hold the instance's end back for its whole statement deadline (twice).
 */
export const LOG_CLOSE_WAIT_MS = 2_000;

export class RunLogWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Offset of the next byte to store (= bytes stored so far). */
  private stored = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failures = 0;
  private closed = false;

  constructor(
    private readonly logs: Pick<InstanceLogStore, 'append'>,
    private readonly instanceId: string,
    private readonly log: Logger,
  ) {}

  /** One chunk of output, in arrival order. Synchronous and never throws. */
  append(chunk: Buffer): void {
    if (this.closed || chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.schedule(this.pendingBytes >= LOG_FLUSH_BYTES ? 0 : LOG_FLUSH_MS);
  }

  /** Bytes stored so far. */
  get storedBytes(): number {
    return this.stored;
  }

  /**
   * Stores what is left (one attempt per row) and stops, waiting at most LOG_CLOSE_WAIT_MS; never
   * rejects. A write still going on then may land after the settle.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const finish = async () => {
      await this.writing;
      if (this.pendingBytes > 0) await this.write();
    };
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([
      finish(),
      new Promise<void>((resolve) => (bound = setTimeout(resolve, LOG_CLOSE_WAIT_MS))),
    ]);
    clearTimeout(bound);
    if (this.pendingBytes > 0) {
      this.log.warn(
        { instanceId: this.instanceId, storedBytes: this.stored, pendingBytes: this.pendingBytes },
        'live log: the end of the output was not stored before the instance settled',
      );
    }
  }

  private schedule(ms: number): void {
    // A write in flight schedules the next one when it ends (see flush).
    if (this.writing || this.closed) return;
    if (this.timer !== undefined) {
      if (ms > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, ms);
  }

  private flush(): void {
    if (this.writing || this.closed) return;
    this.writing = this.write().finally(() => {
      this.writing = undefined;
      if (this.pendingBytes === 0) return;
      const delay =
        this.failures === 0
          ? this.pendingBytes >= LOG_FLUSH_BYTES
            ? 0
            : LOG_FLUSH_MS
          : Math.min(RETRY_MAX_MS, LOG_FLUSH_MS * 2 ** this.failures);
      this.schedule(delay);
    });
  }

  /** Writes the pending bytes as rows of at most MAX_ROW_BYTES; stops at the first failure. */
  private async write(): Promise<void> {
    while (this.pendingBytes > 0) {
      const taken = this.pending.length;
      const data = taken === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      const row = data.subarray(0, MAX_ROW_BYTES);
      try {
        await this.logs.append(this.instanceId, this.stored, row);
      } catch (error) {
        if (this.failures === 0) {
          this.log.warn({ err: error, instanceId: this.instanceId }, 'live log: a write failed, retrying');
        }
        this.failures += 1;
        // Keep the bytes (concatenated once) in front of what arrived meanwhile.
        this.pending = [data, ...this.pending.slice(taken)];
        return;
      }
      this.failures = 0;
      this.stored += row.length;
      const rest = data.subarray(row.length);
      // Chunks appended while the row was written stay behind what is left of this batch.
      this.pending = rest.length > 0 ? [rest, ...this.pending.slice(taken)] : this.pending.slice(taken);
      this.pendingBytes -= row.length;
    }
  }
}
