/**
 * The output of one Shell/PYTHON run, for the local and the SSH engine alike: every chunk (stdout
 * and stderr interleaved as they arrive) goes to `<runDir>/output.log`, the first bytes into the
 * run's Result, the last characters into failure messages, and the run is ended once the output
 * passes `maxOutputBytes` (the bytes past the limit are neither logged nor kept).
 *
 * A failed write of output.log (a full disk, a removed directory) must fail the run, not crash the
 * server: the stream's 'error' is kept and reported through `onProblem`, like the limit. When the
 * disk is full, output.log is truncated to a one-line note: the run that filled the disk would
 * otherwise keep it full, and with it the store (its failure could not even be recorded) and every
 * other run. Its first bytes and its last characters are still in the instance's result.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatementResult } from '../domain/instance.js';
import { isStorageFull } from '../domain/storage-full.js';
import type { EngineRunRequest } from './engine.js';
import { OutputCapture, outputResult } from './output-result.js';

/** Why the output ended the run: too much of it, or output.log could not be written. */
export type OutputProblem = 'output-limit' | 'log-failed';

/** `65536` ⇒ `64 KiB`, `31457280` ⇒ `30 MiB`, `100000` ⇒ `100000 bytes`: exact, never "0 MB". */
export function formatBytes(bytes: number): string {
  const KiB = 1024;
  const MiB = KiB * KiB;
  const GiB = MiB * KiB;
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} bytes`;
}

export class ProcessOutput {
  private readonly capture: OutputCapture;
  private readonly log: WriteStream;
  private logError: Error | undefined;
  private problem: OutputProblem | undefined;
  private listener: ((problem: OutputProblem) => void) | undefined;
  private readonly started = performance.now();
  private readonly logFile: string;
  /** Frees a full disk of this run's output.log (see the header); close() waits for it. */
  private released: Promise<void> = Promise.resolve();

  /**
   * Creates the run directory and starts output.log. `onOutput` (the context's live log) gets
   * every chunk output.log gets, even after output.log itself failed.
   */
  static async open(
    request: Pick<EngineRunRequest, 'runDir' | 'limits'>,
    onOutput?: (chunk: Buffer) => void,
  ): Promise<ProcessOutput> {
    await mkdir(request.runDir, { recursive: true });
    return new ProcessOutput(request, onOutput);
  }

  private constructor(
    private readonly request: Pick<EngineRunRequest, 'runDir' | 'limits'>,
    private readonly onOutput: ((chunk: Buffer) => void) | undefined,
  ) {
    const { maxResultOutputBytes, maxOutputBytes } = request.limits;
    this.capture = new OutputCapture(Math.min(maxResultOutputBytes, maxOutputBytes));
    this.logFile = join(request.runDir, 'output.log');
    this.log = createWriteStream(this.logFile, { flags: 'w', mode: 0o600 });
    this.log.on('error', (error) => {
      if (this.logError !== undefined) return;
      this.logError = error;
      if (isStorageFull(error)) this.released = this.releaseFullDisk();
      this.report('log-failed');
    });
  }

  /**
   * `listener` is called once, the first time the output exceeds the limit or output.log fails
   * (at once if that already happened): the engine then ends the run.
   */
  onEnded(listener: (problem: OutputProblem) => void): void {
    this.listener = listener;
    if (this.problem !== undefined) listener(this.problem);
  }

  /** One chunk of the run's output, in arrival order. */
  add(chunk: Buffer): void {
    if (this.problem === 'output-limit') return;
    this.capture.add(chunk);
    if (this.capture.total > this.request.limits.maxOutputBytes) {
      this.report('output-limit');
      return;
    }
    if (this.logError === undefined) this.log.write(chunk);
    this.onOutput?.(chunk);
  }

  /** Bytes seen so far (including the chunk that passed the limit). */
  get total(): number {
    return this.capture.total;
  }

  /** The first problem that ended the run, if any. */
  get ended(): OutputProblem | undefined {
    return this.problem;
  }

  /** The last characters of the output, for failure messages. */
  get tail(): string {
    return this.capture.lastChars.trimEnd();
  }

  /** Flushes and closes output.log; never rejects (a write error is reported as `log-failed`). */
  async close(): Promise<void> {
    if (!this.log.destroyed && !this.log.closed) {
      await new Promise<void>((resolve) => {
        this.log.once('close', resolve);
        this.log.end();
      });
    }
    await this.released;
  }

  /** The run's single Result: the output lines, truncated past the result cap or the limit. */
  result(): StatementResult {
    const duration = (performance.now() - this.started) / 1000;
    const { capture } = this;
    const result = outputResult(capture.text, capture.truncated, duration, this.request.limits.maxResultRows);
    if (this.problem === 'output-limit') result.truncated = true;
    return result;
  }

  /** The failure reason of a run this output ended: too much output, a full disk, or another log failure. */
  problemReason(): 'output_limit' | 'storage_full' | 'engine_error' {
    if (this.problem !== 'log-failed') return 'output_limit';
    return isStorageFull(this.logError) ? 'storage_full' : 'engine_error';
  }

  /** The failure message for `ended`: the limit with its unit, or why output.log failed. */
  problemMessage(): string {
    if (this.problem === 'log-failed') {
      const cause = this.logError?.message ?? 'unknown error';
      if (isStorageFull(this.logError)) {
        return `The script output could not be written to output.log (${cause}): the server's storage is full; the run was ended and its output.log truncated to free the space.`;
      }
      return `The script output could not be written to output.log (${cause}); the run was ended.`;
    }
    return `The script output exceeds the ${formatBytes(this.request.limits.maxOutputBytes)} limit; the run was ended.`;
  }

  /**
   * Truncates output.log (the stream has closed its descriptor on the error) and leaves a note
   * there; either step may fail again (a device, a directory gone), which changes nothing.
   */
  private async releaseFullDisk(): Promise<void> {
    await truncate(this.logFile, 0).catch(() => undefined);
    const note = `opendlf: output.log truncated after ${this.total} bytes of output: the disk was full (${this.logError?.message ?? ''}). The first bytes and the last characters are in the instance's result.\n`;
    await writeFile(this.logFile, note, { flag: 'w', mode: 0o600 }).catch(() => undefined);
  }

  private report(problem: OutputProblem): void {
    if (this.problem !== undefined) return;
    this.problem = problem;
    this.listener?.(problem);
  }
}
