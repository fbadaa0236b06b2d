/** The store contract on SQLite (a file in a temporary directory, removed at the end). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { runStoreContract } from './store-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'opendlf-store-'));

runStoreContract({
  name: 'sqlite',
  open: () => openSqliteStore(join(dir, 'store.sqlite')),
  cleanup: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
});
