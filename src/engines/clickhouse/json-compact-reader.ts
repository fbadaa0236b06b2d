/**
 * Reads a ClickHouse HTTP response body as it streams in, one chunk at a time, so a huge result is
 * never held in memory: `meta` becomes the column list, each element of `data` becomes one row the
 * moment its text is complete, and the reader stops as soon as its sink wants no more rows.
 *
 * It scans the JSON structure itself (strings, escapes, nesting) rather than relying on how the
 * server lays the document out in lines, and only `JSON.parse`s one row at a time.
 *
 * Two kinds of body are not a JSON document:
 * - an exception raised after the server already sent `200 OK` and part of the result: ClickHouse
 *   then appends `Code: 395, e.displayText() = DB::Exception: …` to the body. Any text where the
 *   document's structure does not allow it is kept (bounded) and reported by `end()` as the failure;
 * - a statement with its own `FORMAT` clause (TSV, CSV, Pretty …): its body does not start with
 *   `{`, so each line becomes a row of a single String column named `result`.
 */

export interface ResultMeta {
  readonly name: string;
  readonly type: string;
}

export interface JsonCompactSink {
  columns(columns: readonly ResultMeta[]): void;
  /** One row; returns false when no more rows are wanted (the caller then stops reading). */
  row(values: readonly unknown[]): boolean;
  /** A row's text grew past `maxRowChars` before it ended: the reader has stopped (nothing more is read). */
  rowTooLarge?(): void;
}

/** Bound on the text kept of a failure appended to the body (an exception message is far shorter). */
const MAX_FAILURE_CHARS = 8_192;
/** Column of a body in another format than JSON (the statement named its own FORMAT). */
const TEXT_COLUMN: readonly ResultMeta[] = [{ name: 'result', type: 'String' }];

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isValueEnd = (c: number) => c === 0x2c || c === 0x5d || c === 0x7d || isSpace(c);

/** Finds the end of one JSON value across chunks and keeps its text. */
class ValueCapture {
  private readonly parts: string[] = [];
  /** Characters kept so far, so a single huge value can be refused before it is complete. */
  length = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private primitive = false;
  private started = false;

  /** Consumes `text` from `from`; returns the index just past the value, or -1 if it continues. */
  feed(text: string, from: number): number {
    let i = from;
    if (!this.started) {
      this.started = true;
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.inString = true;
        i += 1;
      } else {
        this.primitive = c !== 0x7b && c !== 0x5b;
      }
    }
    let end = -1;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) {
          this.inString = false;
          if (this.depth === 0) {
            end = i + 1;
            break;
          }
        }
      } else if (this.primitive) {
        if (isValueEnd(c)) {
          end = i;
          break;
        }
      } else if (c === QUOTE) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth += 1;
      else if (c === 0x7d || c === 0x5d) {
        this.depth -= 1;
        if (this.depth === 0) {
          end = i + 1;
          break;
        }
      }
    }
    const part = text.slice(from, end < 0 ? text.length : end);
    this.parts.push(part);
    this.length += part.length;
    return end;
  }

  /** The text of a primitive that ended with the body (a number needs a delimiter to end). */
  get endsAtEof(): boolean {
    return this.primitive && !this.inString;
  }

  text(): string {
    return this.parts.join('');
  }
}

type State =
  | 'start'
  | 'member'
  | 'key'
  | 'colon'
  | 'value-start'
  | 'value'
  | 'rows'
  | 'row'
  | 'done'
  | 'failure'
  | 'text';

export class JsonCompactReader {
  private state: State = 'start';
  private capture = new ValueCapture();
  private key = '';
  private columnNames: readonly string[] = [];
  private failure = '';
  private line = '';
  private stopped = false;

  /**
   * @param maxRowChars bound on one row's text: a row still incomplete past it is not kept in
   *   memory any longer; the reader stops and tells the sink (`rowTooLarge`).
   */
  constructor(
    private readonly sink: JsonCompactSink,
    private readonly maxRowChars = Number.POSITIVE_INFINITY,
  ) {}

  /** Feeds the next chunk; returns false once the sink wants no more rows (ignore further chunks). */
  push(text: string): boolean {
    if (this.stopped) return false;
    let i = 0;
    while (i < text.length && !this.stopped) {
      const c = text.charCodeAt(i);
      switch (this.state) {
        case 'start':
          if (isSpace(c)) i += 1;
          else if (c === 0x7b) {
            this.state = 'member';
            i += 1;
          } else {
            this.state = 'text';
            this.sink.columns(TEXT_COLUMN);
          }
          break;
        case 'member':
          if (isSpace(c) || c === 0x2c) i += 1;
          else if (c === 0x7d) {
            this.state = 'done';
            i += 1;
          } else if (c === QUOTE) this.begin('key');
          else this.fail();
          break;
        case 'colon':
          if (isSpace(c)) i += 1;
          else if (c === 0x3a) {
            this.state = 'value-start';
            i += 1;
          } else this.fail();
          break;
        case 'value-start':
          if (isSpace(c)) i += 1;
          else if (this.key === 'data' && c === 0x5b) {
            this.state = 'rows';
            i += 1;
          } else this.begin('value');
          break;
        case 'rows':
          if (isSpace(c) || c === 0x2c) i += 1;
          else if (c === 0x5d) {
            this.state = 'member';
            i += 1;
          } else if (c === 0x5b || c === 0x7b) this.begin('row');
          else this.fail();
          break;
        case 'key':
        case 'value':
        case 'row': {
          const end = this.capture.feed(text, i);
          if (end < 0) {
            if (this.state === 'row' && this.capture.length > this.maxRowChars) this.stopForLargeRow();
            return !this.stopped;
          }
          i = end;
          this.completeCapture();
          break;
        }
        case 'done':
          if (isSpace(c)) i += 1;
          else this.fail();
          break;
        case 'failure':
          this.keepFailure(text.slice(i));
          return true;
        case 'text':
          this.readLines(text.slice(i));
          return !this.stopped;
        default:
          return this.state satisfies never;
      }
    }
    return !this.stopped;
  }

  /**
   * The body ended. Returns the failure to report — text the server appended after part of the
   * result, or a document cut short — or undefined when the body was complete.
   */
  end(): string | undefined {
    if (this.stopped) return undefined;
    if (this.state === 'value' && this.capture.endsAtEof) this.completeCapture();
    switch (this.state) {
      case 'start':
      case 'done':
        return undefined;
      case 'text': {
        if (this.line) this.emitLine(this.line);
        this.line = '';
        return this.failure || undefined;
      }
      case 'failure':
        return this.failure.trim() || 'ClickHouse sent a malformed result';
      default:
        return 'the response ended in the middle of the result';
    }
  }

  private begin(state: 'key' | 'value' | 'row'): void {
    this.capture = new ValueCapture();
    this.state = state;
  }

  private completeCapture(): void {
    const raw = this.capture.text();
    const state = this.state;
    if (state === 'key') {
      this.key = parseJson(raw) as string;
      this.state = 'colon';
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      this.state = 'failure';
      this.keepFailure(raw);
      return;
    }
    if (state === 'row') {
      this.state = 'rows';
      const values = Array.isArray(value)
        ? value
        : this.columnNames.map((name) => (value as Record<string, unknown>)[name]);
      if (!this.sink.row(values)) this.stopped = true;
      return;
    }
    this.state = 'member';
    if (this.key === 'meta' && Array.isArray(value)) {
      const columns = value.map((column: { name?: unknown; type?: unknown }) => ({
        name: String(column.name),
        type: String(column.type),
      }));
      this.columnNames = columns.map((column) => column.name);
      this.sink.columns(columns);
    }
  }

  private stopForLargeRow(): void {
    this.stopped = true;
    this.capture = new ValueCapture();
    this.line = '';
    this.sink.rowTooLarge?.();
  }

  /** Text where the document cannot continue: from here on, the body is the failure. */
  private fail(): void {
    this.state = 'failure';
  }

  private keepFailure(text: string): void {
    if (this.failure.length < MAX_FAILURE_CHARS)
      this.failure = (this.failure + text).slice(0, MAX_FAILURE_CHARS);
  }

  private readLines(text: string): void {
    const lines = (this.line + text).split('\n');
    this.line = lines.pop() ?? '';
    for (const line of lines) {
      if (this.stopped) return;
      if (line.length > this.maxRowChars) return this.stopForLargeRow();
      this.emitLine(line);
    }
    if (!this.stopped && this.line.length > this.maxRowChars) this.stopForLargeRow();
  }

  /** A line of another format, or the exception the server appended to it. */
  private emitLine(line: string): void {
    if (/^Code: \d+, e\.displayText\(\) = /.test(line) || /^Code: \d+\. DB::Exception/.test(line)) {
      this.keepFailure(line);
      return;
    }
    if (!this.sink.row([line])) this.stopped = true;
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
