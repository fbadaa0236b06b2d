import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Namespace } from '../../src/domain/script.js';
import { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import { DuckDbEngine } from '../../src/engines/duckdb/duckdb-engine.js';
import { runEngineContract, typedSelectCheck } from './engine-contract.js';

let engine: DuckDbEngine;
const NS: Namespace = { projectId: 'contract', workspaceId: 'ws1' };

/** Runs a query on the same database through the engine and returns the first cell. */
async function probe(sql: string): Promise<unknown> {
  const outcome = await engine.run(
    {
      instanceId: 'probe',
      namespace: NS,
      scriptType: 'DWSSQL',
      content: sql,
      database: '',
      runDir: '/nonexistent',
      limits: { maxResultRows: 10, maxOutputBytes: 1, maxResultOutputBytes: 1 },
    },
    { signal: new AbortController().signal, stopGraceMs: 100, reportHandle: () => Promise.resolve() },
  );
  assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
  return outcome.results[0]?.rows[0]?.[0];
}

/**
 * DuckDB runs in this process, so "the query is gone" is observed as this process no longer
 * burning CPU: a running range() scan keeps at least one core busy.
 */
async function cpuIdle(): Promise<boolean> {
  return (await coresUsed(300)) < 0.6;
}

/** CPU cores this process used on average over the next `ms`. */
async function coresUsed(ms: number): Promise<number> {
  const before = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000 / (performance.now() - t0);
}

const LONG = 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3';

runEngineContract({
  name: 'duckdb',
  createEngine: () => (engine = new DuckDbEngine(':memory:')),
  scriptType: 'DWSSQL',
  succeeding: {
    content:
      'CREATE TABLE IF NOT EXISTS c1(a INTEGER, b VARCHAR, d DECIMAL(10,2), e BIGINT);\n' +
      "INSERT INTO c1 VALUES (1, 'x', 1.50, 9007199254740991), (NULL, NULL, NULL, NULL);\n" +
      'SELECT * FROM c1 ORDER BY a NULLS LAST; -- trailing comment',
    check: typedSelectCheck([{ a: 'INTEGER' }, { b: 'VARCHAR' }, { d: 'DECIMAL(10,2)' }, { e: 'BIGINT' }]),
  },
  failing: { content: 'SELECT 1; SELECT * FROM no_such_table; SELECT 2', messageIncludes: 'no_such_table' },
  longRunning: LONG,
  stopBetweenStatements: {
    content: `CREATE TABLE IF NOT EXISTS between_probe(a INTEGER); ${LONG}; INSERT INTO between_probe VALUES (1);`,
    secondRanProbe: async () => Number(await probe('SELECT count(*) FROM between_probe')) > 0,
  },
  // Endless: the engine must stop reading at the cap and end the query (workGone: no CPU used).
  limits: { manyRows: 'SELECT x FROM range(1000000000000) t(x)' },
  skip: {
    escalation: "DuckDB's stop has one step (interrupt): there is no polite cancel to ignore",
    unreachable: 'DuckDB runs inside the server: there is no server to reach',
  },
  waitUntilWorking: () => new Promise((r) => setTimeout(r, 100)),
  workGone: () => cpuIdle(),
});

describe('duckdb probe sanity', () => {
  it('the CPU probe does see a running query (so "work gone" can fail)', async () => {
    const own = new DuckDbEngine(':memory:');
    const controller = new AbortController();
    const outcome = own.run(
      {
        instanceId: 'probe-control',
        namespace: NS,
        scriptType: 'DWSSQL',
        content: LONG,
        database: '',
        runDir: '/nonexistent',
        limits: { maxResultRows: 10, maxOutputBytes: 1, maxResultOutputBytes: 1 },
      },
      { signal: controller.signal, stopGraceMs: 100, reportHandle: () => Promise.resolve() },
    );
    await new Promise((r) => setTimeout(r, 100));
    // Over a longer window and with a lower bar than cpuIdle's: when the suite runs beside other
    // CPU-bound test files on two cores, the scan gets only a share of a core (seen: < 0.6).
    const coresWhileRunning = await coresUsed(1_000);
    controller.abort('stop');
    assert.equal((await outcome).kind, 'aborted');
    await own.close();
    const coresAfter = await coresUsed(300);
    assert.ok(coresWhileRunning > 0.25, `a running scan used only ${coresWhileRunning.toFixed(2)} cores`);
    assert.ok(
      coresAfter < coresWhileRunning / 2,
      `idle ${coresAfter.toFixed(2)} vs running ${coresWhileRunning.toFixed(2)}`,
    );
  });
});

describe('duckdb result byte cap', () => {
  it('keeps rows up to maxResultBytes across statements, then marks the results truncated', async () => {
    const own = new DuckDbEngine(':memory:');
    try {
      const outcome = await own.run(
        {
          instanceId: 'byte-cap',
          namespace: NS,
          scriptType: 'DWSSQL',
          content: "SELECT repeat('x', 1000) FROM range(50); SELECT repeat('y', 1000) FROM range(50)",
          database: '',
          runDir: '/nonexistent',
          limits: { maxResultRows: 1000, maxOutputBytes: 1, maxResultOutputBytes: 1, maxResultBytes: 60_000 },
        },
        { signal: new AbortController().signal, stopGraceMs: 100, reportHandle: () => Promise.resolve() },
      );
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome).slice(0, 300));
      const [first, second] = outcome.results;
      assert.equal(first?.rows.length, 50);
      assert.equal(first?.truncated, undefined);
      assert.ok(second && second.rows.length > 0 && second.rows.length < 50, `kept ${second?.rows.length}`);
      assert.equal(second.truncated, true);
      assert.ok(JSON.stringify(outcome.results).length < 60_000 + 1_000);
    } finally {
      await own.close();
    }
  });
});

describe('duckdb sandbox on a database file', () => {
  it("keeps DuckDB's own spill directory writable while everything else outside is refused", async () => {
    const directory = mkdtempSync(join(tmpdir(), 'opendlf-duckdb-contract-'));
    const own = new DuckDbEngine(directory);
    try {
      const outcome = await own.run(
        {
          instanceId: 'temp-dir',
          namespace: NS,
          scriptType: 'DWSSQL',
          content:
            "SELECT current_setting('temp_directory') AS temp, " +
            "(SELECT value FROM duckdb_settings() WHERE name = 'allowed_directories') AS allowed",
          database: '',
          runDir: '/nonexistent',
          limits: { maxResultRows: 10, maxOutputBytes: 1, maxResultOutputBytes: 1 },
        },
        { signal: new AbortController().signal, stopGraceMs: 100, reportHandle: () => Promise.resolve() },
      );
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
      const [temp, allowed] = (outcome.results[0]?.rows[0] ?? []) as [string, string];
      assert.ok(temp.startsWith(join(directory, NS.projectId)), temp);
      assert.ok(allowed.includes(`${temp}/`), `${allowed} does not open ${temp}`);
    } finally {
      await own.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe('duckdb connection reuse', () => {
  const runOn = (own: DuckDbEngine, content: string, signal = new AbortController().signal) =>
    own.run(
      {
        instanceId: 'reuse',
        namespace: NS,
        scriptType: 'DWSSQL',
        content,
        database: '',
        runDir: '/nonexistent',
        limits: { maxResultRows: 10, maxOutputBytes: 1, maxResultOutputBytes: 1 },
      },
      { signal, stopGraceMs: 100, reportHandle: () => Promise.resolve() },
    );

  it('a query-only run hands its connection to the next run; other runs close theirs', async () => {
    const own = new DuckDbEngine(':memory:');
    const connect = DuckDBInstance.prototype.connect;
    let connects = 0;
    DuckDBInstance.prototype.connect = function (this: DuckDBInstance) {
      connects++;
      return connect.call(this);
    };
    try {
      assert.equal((await runOn(own, 'SELECT 1')).kind, 'succeeded');
      const afterFirst = connects;
      for (let i = 0; i < 5; i++)
        assert.equal((await runOn(own, '/* q */ SELECT 2; FROM range(3)')).kind, 'succeeded');
      assert.equal(connects, afterFirst, 'query-only runs opened new connections');
      // A run that could change its connection gets the idle one and closes it: the next opens anew.
      assert.equal((await runOn(own, 'CREATE TEMP TABLE t AS SELECT 1 AS x')).kind, 'succeeded');
      assert.equal((await runOn(own, 'SELECT 3')).kind, 'succeeded');
      assert.ok(connects > afterFirst, 'the connection of a CREATE TEMP TABLE run was reused');
    } finally {
      DuckDBInstance.prototype.connect = connect;
      await own.close();
    }
  });

  it("closes a stopped run's connection after the settle the runner commits in the outcome's turn", async () => {
    const own = new DuckDbEngine(':memory:');
    const closeSync = DuckDBConnection.prototype.closeSync;
    const events: string[] = [];
    DuckDBConnection.prototype.closeSync = function (this: DuckDBConnection) {
      events.push('connection closed');
      closeSync.call(this);
    };
    try {
      // Opens the database first (its setup connection is closed then).
      assert.equal((await runOn(own, 'SELECT 1')).kind, 'succeeded');
      events.length = 0;
      const controller = new AbortController();
      const stopped = runOn(own, LONG, controller.signal).then((outcome) => {
        // What the runner does with the outcome: the SQLite store commits the settle in a
        // setImmediate of this turn (group commit), and the stop's 204 waits for that commit.
        setImmediate(() => events.push('settle committed'));
        return outcome;
      });
      await new Promise((r) => setTimeout(r, 100));
      controller.abort('stop');
      assert.equal((await stopped).kind, 'aborted');
      await new Promise((r) => setImmediate(() => setImmediate(() => setImmediate(r))));
      assert.deepEqual(events, ['settle committed', 'connection closed']);
    } finally {
      DuckDBConnection.prototype.closeSync = closeSync;
      await own.close();
    }
  });

  it('a query run again on a kept connection is not prepared again, and answers as a fresh prepare would', async () => {
    const own = new DuckDbEngine(':memory:');
    const prepare = DuckDBConnection.prototype.prepare;
    const prepared: string[] = [];
    DuckDBConnection.prototype.prepare = function (this: DuckDBConnection, sql: string) {
      prepared.push(sql);
      return prepare.call(this, sql);
    };
    const preparesOf = (sql: string) => prepared.filter((text) => text === sql).length;
    const columnsOf = async (sql: string) => {
      const outcome = await runOn(own, sql);
      assert.equal(outcome.kind, 'succeeded', JSON.stringify(outcome));
      return outcome.results[0]?.schema.map((column) => Object.keys(column)[0]);
    };
    try {
      // One run at a time: each gets the connection the previous one handed on.
      for (let i = 0; i < 3; i++) {
        assert.equal((await runOn(own, 'SELECT 42 AS answer')).results[0]?.rows[0]?.[0], 42);
      }
      assert.equal(preparesOf('SELECT 42 AS answer'), 1);
      // Two connections keep the query; the ALTER run takes one of them (and closes it), the next
      // run gets the other with the query kept: DuckDB binds it again and sees the new column.
      assert.equal((await runOn(own, 'CREATE TABLE kept_t AS SELECT 1 AS a')).kind, 'succeeded');
      const query = 'SELECT * FROM kept_t';
      assert.deepEqual(await Promise.all([columnsOf(query), columnsOf(query)]), [['a'], ['a']]);
      assert.equal(preparesOf(query), 2);
      assert.equal((await runOn(own, 'ALTER TABLE kept_t ADD COLUMN b INTEGER DEFAULT 5')).kind, 'succeeded');
      assert.deepEqual(await columnsOf(query), ['a', 'b']);
      assert.equal(preparesOf(query), 2, 'the kept query was prepared again');
      // Dropped: the same error as a fresh prepare; then recreated with other columns.
      assert.equal((await runOn(own, 'DROP TABLE kept_t')).kind, 'succeeded');
      const dropped = await runOn(own, query);
      assert.equal(dropped.kind, 'failed');
      assert.match(JSON.stringify(dropped), /Table with name kept_t does not exist/);
      assert.equal((await runOn(own, 'CREATE TABLE kept_t AS SELECT 2 AS c')).kind, 'succeeded');
      assert.deepEqual(await columnsOf(query), ['c']);
    } finally {
      DuckDBConnection.prototype.prepare = prepare;
      await own.close();
    }
  });

  it('temporary tables, variables, the random seed, stopped queries and open results never reach a later run', async () => {
    const own = new DuckDbEngine(':memory:');
    try {
      // Warm: idle connections exist, so every run below may get one.
      for (let i = 0; i < 3; i++) assert.equal((await runOn(own, 'SELECT 1')).kind, 'succeeded');
      assert.equal(
        (await runOn(own, 'CREATE TEMP TABLE leak AS SELECT 1 AS x; SELECT * FROM leak')).kind,
        'succeeded',
      );
      assert.equal((await runOn(own, 'SELECT * FROM leak')).kind, 'failed');
      assert.equal((await runOn(own, 'SET VARIABLE leak_var = 42')).kind, 'succeeded');
      const variable = await runOn(own, "SELECT getvariable('leak_var')");
      assert.equal(variable.kind, 'succeeded');
      assert.equal(variable.results[0]?.rows[0]?.[0], null);
      // After setseed(0.5) random() starts from a known value; a run after one that set the seed
      // must not start from it (the seeded connection is not handed on).
      const seeded = await runOn(own, 'SELECT setseed(0.5); SELECT random()');
      assert.equal((await runOn(own, 'SELECT setseed(0.5)')).kind, 'succeeded');
      const after = await runOn(own, 'SELECT random()');
      assert.notEqual(after.results[0]?.rows[0]?.[0], seeded.results[1]?.rows[0]?.[0]);
      // A stopped query's connection is closed (an interrupt must not land on the next run).
      const controller = new AbortController();
      const stopped = runOn(own, LONG, controller.signal);
      await new Promise((r) => setTimeout(r, 100));
      controller.abort('stop');
      assert.equal((await stopped).kind, 'aborted');
      for (let i = 0; i < 3; i++) assert.equal((await runOn(own, 'SELECT 4')).kind, 'succeeded');
      // A result cut by the row cap leaves its query open on the connection: not reused either.
      assert.equal((await runOn(own, 'SELECT * FROM range(100000)')).results[0]?.truncated, true);
      assert.equal((await runOn(own, 'SELECT 5')).kind, 'succeeded');
    } finally {
      await own.close();
    }
  });
});
