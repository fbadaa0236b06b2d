/**
 * The store contract on PostgreSQL (127.0.0.1:5432, trust auth). The file creates its own database
 * and drops it at the end. Besides the contract: several nodes opening one fresh database at once
 * apply each migration exactly once, and the `schema` option keeps the tables in that schema.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrationProvider } from '../../src/store/kysely/migrations.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { Store } from '../../src/store/store.js';
import { runStoreContract } from './store-contract.js';

const SERVER = 'postgres://postgres@127.0.0.1:5432';
const DB = `opendlf_store_${randomBytes(4).toString('hex')}`;
const URL = `${SERVER}/${DB}`;
const ignore = () => undefined;

const admin = new pg.Client({ connectionString: `${SERVER}/postgres` });
admin.on('error', ignore);
await admin.connect();
await admin.query(`CREATE DATABASE ${DB}`);

after(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.end();
});

runStoreContract({
  name: 'postgres',
  open: () => openPostgresStore(URL, { maxConnections: 8 }),
  cleanup: () => Promise.resolve(),
});

describe('postgres store: multi-node start and schema option', () => {
  const schema = `nodes_${randomBytes(3).toString('hex')}`;
  const stores: Store[] = [];
  const probe = new pg.Client({ connectionString: URL });
  probe.on('error', ignore);
  before(() => probe.connect());
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await probe.end();
  });

  it('five nodes opening a fresh schema at once apply each migration once', async () => {
    stores.push(...(await Promise.all(Array.from({ length: 5 }, () => openPostgresStore(URL, { schema })))));
    const { rows } = await probe.query<{ name: string }>(
      `SELECT name FROM ${schema}.kysely_migration ORDER BY name`,
    );
    // Every migration the code defines, each once (the list grows with the code, not this test).
    const defined = Object.keys(await migrationProvider('postgres').getMigrations()).sort();
    assert.ok(defined.includes('0005_store_queue_and_leases'));
    assert.deepEqual(
      rows.map((r) => r.name),
      defined,
    );
    const tables = await probe.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
      [schema],
    );
    assert.deepEqual(
      tables.rows.map((r) => r.table_name),
      [
        'connections',
        'credentials',
        'environment_variables',
        'execute_idempotency_keys',
        'instance_logs',
        'instances',
        'kysely_migration',
        'kysely_migration_lock',
        'namespace_counters',
        'scripts',
        'settings',
        'system_tasks',
      ],
    );
    const ns = { projectId: 'p', workspaceId: 'w' };
    const [a, b] = stores;
    assert.ok(a && b);
    const input = {
      name: 'shared',
      type: 'DWSSQL' as const,
      content: '',
      directory: '/',
      connectionName: '',
      database: '',
      queueName: '',
      configuration: {},
      description: '',
    };
    assert.equal(await a.scripts.create(ns, input, 'u', { state: 'NONE', by: null }), true);
    assert.equal((await b.scripts.get(ns, 'shared'))?.name, 'shared', 'another node sees the write');
    const times = await probe.query<{ data_type: string }>(
      "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'instances' AND column_name = 'created_at'",
      [schema],
    );
    assert.equal(times.rows[0]?.data_type, 'bigint');
  });

  it('rejects a schema name that is not a plain identifier', async () => {
    await assert.rejects(openPostgresStore(URL, { schema: 'x; DROP TABLE y' }), /invalid store schema name/);
  });
});
