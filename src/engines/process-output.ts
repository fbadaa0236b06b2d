/**
 * The output of one Shell/PYTHON run, for the local and the SSH engine alike: every chunk (stdout
 * and stderr interleaved as they arrive) goes to `<runDir>/output.log`, the first bytes into the
 * run's Result, the last characters into failure messages, and the run is ended once the output
 * passes `maxOutputBytes` (the bytes past the limit are neither logged nor kept).
 *
 * A failed write of output.log (a full disk, a removed directory) must fail the run, not crash the
 * server: the stream's 'error' is kept and reported through `onProblem`, like the limit.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatementResult } from '../domain/instance.js';
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

  /** Creates the run directory and starts output.log. */
  static async open(request: Pick<EngineRunRequest, 'runDir' | 'limits'>): Promise<ProcessOutput> {
    await mkdir(request.runDir, { recursive: true });
    return new ProcessOutput(request);
  }

  private constructor(private readonly request: Pick<EngineRunRequest, 'runDir' | 'limits'>) {
    const { maxResultOutputBytes, maxOutputBytes } = request.limits;
    this.capture = new OutputCapture(Math.min(maxResultOutputBytes, maxOutputBytes));
    this.log = createWriteStream(join(request.runDir, 'output.log'), { flags: 'w', mode: 0o600 });
    this.log.on('error', (error) => {
      this.logError ??= error;
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
  close(): Promise<void> {
    if (this.log.destroyed || this.log.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.log.once('close', resolve);
      this.log.end();
    });
  }

  /** The run's single Result: the output lines, truncated past the result cap or the limit. */
  result(): StatementResult {
    const duration = (performance.now() - this.started) / 1000;
    const { capture } = this;
    const result = outputResult(capture.text, capture.truncated, duration, this.request.limits.maxResultRows);
    if (this.problem === 'output-limit') result.truncated = true;
    return result;
  }

  /** The failure message for `ended`: the limit with its unit, or why output.log failed. */
  /** The failure reason of a run this output ended: too much output, or output.log failing us. */
  problemReason(): 'output_limit' | 'engine_error' {
    return this.problem === 'log-failed' ? 'engine_error' : 'output_limit';
  }

  problemMessage(): string {
    if (this.problem === 'log-failed') {
      return `The script output could not be written to output.log (${this.logError?.message ?? 'unknown error'}); the run was ended.`;
    }
    return `The script output exceeds the ${formatBytes(this.request.limits.maxOutputBytes)} limit; the run was ended.`;
  }

  private report(problem: OutputProblem): void {
    if (this.problem !== undefined) return;
    this.problem = problem;
    this.listener?.(problem);
  }
}
