/**
 * Result spills: the file adapter (pages seek through the offset index, the per-instance limit,
 * only finished spills are readable, discard), the result builder's hand-over from the inline
 * caps to the spill, and CSV quoting.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileResultSpills, INDEX_STRIDE } from '../../src/engines/result-spill/file-result-spills.js';
import { ResultByteBudget, StatementResultBuilder } from '../../src/engines/sql-result.js';
import { csvField, csvLine, csvLineFromJson } from '../../src/services/csv.js';

const root = mkdtempSync(join(tmpdir(), 'opendlf-spill-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SCHEMA: Record<string, string>[] = [{ id: 'INTEGER' }, { name: 'VARCHAR' }];
const COLUMNS = [
  { name: 'id', type: 'INTEGER', numeric: true },
  { name: 'name', type: 'VARCHAR', numeric: false },
];

async function collect(iterable: AsyncIterable<readonly string[]>): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of iterable) out.push(...batch);
  return out;
}

describe('FileResultSpills', () => {
  it('pages return exactly rows offset…offset+limit-1 at every position around the index stride', async () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const spill = spills.forRun(id).open(0);
    const total = INDEX_STRIDE * 3 + 17;
    // Multi-byte text: offsets are bytes, not characters.
    for (let i = 0; i < total; i++) assert.equal(spill.append([i, `é${'x'.repeat(i % 5)}\n"`]), true);
    spill.finish(SCHEMA, false);
    assert.deepEqual(await spills.describe(id, 0), { schema: SCHEMA, rowCount: total, truncated: false });
    const expected = (i: number) => JSON.stringify([i, `é${'x'.repeat(i % 5)}\n"`]);
    for (const offset of [
      0,
      1,
      INDEX_STRIDE - 1,
      INDEX_STRIDE,
      INDEX_STRIDE + 1,
      2 * INDEX_STRIDE + 5,
      total - 1,
    ]) {
      for (const limit of [1, 3, INDEX_STRIDE + 2]) {
        const page = await spills.page(id, 0, offset, limit);
        const want = Array.from({ length: Math.min(limit, total - offset) }, (_, k) => expected(offset + k));
        assert.deepEqual(page, want, `offset ${offset} limit ${limit}`);
      }
    }
    assert.deepEqual(await spills.page(id, 0, total, 10), []);
    const all = await collect(spills.lines(id, 0));
    assert.equal(all.length, total);
    assert.equal(all[total - 1], expected(total - 1));
  });

  it('rows larger than the write buffer are written whole', async () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const spill = spills.forRun(id).open(0);
    const big = 'y'.repeat(3 * 1024 * 1024);
    spill.append([1, 'a']);
    spill.append([2, big]);
    spill.append([3, 'c']);
    spill.finish(SCHEMA, false);
    const rows = (await collect(spills.lines(id, 0))).map((line) => JSON.parse(line));
    assert.deepEqual(rows, [
      [1, 'a'],
      [2, big],
      [3, 'c'],
    ]);
  });

  it('the per-instance limit is shared by the statements and refuses the first row that does not fit', async () => {
    const spills = new FileResultSpills(root, 100);
    const id = randomUUID();
    const run = spills.forRun(id);
    const first = run.open(0);
    let written = 0;
    while (first.append([written, 'abcdefgh'])) written++;
    first.finish(SCHEMA, true);
    assert.ok(written > 0 && written < 10, String(written));
    // "[n,"abcdefgh"]\n" is 16 bytes: what is left of 100 cannot hold another.
    const second = run.open(1);
    assert.equal(second.append([0, 'abcdefgh']), false);
    second.finish(SCHEMA, true);
    assert.deepEqual(await spills.describe(id, 1), { schema: SCHEMA, rowCount: 0, truncated: true });
  });

  it('an unfinished or abandoned spill is not readable; discard removes the folder', async () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const run = spills.forRun(id);
    const open = run.open(0);
    open.append([1, 'a']);
    assert.equal(await spills.describe(id, 0), undefined);
    assert.deepEqual(await spills.page(id, 0, 0, 10), []);
    open.abandon();
    assert.deepEqual(readdirSync(join(root, id)), []);
    assert.ok((await spills.ids()).includes(id));
    await spills.discard([id]);
    assert.equal(existsSync(join(root, id)), false);
    assert.equal(await spills.describe('../etc', 0), undefined);
  });
});

describe('StatementResultBuilder with a spill', () => {
  function spilledBuilder(maxRows: number, budgetBytes: number, spills: FileResultSpills, id: string) {
    const run = spills.forRun(id);
    const builder = new StatementResultBuilder(maxRows, new ResultByteBudget(budgetBytes), () => run.open(0));
    builder.setColumns(COLUMNS);
    return builder;
  }

  it('keeps the same inline rows as without a spill, and the spill gets every row, the kept ones first', async () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const plain = new StatementResultBuilder(10, new ResultByteBudget(1e6));
    plain.setColumns(COLUMNS);
    const spilled = spilledBuilder(10, 1e6, spills, id);
    // Exact values arrive as text from the drivers: the spill holds the API's JSON numbers.
    for (let i = 0; i < 25; i++) {
      const accepted = spilled.addRow([String(i), `r${i}`]);
      assert.equal(accepted, true, 'a spilling builder keeps asking for rows');
      plain.addRow([String(i), `r${i}`]);
    }
    const inline = spilled.build();
    assert.deepEqual(inline, { ...plain.build(), duration: inline.duration });
    assert.equal(inline.truncated, true);
    assert.equal(await spills.describe(id, 0), undefined, 'finished by the loop, not by build');
    spilled.finishSpill();
    const rows = (await collect(spills.lines(id, 0))).map((line) => JSON.parse(line));
    assert.deepEqual(
      rows,
      Array.from({ length: 25 }, (_, i) => [i, `r${i}`]),
    );
  });

  it('a statement within the caps opens no spill', () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const builder = spilledBuilder(10, 1e6, spills, id);
    for (let i = 0; i < 10; i++) builder.addRow([i, 'x']);
    builder.build();
    builder.finishSpill();
    assert.equal(existsSync(join(root, id)), false);
  });

  it('the byte budget hands over to the spill too; a spill that cannot be opened caps as before', () => {
    const failing = new StatementResultBuilder(100, new ResultByteBudget(30), () => {
      throw new Error('EACCES');
    });
    failing.setColumns(COLUMNS);
    let accepted = 0;
    while (failing.addRow([accepted, 'abc'])) accepted++;
    assert.ok(accepted > 0 && accepted < 5);
    assert.equal(failing.addRow([99, 'abc']), false);
    assert.equal(failing.build().truncated, true);
  });

  it('abandonSpill drops a statement that did not complete', async () => {
    const spills = new FileResultSpills(root, 1e9);
    const id = randomUUID();
    const builder = spilledBuilder(1, 1e6, spills, id);
    builder.addRow([1, 'a']);
    builder.addRow([2, 'b']);
    builder.abandonSpill();
    assert.deepEqual(readdirSync(join(root, id)), []);
    assert.equal(await spills.describe(id, 0), undefined);
  });
});

describe('CSV quoting (RFC 4180, as DuckDB and PostgreSQL export)', () => {
  it('quotes only fields that need it; NULL is empty, an empty string is ""', () => {
    assert.equal(csvField(null), '');
    assert.equal(csvField(''), '""');
    assert.equal(csvField('plain text'), 'plain text');
    assert.equal(csvField('a,b'), '"a,b"');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField('two\nlines'), '"two\nlines"');
    assert.equal(csvField('cr\rhere'), '"cr\rhere"');
    assert.equal(csvField(12.5), '12.5');
    assert.equal(csvField(false), 'false');
    assert.equal(csvField([1, 'a']), '"[1,""a""]"');
    assert.equal(csvField({ k: 1 }), '"{""k"":1}"');
    assert.equal(csvLine([1, null, 'x,y', '']), '1,,"x,y",""\n');
  });

  it('a row from its JSON text gives the same line as from its values', () => {
    const samples: unknown[][] = [
      [],
      [null],
      [1, -2.5, 1e21, 0, true, false, null],
      ['', 'a', 'a,b', 'q"uote', 'back\\slash', 'tab\tand\nnewline', 'cr\r', 'é€😀', '\u2028'],
      ['"', '\\"', ',', '[1,2]', '{"k":"v"}'],
      [[1, 'a,b', null], { k: 'v', n: [1, { x: '"' }] }, [], {}],
      [1, 'x', [null, ['deep', [']']]], '}', '{'],
    ];
    for (const row of samples)
      assert.equal(csvLineFromJson(JSON.stringify(row)), csvLine(row), JSON.stringify(row));
    // Random rows of the same kinds.
    const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
    const atoms = ['', ',', '"', '\\', '\n', 'x', 'é', '[', ']', '{', '}', ':'];
    const value = (depth: number): unknown => {
      switch (Math.floor(Math.random() * (depth > 2 ? 4 : 6))) {
        case 0:
          return null;
        case 1:
          return Math.round(Math.random() * 1e6) / 100;
        case 2:
          return Math.random() < 0.5;
        case 3:
          return Array.from({ length: Math.floor(Math.random() * 5) }, () => pick(atoms)).join('');
        case 4:
          return Array.from({ length: Math.floor(Math.random() * 3) }, () => value(depth + 1));
        default:
          return { a: value(depth + 1), 'b"': value(depth + 1) };
      }
    };
    for (let n = 0; n < 2000; n++) {
      const row = Array.from({ length: Math.floor(Math.random() * 6) }, () => value(0));
      assert.equal(csvLineFromJson(JSON.stringify(row)), csvLine(row), JSON.stringify(row));
    }
  });
});
