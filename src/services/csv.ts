/**
 * CSV lines as RFC 4180 quotes them (no CSV writer is among the dependencies; this is the whole of
 * it): a field is quoted when it holds a comma, a double quote (doubled inside), CR or LF. An empty
 * string is `""` and NULL an empty field, so the two stay apart — what DuckDB's and PostgreSQL's
 * own CSV exports write. Lines end with LF, as those exports do (RFC 4180 says CRLF; every CSV
 * reader takes both). Numbers and booleans are written as their JSON text; nested values (lists,
 * structs) as their JSON text, quoted.
 */

const NEEDS_QUOTES = /[",\r\n]/;

export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text: string;
  if (typeof value === 'string') {
    if (value === '') return '""';
    text = value;
  } else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  } else {
    text = JSON.stringify(value) ?? '';
  }
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One CSV record with its line end. */
export function csvLine(values: readonly unknown[]): string {
  let line = '';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) line += ',';
    line += csvField(values[i]);
  }
  return `${line}\n`;
}

/**
 * One CSV record from a row's JSON array text (the spill's form: `JSON.stringify` of the row), with
 * its line end — the same text as `csvLine(JSON.parse(json))`, without building the row: a string
 * without escapes is sliced out as it is, a nested value keeps its JSON text. Exports convert
 * millions of rows; parsing each into an array was most of what the export allocated.
 */
export function csvLineFromJson(json: string): string {
  let line = '';
  let i = 1; // after '['
  const end = json.length - 1; // the closing ']'
  let first = true;
  while (i < end) {
    if (!first) line += ',';
    first = false;
    const c = json.charCodeAt(i);
    let next: number;
    if (c === 0x22 /* " */) {
      let close = json.indexOf('"', i + 1);
      // A quote preceded by an odd number of backslashes is part of the string.
      for (;;) {
        let backslashes = 0;
        for (let k = close - 1; json.charCodeAt(k) === 0x5c; k--) backslashes++;
        if (backslashes % 2 === 0) break;
        close = json.indexOf('"', close + 1);
      }
      const raw = json.slice(i + 1, close);
      line += csvField(raw.includes('\\') ? (JSON.parse(json.slice(i, close + 1)) as string) : raw);
      next = close + 1;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      next = endOfNested(json, i);
      // Nested values are written as their JSON text, quoted when needed (as csvField does).
      const text = json.slice(i, next);
      line += /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    } else {
      next = json.indexOf(',', i);
      if (next < 0 || next > end) next = end;
      const token = json.slice(i, next);
      if (token !== 'null') line += token;
    }
    i = next + 1; // past the ',' (or onto the end)
  }
  return `${line}\n`;
}

/** The index just past the array or object starting at `start` (strings skipped whole). */
function endOfNested(json: string, start: number): number {
  let depth = 0;
  for (let i = start; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      i++;
      while (i < json.length && json.charCodeAt(i) !== 0x22) i += json.charCodeAt(i) === 0x5c ? 2 : 1;
    } else if (c === 0x5b || c === 0x7b) depth++;
    else if (c === 0x5d || c === 0x7d) {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return json.length;
}
