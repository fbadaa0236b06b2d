/**
 * Shapes captured process output into the single Result a Shell/Python run reports
 * (docs/compatibility.md §4): `rows` are the output lines, `schema` `[{"output":"string"}]`, `rawResult` the text.
 */
import type { StatementResult } from '../domain/instance.js';

/** DataArts exposes the last 4,000 characters of a shell node's output; failures report the same tail. */
export const OUTPUT_TAIL_CHARS = 4000;

export function outputResult(
  text: string,
  truncated: boolean,
  durationSeconds: number,
  maxRows: number,
): StatementResult {
  const lines = text.length === 0 ? [] : text.replace(/\n$/, '').split('\n');
  const kept = lines.slice(0, maxRows);
  const result: StatementResult = {
    schema: [{ output: 'string' }],
    rows: kept.map((line) => [line]),
    rowCount: kept.length,
    duration: durationSeconds,
    message: '',
    rawResult: text,
  };
  if (truncated || kept.length < lines.length) result.truncated = true;
  return result;
}

/** Keeps the first `maxBytes` of a stream (for the result) and the last characters (for messages). */
export class OutputCapture {
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail = '';
  total = 0;

  constructor(private readonly maxBytes: number) {}

  add(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.headBytes < this.maxBytes) {
      const part = chunk.subarray(0, this.maxBytes - this.headBytes);
      this.head.push(part);
      this.headBytes += part.length;
    }
    this.tail = (this.tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
  }

  get text(): string {
    return Buffer.concat(this.head).toString('utf8');
  }

  get truncated(): boolean {
    return this.total > this.headBytes;
  }

  get lastChars(): string {
    return this.tail;
  }
}
