import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonCompactReader, type ResultMeta } from '../../src/engines/clickhouse/json-compact-reader.js';

/** A body as ClickHouse 18.16 lays it out, with values that look like structure inside strings. */
const BODY = `{
\t"meta":
\t[
\t\t{
\t\t\t"name": "s",
\t\t\t"type": "String"
\t\t},
\t\t{
\t\t\t"name": "n",
\t\t\t"type": "Nullable(Int64)"
\t\t},
\t\t{
\t\t\t"name": "a",
\t\t\t"type": "Array(String)"
\t\t}
\t],

\t"data":
\t[
\t\t["a \\"quoted\\" ], [ {x} \\\\", "9007199254740991", ["]", "\\u00e9"]],
\t\t["zwölf", null, []]
\t],

\t"rows": 2,

\t"statistics":
\t{
\t\t"elapsed": 0.000056165,
\t\t"rows_read": 1,
\t\t"bytes_read": 1
\t}
}
`;

const EXPECTED_ROWS = [
  ['a "quoted" ], [ {x} \\', '9007199254740991', [']', 'é']],
  ['zwölf', null, []],
];

function read(chunks: readonly string[], maxRows = Infinity) {
  let columns: readonly ResultMeta[] = [];
  const rows: unknown[][] = [];
  const reader = new JsonCompactReader({
    columns: (c) => (columns = c),
    row: (values) => {
      rows.push([...values]);
      return rows.length < maxRows;
    },
  });
  let stopped = false;
  for (const chunk of chunks) {
    if (!reader.push(chunk)) {
      stopped = true;
      break;
    }
  }
  const failure = stopped ? undefined : reader.end();
  return { columns, rows, failure, stopped };
}

describe('JsonCompactReader', () => {
  it('reads meta and rows however the body is cut into chunks', () => {
    for (let cut = 0; cut <= BODY.length; cut++) {
      const { columns, rows, failure } = read([BODY.slice(0, cut), BODY.slice(cut)]);
      assert.equal(failure, undefined, `cut at ${cut}`);
      assert.deepEqual(columns, [
        { name: 's', type: 'String' },
        { name: 'n', type: 'Nullable(Int64)' },
        { name: 'a', type: 'Array(String)' },
      ]);
      assert.deepEqual(rows, EXPECTED_ROWS, `cut at ${cut}`);
    }
    assert.deepEqual(read([...BODY]).rows, EXPECTED_ROWS, 'one character per chunk');
  });

  it('stops when the sink wants no more rows', () => {
    const { rows, stopped } = read([BODY], 1);
    assert.equal(stopped, true);
    assert.equal(rows.length, 1);
  });

  it('reports the exception text the server appended after part of the result', () => {
    const head = BODY.slice(0, BODY.indexOf(',\n\t\t["zwölf"'));
    const { rows, failure } = read([
      head,
      "Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception\n",
    ]);
    assert.equal(rows.length, 1);
    assert.match(failure ?? '', /^Code: 395, e\.displayText\(\) = DB::Exception: Value passed/);
  });

  it('reports a body cut short in the middle of the result', () => {
    const { failure } = read([BODY.slice(0, BODY.indexOf('"rows"'))]);
    assert.equal(failure, 'the response ended in the middle of the result');
  });

  it('an empty body is a statement without result', () => {
    const { columns, rows, failure } = read(['']);
    assert.deepEqual([columns, rows, failure], [[], [], undefined]);
  });

  it('rows given as objects (FORMAT JSON) follow the meta order', () => {
    const body =
      '{"meta":[{"name":"x","type":"UInt8"},{"name":"y","type":"String"}],"data":[{"y":"b","x":1}],"rows":1}';
    assert.deepEqual(read([body]).rows, [[1, 'b']]);
  });

  it('a body in another format becomes one text row per line, and a trailing exception fails it', () => {
    const ok = read(['0\ta\n1', '\tb\n']);
    assert.deepEqual(ok.columns, [{ name: 'result', type: 'String' }]);
    assert.deepEqual(ok.rows, [['0\ta'], ['1\tb']]);
    assert.equal(ok.failure, undefined);
    const failed = read([
      '0\ta\nCode: 395, e.displayText() = DB::Exception: boom, e.what() = DB::Exception\n',
    ]);
    assert.deepEqual(failed.rows, [['0\ta']]);
    assert.match(failed.failure ?? '', /^Code: 395/);
  });

  it('stops buffering a row whose text grows past maxRowChars, before the row is complete', () => {
    const rows: unknown[][] = [];
    let tooLarge = 0;
    const reader = new JsonCompactReader(
      {
        columns: () => undefined,
        row: (values) => rows.push([...values]) > 0,
        rowTooLarge: () => (tooLarge += 1),
      },
      1_000,
    );
    assert.equal(reader.push('{"meta":[{"name":"s","type":"String"}],"data":[["small"],["'), true);
    // A value arriving in pieces that never ends: the reader must give up once it passes the bound.
    let accepted = true;
    for (let i = 0; i < 10 && accepted; i++) accepted = reader.push('x'.repeat(300));
    assert.equal(accepted, false);
    assert.equal(tooLarge, 1);
    assert.deepEqual(rows, [['small']]);
    assert.equal(reader.end(), undefined);
  });

  it('stops on a line past maxRowChars in another format', () => {
    let tooLarge = 0;
    const reader = new JsonCompactReader(
      { columns: () => undefined, row: () => true, rowTooLarge: () => (tooLarge += 1) },
      100,
    );
    assert.equal(reader.push('short\n' + 'y'.repeat(150)), false);
    assert.equal(tooLarge, 1);
  });
});
