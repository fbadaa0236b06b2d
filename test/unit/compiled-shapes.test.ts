/** Compiled query shapes (src/store/kysely/compiled-shapes.ts): the cached text, each call's own values. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import { CompiledShapes } from '../../src/store/kysely/compiled-shapes.js';

interface Tables {
  t: { id: number; v: string | null; n: number };
}

function open(): Kysely<Tables> {
  const raw = new BetterSqlite3(':memory:');
  raw.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER NOT NULL)');
  return new Kysely<Tables>({ dialect: new SqliteDialect({ database: raw }) });
}

describe('CompiledShapes', () => {
  it('compiles a shape once and passes every later call its own arguments, constants kept', async () => {
    const db = open();
    const shapes = new CompiledShapes();
    let builds = 0;
    const insert = (id: number, v: string | null) =>
      shapes.compile('insert', [id, v], (args) => {
        builds++;
        return db
          .insertInto('t')
          .values({ id: args[0] as number, v: args[1] as string, n: 7 })
          .returningAll();
      });
    for (const [id, v] of [
      [1, 'a'],
      [2, null],
      [3, "it's"],
    ] as const) {
      const { rows } = await db.executeQuery(insert(id, v));
      assert.deepEqual(rows, [{ id, v, n: 7 }]);
    }
    assert.equal(builds, 1);
    await db.destroy();
  });

  it('a shape that writes an argument into the text is compiled with the real arguments every time', async () => {
    const db = open();
    const shapes = new CompiledShapes();
    for (const n of [4, 5]) {
      const query = shapes.compile('literal', [n], (args) =>
        db.insertInto('t').values({ id: n, v: null, n: sql<number>`${sql.lit(args[0])}` }),
      );
      await db.executeQuery(query);
    }
    const rows = await db.selectFrom('t').select(['id', 'n']).orderBy('id').execute();
    assert.deepEqual(rows, [
      { id: 4, n: 4 },
      { id: 5, n: 5 },
    ]);
    await db.destroy();
  });
});
