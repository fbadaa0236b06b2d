/**
 * Result spills as files: `<root>/<instanceId>/<n>.jsonl` holds statement n's rows, one JSON array
 * per line, and `<n>.meta.json` — written last, by rename, once the statement completed — its
 * schema, row count, whether the spill limit cut it short, and a sparse index: the byte offset of
 * every `INDEX_STRIDE`-th row, so a page seeks to the nearest indexed row and reads at most
 * `INDEX_STRIDE - 1` rows before its first one, however deep the offset.
 *
 * `root` is `<dataDir>/results` with the SQLite store, or the configured `resultSpillDirectory`
 * (a directory every node of a PostgreSQL store mounts) so any node answers for any instance.
 *
 * Writes go through a 1 MiB buffer and `writeSync` (see result-spill.ts for why synchronous).
 */
import {
  closeSync,
  createReadStream,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ResultSpills, RunResultSpill, SpilledStatement, StatementSpill } from '../result-spill.js';

/** Rows between two entries of the offset index: a page reads at most this many rows it skips. */
export const INDEX_STRIDE = 1024;
const BUFFER_BYTES = 1024 * 1024;
/** Instance ids are server-generated UUIDs; nothing else in the root is touched. */
const INSTANCE_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NEWLINE = 0x0a;

interface SpillMeta extends SpilledStatement {
  readonly version: 1;
  readonly bytes: number;
  readonly stride: number;
  /** offsets[k] = byte offset of row k·stride. */
  readonly offsets: readonly number[];
}

export class FileResultSpills implements ResultSpills {
  /**
   * @param root where the per-instance folders live (created on the first spill).
   * @param maxBytesPerInstance bytes of rows one instance may spill across its statements.
   */
  constructor(
    private readonly root: string,
    private readonly maxBytesPerInstance: number,
  ) {}

  forRun(instanceId: string): RunResultSpill {
    const folder = this.folderOf(instanceId);
    const budget = { left: this.maxBytesPerInstance };
    return {
      open: (index) => {
        mkdirSync(folder, { recursive: true, mode: 0o700 });
        return new FileStatementSpill(join(folder, String(index)), budget);
      },
    };
  }

  async describe(instanceId: string, index: number): Promise<SpilledStatement | undefined> {
    const meta = await this.meta(instanceId, index);
    return meta && { schema: meta.schema, rowCount: meta.rowCount, truncated: meta.truncated };
  }

  async page(instanceId: string, index: number, offset: number, limit: number): Promise<string[]> {
    const meta = await this.meta(instanceId, index);
    if (!meta || offset >= meta.rowCount || limit <= 0) return [];
    const slot = Math.min(Math.floor(offset / meta.stride), meta.offsets.length - 1);
    let skip = offset - slot * meta.stride;
    const rows: string[] = [];
    for await (const batch of readLines(this.dataFile(instanceId, index), meta.offsets[slot] ?? 0)) {
      const from = Math.min(skip, batch.length);
      skip -= from;
      for (let i = from; i < batch.length && rows.length < limit; i++) rows.push(batch[i]!);
      if (rows.length >= limit) break;
    }
    return rows;
  }

  async *lines(instanceId: string, index: number): AsyncIterable<readonly string[]> {
    if (!(await this.meta(instanceId, index))) return;
    yield* readLines(this.dataFile(instanceId, index), 0);
  }

  jsonLines(instanceId: string, index: number): Readable {
    return createReadStream(this.dataFile(instanceId, index), { highWaterMark: 256 * 1024 });
  }

  async ids(): Promise<string[]> {
    const entries = await readdir(this.root).catch(() => [] as string[]);
    return entries.filter((name) => INSTANCE_ID.test(name));
  }

  async discard(instanceIds: readonly string[]): Promise<void> {
    for (const id of instanceIds) {
      if (INSTANCE_ID.test(id)) await rm(this.folderOf(id), { recursive: true, force: true });
    }
  }

  private folderOf(instanceId: string): string {
    if (!INSTANCE_ID.test(instanceId)) throw new Error(`not an instance id: ${instanceId}`);
    return join(this.root, instanceId);
  }

  private dataFile(instanceId: string, index: number): string {
    return join(this.folderOf(instanceId), `${index}.jsonl`);
  }

  private async meta(instanceId: string, index: number): Promise<SpillMeta | undefined> {
    if (!INSTANCE_ID.test(instanceId) || !Number.isSafeInteger(index) || index < 0) return undefined;
    let text: string;
    try {
      text = await readFile(join(this.folderOf(instanceId), `${index}.meta.json`), 'utf8');
    } catch {
      return undefined;
    }
    const meta = JSON.parse(text) as SpillMeta;
    return meta.version === 1 ? meta : undefined;
  }
}

/** One statement's `.jsonl` file while it is written. */
class FileStatementSpill implements StatementSpill {
  private fd: number | undefined;
  private readonly buffer = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  /** Bytes of the file before the buffer. */
  private flushed = 0;
  private rows = 0;
  private readonly offsets: number[] = [];

  get bytesWritten(): number {
    return this.flushed + this.used;
  }

  constructor(
    private readonly base: string,
    private readonly budget: { left: number },
  ) {
    this.fd = openSync(`${base}.jsonl`, 'w', 0o600);
  }

  append(row: readonly unknown[]): boolean {
    const fd = this.fd;
    if (fd === undefined) return false;
    const line = JSON.stringify(row);
    // At most 3 bytes per UTF-16 unit, plus the newline: the bound decides without encoding twice.
    const most = line.length * 3 + 1;
    if (most > this.budget.left && Buffer.byteLength(line) + 1 > this.budget.left) return false;
    if (this.rows % INDEX_STRIDE === 0) this.offsets.push(this.flushed + this.used);
    let bytes: number;
    if (most <= BUFFER_BYTES - this.used) {
      bytes = this.buffer.write(line, this.used, 'utf8');
      this.buffer[this.used + bytes] = NEWLINE;
      bytes += 1;
      this.used += bytes;
    } else {
      this.flush(fd);
      const encoded = Buffer.from(`${line}\n`, 'utf8');
      if (encoded.length <= BUFFER_BYTES) {
        encoded.copy(this.buffer, 0);
        this.used = encoded.length;
      } else {
        writeAll(fd, encoded, encoded.length);
        this.flushed += encoded.length;
      }
      bytes = encoded.length;
    }
    this.budget.left -= bytes;
    this.rows++;
    return true;
  }

  finish(schema: readonly Record<string, string>[], truncated: boolean): void {
    const fd = this.fd;
    if (fd === undefined) return;
    try {
      this.flush(fd);
    } finally {
      closeSync(fd);
      this.fd = undefined;
    }
    const meta: SpillMeta = {
      version: 1,
      schema,
      rowCount: this.rows,
      truncated,
      bytes: this.flushed,
      stride: INDEX_STRIDE,
      offsets: this.offsets.length > 0 ? this.offsets : [0],
    };
    // Readers look for the meta file only: it appears whole, once the rows are all written.
    writeFileSync(`${this.base}.meta.tmp`, JSON.stringify(meta), { mode: 0o600 });
    renameSync(`${this.base}.meta.tmp`, `${this.base}.meta.json`);
  }

  abandon(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    rmSync(`${this.base}.jsonl`, { force: true });
  }

  private flush(fd: number): void {
    if (this.used === 0) return;
    writeAll(fd, this.buffer, this.used);
    this.flushed += this.used;
    this.used = 0;
  }
}

function writeAll(fd: number, buffer: Buffer, length: number): void {
  let written = 0;
  while (written < length) written += writeSync(fd, buffer, written, length - written);
}

/**
 * The lines of a file from byte `start`, without their `\n`, read as the consumer pulls: one batch
 * per chunk read (an await per line would cost more than the line).
 */
async function* readLines(file: string, start: number): AsyncGenerator<string[]> {
  // 64 KiB reads: a batch joined into one string for parsing stays a regular V8 object (see
  // result-service.ts, CSV_CHUNK_CHARS).
  const stream = createReadStream(file, { start, highWaterMark: 64 * 1024 });
  let rest: Buffer | undefined;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let from = 0;
      let data = chunk;
      if (rest) {
        data = Buffer.concat([rest, chunk]);
        rest = undefined;
      }
      const batch: string[] = [];
      for (;;) {
        const end = data.indexOf(NEWLINE, from);
        if (end < 0) break;
        batch.push(data.toString('utf8', from, end));
        from = end + 1;
      }
      if (from < data.length) rest = data.subarray(from);
      if (batch.length > 0) yield batch;
    }
    if (rest && rest.length > 0) yield [rest.toString('utf8')];
  } finally {
    stream.destroy();
  }
}
