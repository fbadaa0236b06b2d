/**
 * How the SQLite store opens its connection (src/store/sqlite/sqlite-store.ts): settings that the
 * group commit's cost depends on, read back from the live connection, and who restarts the WAL.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { until } from '../helpers/assertions.js';
import { tempDir } from '../helpers/server.js';

describe('SQLite store connection', () => {
  it('keeps statement journals and temporary data in memory (temp_store = MEMORY)', async () => {
    const dir = tempDir();
    // The store's own better-sqlite3 handle: the first connection that runs a pragma while opening.
    const pragma = BetterSqlite3.prototype.pragma;
    const connections: BetterSqlite3.Database[] = [];
    BetterSqlite3.prototype.pragma = function (
      this: BetterSqlite3.Database,
      ...args: Parameters<typeof pragma>
    ) {
      connections.push(this);
      return pragma.apply(this, args);
    };
    let store: Awaited<ReturnType<typeof openSqliteStore>> | undefined;
    try {
      store = await openSqliteStore(join(dir, 'store.db'));
    } finally {
      BetterSqlite3.prototype.pragma = pragma;
    }
    try {
      const connection = connections[0];
      assert.ok(connection);
      // 2 = MEMORY (0 = the compile-time default, a file).
      assert.equal(connection.pragma('temp_store', { simple: true }), 2);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("restarts the WAL on the checkpoint thread, so the server's next write after a pause appends", async () => {
    const dir = tempDir();
    const file = join(dir, 'store.db');
    const store = await openSqliteStore(file);
    // A second connection reads the restart counter; each statement is its own short read, so it
    // never holds the snapshot a restart has to wait for.
    const observer = new BetterSqlite3(file, { readonly: true });
    const restarts = () =>
      Number(observer.prepare('SELECT restarts FROM opendlf_wal_restart WHERE id = 1').pluck().get());
    // A WAL restart writes a new header with new salts (bytes 16-23): equal salts, no restart.
    const walSalts = () => readFileSync(`${file}-wal`).subarray(16, 24).toString('hex');
    const ns = { projectId: 'p', workspaceId: 'w' };
    const write = (value: string) => store.environmentVariables.put(ns, 'V', value, new Date(), 10);
    try {
      const before = restarts();
      await write('1');
      await until('the checkpoint thread to restart the WAL', () =>
        Promise.resolve(restarts() > before ? true : undefined),
      );
      // A pause of several checkpoint intervals: with nothing new committed, the thread must leave
      // the WAL as it is (a checkpoint now would copy the restart row and hand the next restart,
      // with its header fsync, back to the server's write).
      const settled = restarts();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(restarts(), settled, 'an idle store was written to (a restart per tick, forever)');
      const salts = walSalts();
      await write('2');
      assert.equal(walSalts(), salts, "the server's write restarted the WAL itself");
      await until('the next restart by the checkpoint thread', () =>
        Promise.resolve(restarts() > settled ? true : undefined),
      );
      assert.notEqual(walSalts(), salts, 'a restart writes new salts (or this check sees nothing)');
    } finally {
      observer.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
