import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Namespace } from '../../src/domain/script.js';
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
  skip: { escalation: "DuckDB's stop has one step (interrupt): there is no polite cancel to ignore" },
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
