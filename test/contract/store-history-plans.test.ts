/**
 * Run history is index-backed on both stores: for every filter the history listing can send, the
 * count and the page are planned on a run-history index of migration 0009 (0013 dropped the one
 * led by `state`; state filters read it from the others) — never a scan of the instances, whose
 * rows carry the results. The statements are the ones the store really runs (captured from
 * Kysely's log) and planned by the database itself: EXPLAIN QUERY PLAN on SQLite, which has no
 * statistics to go by (its choice once read every matching row through `instances_state_created`),
 * and EXPLAIN on PostgreSQL after ANALYZE, with the workspace a small part of the table.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql, type LogEvent } from 'kysely';
import pg from 'pg';
import type { InstanceHistoryQuery } from '../../src/domain/instance-history.js';
import type { Namespace } from '../../src/domain/script.js';
import { openKyselyStore } from '../../src/store/kysely/kysely-store.js';
import type { Database } from '../../src/store/kysely/schema.js';
import { LocalSignals } from '../../src/store/local-signals.js';
import type { Store } from '../../src/store/store.js';

const NS: Namespace = { projectId: 'plans', workspaceId: 'w' };
const FAILED_STATES = ['FAILED', 'STOPPED', 'TIMED_OUT', 'ABORTED'] as const;

interface Statement {
  sql: string;
  parameters: readonly unknown[];
}

/** Every query shape the service sends (a script filter always names the script and its id). */
function shapes(scriptId: string): [string, Omit<InstanceHistoryQuery, 'offset' | 'limit'>][] {
  const from = new Date(1_700_000_000_000 + 100_000);
  return [
    ['workspace', {}],
    ['workspace by state', { states: FAILED_STATES }],
    ['workspace by time', { createdFrom: from, createdBefore: new Date(from.getTime() + 50_000) }],
    ['workspace by state and time', { states: ['FINISHED'], createdFrom: from }],
    ['script', { scriptName: 's1', scriptId }],
    ['script by state and time', { scriptName: 's1', scriptId, states: ['STOPPED'], createdFrom: from }],
  ];
}

/** Creates the script `s1`, then `rows` runs in NS (scripts s0–s4) and ten times as many elsewhere. */
async function fill(store: Store, db: Kysely<Database>, rows: number, series: (n: number) => string) {
  await store.scripts.create(
    NS,
    {
      name: 's1',
      type: 'DWSSQL',
      content: '',
      directory: '/',
      connectionName: '',
      database: '',
      queueName: '',
      configuration: {},
      description: '',
    },
    'u',
    { state: 'NONE', by: null },
  );
  const scriptId = (await store.scripts.get(NS, 's1'))?.id ?? assert.fail('script created');
  for (const [workspace, count] of [
    [NS.workspaceId, rows],
    ['elsewhere', rows * 10],
  ] as const) {
    await sql
      .raw(
        `INSERT INTO instances (id, project_id, workspace_id, script_id, script_name, state, connection_name,
           engine, node_id, created_at, message, results)
         SELECT '${workspace}-' || i, '${NS.projectId}', '${workspace}',
           CASE WHEN i % 5 = 1 THEN '${scriptId}' ELSE 'other' || (i % 5) END, 's' || (i % 5),
           CASE WHEN i % 10 = 0 THEN 'FAILED' WHEN i % 10 = 1 THEN 'STOPPED' ELSE 'FINISHED' END,
           'duckdb', 'duckdb', 'n', 1700000000000 + i * 1000, '', '[]'
         FROM ${series(count)}`,
      )
      .execute(db);
  }
  return scriptId;
}

/** Runs every shape through the store and returns the statements it sent, by shape. */
async function statementsOf(store: Store, scriptId: string, log: Statement[]) {
  const byShape: [string, Statement[]][] = [];
  for (const [name, filter] of shapes(scriptId)) {
    log.length = 0;
    const page = await store.instances.history(NS, { ...filter, offset: 1, limit: 5 });
    assert.ok(page.instances.length > 0, `${name}: the page query ran`);
    byShape.push([name, [...log]]);
  }
  return byShape;
}

function capture(log: Statement[]) {
  return (event: LogEvent) => {
    if (event.level === 'query') log.push({ sql: event.query.sql, parameters: event.query.parameters });
  };
}

describe('run history query plans', () => {
  it('SQLite: count and page read a history index, never the table', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendlf-plans-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const file = new BetterSqlite3(join(dir, 'store.sqlite'));
    const log: Statement[] = [];
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: file }), log: capture(log) });
    const store = await openKyselyStore(db, 'sqlite', { signals: new LocalSignals(), shared: false });
    try {
      const series = (n: number) =>
        `(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ${n}) SELECT i FROM g)`;
      const scriptId = await fill(store, db, 500, series);
      for (const [name, statements] of await statementsOf(store, scriptId, log)) {
        assert.equal(statements.length, 2, `${name}: a count and a page`);
        for (const statement of statements) {
          const plan = file
            .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${statement.sql}`)
            .all(...statement.parameters)
            .map((row) => row.detail);
          const onInstances = plan.filter((line) => / instances\b/.test(line));
          assert.ok(onInstances.length > 0, `${name}: ${plan.join(' | ')}`);
          for (const line of onInstances) {
            // The page's rows are fetched by primary key; everything else is a history index.
            assert.match(
              line,
              /^SEARCH instances USING (COVERING INDEX instances_history_\w+ \(project_id=\? AND workspace_id=\?|INDEX sqlite_autoindex_instances_1 \(id=\?\))/,
              `${name}: ${plan.join(' | ')}`,
            );
          }
        }
      }
    } finally {
      await store.close();
    }
  });

  it('PostgreSQL: count and page read a history index, never the table', async () => {
    const server = 'postgres://postgres@127.0.0.1:5432';
    const database = `opendlf_plans_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: `${server}/postgres` });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    const pool = new pg.Pool({ connectionString: `${server}/${database}`, max: 2 });
    const log: Statement[] = [];
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: capture(log) });
    const store = await openKyselyStore(db, 'postgres', { signals: new LocalSignals(), shared: true });
    try {
      const scriptId = await fill(store, db, 1_000, (n) => `generate_series(1, ${n}) AS g(i)`);
      await sql`VACUUM ANALYZE instances`.execute(db);
      for (const [name, statements] of await statementsOf(store, scriptId, log)) {
        assert.equal(statements.length, 2, `${name}: a count and a page`);
        for (const statement of statements) {
          const { rows } = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${statement.sql}`, [
            ...statement.parameters,
          ]);
          const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
          assert.doesNotMatch(plan, /Seq Scan/, `${name}:\n${plan}`);
          assert.match(
            plan,
            /Index (Only )?Scan( Backward)? using instances_history_\w+ on instances/,
            `${name}:\n${plan}`,
          );
        }
      }
    } finally {
      await store.close();
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    }
  });
});
