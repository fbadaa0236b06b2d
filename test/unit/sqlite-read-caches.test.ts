/**
 * The SQLite adapter's read caches keep answers exact: the prepared-statement cache (bounded, and a
 * busy statement is never reused), and the auth mode and script reads, which another process's
 * commit (here: a second connection to the same file, as `opendlf credentials add` opens) must
 * invalidate. No timing is asserted; the one waits are for the data_version re-read (1 ms).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { CredentialDirectory } from '../../src/services/credential-directory.js';
import { SecretCipher } from '../../src/services/secret-cipher.js';
import { CachingSqliteDatabase, DATA_VERSION_RECHECK_MS } from '../../src/store/kysely/dialect.js';
import { matchingSeqs, type NamespaceOrder } from '../../src/store/kysely/namespace-order.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../helpers/server.js';

const afterRecheck = () => sleep(DATA_VERSION_RECHECK_MS + 5);

describe('CachingSqliteDatabase', () => {
  it('serves more distinct statements than it keeps, each with its own result', () => {
    const db = new CachingSqliteDatabase(new BetterSqlite3(':memory:'), 4);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 10; i++) {
        assert.deepEqual(db.prepare(`SELECT ${i} AS n`).all([]), [{ n: i }]);
      }
    }
    db.close();
  });

  it('gives a statement still iterating a fresh one instead of reusing it', () => {
    const db = new CachingSqliteDatabase(new BetterSqlite3(':memory:'));
    const text = 'SELECT value FROM json_each(?)';
    const iterator = db.prepare(text).iterate(['[1,2,3]']);
    assert.deepEqual(iterator.next().value, { value: 1 });
    // The same text while the first is mid-iteration: better-sqlite3 would refuse a busy statement.
    assert.deepEqual(db.prepare(text).all(['[7]']), [{ value: 7 }]);
    assert.deepEqual(iterator.next().value, { value: 2 });
    iterator.return?.();
    db.close();
  });

  it("sees another connection's commit in data_version, never its own", async () => {
    const dir = tempDir();
    const file = join(dir, 'dv.db');
    const own = new BetterSqlite3(file);
    own.pragma('journal_mode = WAL');
    const db = new CachingSqliteDatabase(own);
    db.prepare('CREATE TABLE t (a)').run([]);
    await afterRecheck();
    const before = db.dataVersion();
    db.prepare('INSERT INTO t VALUES (1)').run([]);
    await afterRecheck();
    assert.equal(db.dataVersion(), before);
    const other = new BetterSqlite3(file);
    other.prepare('INSERT INTO t VALUES (2)').run();
    other.close();
    await afterRecheck();
    assert.notEqual(db.dataVersion(), before);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('SQLite store read caches against another process', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'store.db');
  const cipher = new SecretCipher(randomBytes(32));
  const ns = { projectId: 'p', workspaceId: 'w' };

  it('the auth mode: known as none until another connection adds a credential, then enforced', async () => {
    const server = await openSqliteStore(file);
    const cli = await openSqliteStore(file);
    try {
      const directory = new CredentialDirectory(server.credentials, cipher);
      // Any other connection's commit drops a known "none" (the next request counts again), and
      // each store's checkpoint thread commits a one-row WAL restart shortly after the migrations'
      // writes (a full suite once saw one land between the two calls). So "none" must become known
      // once such commits stop, not on the first try.
      let known: string | undefined;
      for (let attempt = 0; attempt < 50 && known !== 'none'; attempt++) {
        if (attempt > 0) await sleep(20);
        assert.equal(await directory.mode(), 'none');
        known = directory.knownMode();
      }
      assert.equal(known, 'none', 'a "none" that stays known while no other connection commits');
      await new CredentialDirectory(cli.credentials, cipher).putToken({
        token: 'another-process-token-0001',
        projects: ['p'],
        grants: [{ workspace: '*', role: 'admin' }],
        expiresAt: null,
      });
      await afterRecheck();
      assert.equal(
        directory.knownMode(),
        undefined,
        'a stale "none" after another process added a credential',
      );
      assert.equal(await directory.mode(), 'enforced');
    } finally {
      await cli.close();
      await server.close();
    }
  });

  it("the auth mode: this process's own credential write is seen at once", async () => {
    const store = await openSqliteStore(join(dir, 'own.db'));
    try {
      const directory = new CredentialDirectory(store.credentials, cipher);
      assert.equal(await directory.mode(), 'none');
      assert.equal(directory.knownMode(), 'none');
      await directory.putToken({
        token: 'same-process-token-000001',
        projects: ['p'],
        grants: [{ workspace: '*', role: 'admin' }],
        expiresAt: null,
      });
      assert.equal(directory.knownMode(), undefined);
      assert.equal(await directory.mode(), 'enforced');
    } finally {
      await store.close();
    }
  });

  it('scripts read from memory are dropped when another connection changes them', async () => {
    const server = await openSqliteStore(file);
    try {
      const input = {
        name: 's',
        type: 'DWSSQL' as const,
        content: 'SELECT 1',
        directory: '/',
        connectionName: 'duckdb',
        database: '',
        queueName: '',
        configuration: {},
        description: '',
      };
      assert.equal(await server.scripts.create(ns, input, 'u', { state: 'NONE', by: null }), true);
      assert.equal((await server.scripts.get(ns, 's'))?.content, 'SELECT 1');
      const page = await server.scripts.list(ns, { offset: 0, limit: 10, nameContains: '' });
      assert.equal(page.total, 1);
      const other = new BetterSqlite3(file);
      other.prepare("UPDATE scripts SET content = 'SELECT 2' WHERE name = 's'").run();
      other
        .prepare(
          `INSERT INTO scripts (id, project_id, workspace_id, name, type, content, directory, connection_name,
            database_name, queue_name, configuration, description, owner, create_user, version, created_at, updated_at)
           SELECT 'id-t', project_id, workspace_id, 't', type, content, directory, connection_name, database_name,
            queue_name, configuration, description, owner, create_user, 1, created_at, updated_at FROM scripts WHERE name = 's'`,
        )
        .run();
      other.close();
      await afterRecheck();
      assert.equal((await server.scripts.get(ns, 's'))?.content, 'SELECT 2');
      const after = await server.scripts.list(ns, { offset: 0, limit: 10, nameContains: '' });
      assert.deepEqual(
        after.scripts.map((s) => [s.name, s.content]),
        [
          ['s', 'SELECT 2'],
          ['t', 'SELECT 2'],
        ],
      );
      assert.equal(after.total, 2);
    } finally {
      await server.close();
    }
  });

  it("connections read from memory: own writes and another connection's are seen, copies are handed out", async () => {
    const server = await openSqliteStore(join(dir, 'connections.db'));
    try {
      const input = {
        name: 'c1',
        type: 'DWS' as const,
        config: { ip: '10.0.0.1', port: '5432', userName: 'u' },
        description: 'first',
      };
      assert.equal(await server.connections.create(ns, input), true);
      const first = await server.connections.get(ns, 'c1');
      assert.ok(first);
      assert.equal(first.description, 'first');
      // A caller changing what it got does not change what the next caller gets.
      first.config.ip = 'changed by a caller';
      assert.equal((await server.connections.get(ns, 'c1'))?.config.ip, '10.0.0.1');
      assert.equal(await server.connections.update(ns, { ...input, description: 'second' }), true);
      assert.equal((await server.connections.get(ns, 'c1'))?.description, 'second');
      const other = new BetterSqlite3(join(dir, 'connections.db'));
      other
        .prepare("UPDATE connections SET description = 'third', version = version + 1 WHERE name = 'c1'")
        .run();
      other.close();
      await afterRecheck();
      const third = await server.connections.get(ns, 'c1');
      assert.equal(third?.description, 'third');
      assert.equal(third?.version, 3);
      assert.equal(await server.connections.delete(ns, 'c1'), true);
      assert.equal(await server.connections.get(ns, 'c1'), undefined);
    } finally {
      await server.close();
    }
  });
});

describe('name filters over a namespace order (matchingSeqs)', () => {
  /** What the SQL filter answers: every seq whose name contains the needle, in list order. */
  const naive = (order: NamespaceOrder, needle: string) =>
    order.seqs.filter((_seq, i) => order.names[i]?.includes(needle) === true);
  // Large enough for the trigram index, with repeated trigrams ("aaaa"), non-ASCII and a surrogate pair.
  const names = Array.from({ length: 1_500 }, (_v, i) =>
    i % 3 === 0 ? `job_${i}_aaaa` : i % 3 === 1 ? `Täglich-${i}-😀` : `report.${String(i).padStart(5, '0')}`,
  );
  const needles = [
    '',
    'a',
    'aa',
    'aaa',
    'aaaa',
    'aaaaa',
    '_1',
    'job_',
    '000',
    '01234',
    'ä',
    'Täglich-1',
    '😀',
    'h-1-😀',
    'zzz',
    'job_3_aaaa',
    'JOB',
  ];

  it('answers what a scan of every name answers, before and after the index is built, and repeated', () => {
    const order: NamespaceOrder = { seqs: names.map((_n, i) => 10 + i * 2), names };
    for (let round = 0; round < 3; round++) {
      for (const needle of needles)
        assert.deepEqual(matchingSeqs(order, needle), naive(order, needle), needle);
    }
  });

  it('a new order (after a write) is filtered afresh', () => {
    const order: NamespaceOrder = { seqs: names.map((_n, i) => i + 1), names };
    matchingSeqs(order, 'job_');
    matchingSeqs(order, 'report');
    const grown: NamespaceOrder = { seqs: [...order.seqs, 5_000], names: [...names, 'job_new'] };
    assert.deepEqual(matchingSeqs(grown, 'job_'), naive(grown, 'job_'));
    assert.deepEqual(matchingSeqs(grown, 'new'), [5_000]);
  });
});
