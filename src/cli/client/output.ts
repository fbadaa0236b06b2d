/**
 * How the client commands print: `--output table|json|csv`. Tables and colour are for people;
 * JSON and CSV are for programs, so they are byte-stable (no colour, no padding, no progress text on
 * stdout). Colour and spinners only when the stream is a terminal and `NO_COLOR` is unset.
 */
import { styleText } from 'node:util';
import Table from 'cli-table3';
import { CliError, EXIT } from './cli-error.js';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function parseOutputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new CliError(EXIT.usage, `--output must be one of ${OUTPUT_FORMATS.join(', ')} (got '${value}')`);
}

/** Whether decoration (colour, spinners, prompts) may be written to this stream. */
export function isInteractive(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

/**
 * Whether a spinner may redraw this stream: a terminal of known width. A pseudo-terminal nobody
 * sized (0 columns: `script` fed by a pipe, some CI runners) would make every redraw clear an
 * unbounded number of lines. A `CI` variable also turns animation off: CI runners often give a
 * terminal whose redraws end up as thousands of lines in the job log (the convention the
 * `is-interactive` package, and so ora, follows; we decide here, once, and tell ora).
 */
export function canAnimate(stream: NodeJS.WriteStream): boolean {
  return isInteractive(stream) && (stream.columns ?? 0) > 0 && !('CI' in process.env);
}

type Style = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'cyan';

export function paint(stream: NodeJS.WriteStream, style: Style, text: string): string {
  return isInteractive(stream) ? styleText(style, text) : text;
}

/** The colour of an instance status in a table. */
export function statusStyle(status: string | undefined): Style {
  if (status === 'FINISHED') return 'green';
  if (status === 'FAILED') return 'red';
  return 'yellow';
}

/** A cell's text: null as empty, objects as JSON, everything else as JavaScript prints it. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value);
}

/** RFC 4180: a field with a comma, quote, CR or LF is quoted, quotes doubled; lines end CRLF. */
export function csvField(value: unknown): string {
  const text = cellText(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(columns: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const lines = [columns.map(csvField).join(',')];
  for (const row of rows) lines.push(columns.map((_, i) => csvField(row[i])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

export function toTable(
  stream: NodeJS.WriteStream,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
): string {
  const colour = isInteractive(stream);
  const table = new Table({
    head: [...columns],
    style: { head: colour ? ['cyan'] : [], border: colour ? ['grey'] : [] },
  });
  for (const row of rows) table.push(columns.map((_, i) => cellText(row[i])));
  return `${table.toString()}\n`;
}

/** A list of records printed in the chosen format (`json` gets `raw`, the API's own shape). */
export function printRecords(
  format: OutputFormat,
  columns: readonly string[],
  rows: readonly (readonly unknown[])[],
  raw: unknown,
): void {
  if (format === 'json') process.stdout.write(`${JSON.stringify(raw, null, 2)}\n`);
  else if (format === 'csv') process.stdout.write(toCsv(columns, rows));
  else process.stdout.write(toTable(process.stdout, columns, rows));
}

/** Progress and notes go to stderr, so stdout stays the data a script pipes on. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}
