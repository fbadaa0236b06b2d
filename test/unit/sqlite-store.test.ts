/**
 * How the SQLite store opens its connection (src/store/sqlite/sqlite-store.ts): settings that the
 * group commit's cost depends on, read back from the live connection.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
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
});
