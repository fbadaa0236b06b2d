/**
 * The SQLite store's group commit (src/store/sqlite/group-commit-driver.ts): the writes of one turn
 * share one transaction, and no write's promise resolves before its COMMIT — observed from a second
 * connection to the same file, as another process would see the store.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, sql } from 'kysely';
import { CachingSqliteDatabase } from '../../src/store/kysely/dialect.js';
import { GroupCommitSqliteDialect } from '../../src/store/sqlite/group-commit-driver.js';
import { tempDir } from '../helpers/server.js';

interface Tables {
  t: { id: number; v: string };
}

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A Kysely on a WAL file through the group-commit dialect, and a second connection to the file. */
function open(): { db: Kysely<Tables>; other: BetterSqlite3.Database; close(): Promise<void> } {
  const dir = tempDir();
  dirs.push(dir);
  const file = join(dir, 'g.db');
  const raw = new BetterSqlite3(file);
  raw.pragma('journal_mode = WAL');
  raw.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  const db = new Kysely<Tables>({
    dialect: new GroupCommitSqliteDialect(new CachingSqliteDatabase(raw), raw),
  });
  const other = new BetterSqlite3(file);
  return {
    db,
    other,
    async close() {
      other.close();
      await db.destroy();
    },
  };
}

const countFrom = (other: BetterSqlite3.Database) =>
  (other.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;

describe('group commit (SQLite store)', () => {
  it('commits the writes of one turn together, each resolving only once committed', async () => {
    const { db, other, close } = open();
    try {
      const seenAtResolve: number[] = [];
      const writes = Array.from({ length: 10 }, (_, i) =>
        db
          .insertInto('t')
          .values({ id: i, v: `v${i}` })
          .returningAll()
          .executeTakeFirstOrThrow()
          .then((row) => {
            seenAtResolve.push(countFrom(other));
            return row;
          }),
      );
      // Executed, not committed: another connection sees none of them yet.
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      assert.equal(countFrom(other), 0);
      const rows = await Promise.all(writes);
      assert.deepEqual(
        rows.map((row) => row.id),
        Array.from({ length: 10 }, (_, i) => i),
      );
      // Every promise resolved after the one COMMIT of all ten.
      assert.deepEqual(seenAtResolve, Array(10).fill(10));
    } finally {
      await close();
    }
  });

  it('a statement that fails alone rejects alone; the rest of its group commits', async () => {
    const { db, other, close } = open();
    try {
      await db.insertInto('t').values({ id: 1, v: 'first' }).execute();
      const results = await Promise.allSettled([
        db.insertInto('t').values({ id: 2, v: 'a' }).execute(),
        db.insertInto('t').values({ id: 1, v: 'duplicate' }).execute(),
        db.insertInto('t').values({ id: 3, v: 'b' }).execute(),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal(countFrom(other), 3);
    } finally {
      await close();
    }
  });

  it('an explicit transaction commits the open group first and runs alone; a rollback undoes only it', async () => {
    const { db, other, close } = open();
    try {
      const grouped = db.insertInto('t').values({ id: 1, v: 'grouped' }).execute();
      const rolledBack = db.transaction().execute(async (trx) => {
        await trx.insertInto('t').values({ id: 2, v: 'in transaction' }).execute();
        throw new Error('roll back');
      });
      const later = db.insertInto('t').values({ id: 3, v: 'after' }).execute();
      await grouped;
      await assert.rejects(rolledBack, /roll back/);
      await later;
      assert.deepEqual(
        (other.prepare('SELECT id FROM t ORDER BY id').all() as { id: number }[]).map((r) => r.id),
        [1, 3],
      );
      // Reads and writes still work after it, and reads see committed state.
      const { n } = await sql<{ n: number }>`SELECT count(*) AS n FROM t`
        .execute(db)
        .then((r) => r.rows[0] ?? { n: -1 });
      assert.equal(n, 2);
    } finally {
      await close();
    }
  });
});
