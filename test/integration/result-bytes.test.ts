/**
 * The byte cap on SQL results (issue 10, finding 8): `select repeat('x', 1000000) from range(600)`
 * used to grow the heap past 3 GB and leave the instance RUNNING. With `maxResultBytes` the rows
 * past the cap are dropped while they stream in, the instance settles FINISHED with `truncated`,
 * the stored result stays near the cap across all statements, and the server keeps answering.
 * Real DuckDB, PostgreSQL (127.0.0.1:5432, db `test`) and MariaDB (127.0.0.1:3306).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMultiUserServer, type MultiUserServer } from '../helpers/multi-user.js';
import { localMariaDbConnection, localPostgresConnection } from '../helpers/connections.js';
import type { ApiClient, ApiResponse } from '../helpers/server.js';

const CAP = 1024 * 1024;
/** Schema, durations, messages and JSON punctuation around the kept values. */
const OVERHEAD = 16 * 1024;

let scriptCounter = 0;
async function runSql(
  client: ApiClient,
  type: string,
  connectionName: string,
  content: string,
): Promise<ApiResponse> {
  scriptCounter += 1;
  const name = `bytes_${scriptCounter}`;
  await client.createScript({ name, type, connectionName, content });
  return client.waitFor(name, await client.execute(name), undefined, 240_000);
}

interface SqlResult {
  rows: unknown[][];
  truncated?: boolean;
}

function assertCapped(response: ApiResponse): SqlResult[] {
  assert.equal(response.json.status, 'FINISHED', response.text.slice(0, 500));
  const results = response.json.results as SqlResult[];
  assert.ok(
    JSON.stringify(results).length <= CAP + OVERHEAD,
    `results are ${JSON.stringify(results).length} bytes`,
  );
  return results;
}

describe('maxResultBytes', () => {
  let server: MultiUserServer;

  before(async () => {
    server = await startMultiUserServer({
      maxResultBytes: CAP,
      connectionTargets: { allow: ['127.0.0.1/32:5432', '127.0.0.1/32:3306'] },
    });
    const admin = server.as('adminA');
    for (const body of [
      localPostgresConnection('pg'),
      localMariaDbConnection('maria', { database: 'mysql' }),
    ]) {
      const res = await admin.request('POST', `/v1/${admin.projectId}/connections`, { body });
      assert.equal(res.status, 204, res.text);
    }
  });
  after(async () => {
    await server.close();
  });

  async function assertHealthy(): Promise<void> {
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
  }

  it('DuckDB: 600 rows of 1 MB settle FINISHED, truncated, under the cap', async () => {
    const res = await runSql(
      server.as('developerA'),
      'DWSSQL',
      'duckdb',
      "select repeat('x', 1000000) as big from range(600)",
    );
    const [result] = assertCapped(res);
    assert.equal(result?.truncated, true);
    assert.equal(result?.rows.length, 1);
    await assertHealthy();
  });

  it('DuckDB: the cap is per instance, across statements', async () => {
    const res = await runSql(
      server.as('developerA'),
      'DWSSQL',
      'duckdb',
      "select repeat('a', 100000) from range(6); select repeat('b', 100000) from range(6); select 42 as after",
    );
    const results = assertCapped(res);
    assert.equal(results.length, 3);
    assert.equal(results[0]?.rows.length, 6);
    assert.equal(results[0]?.truncated, undefined);
    assert.ok((results[1]?.rows.length ?? 6) < 6);
    assert.equal(results[1]?.truncated, true);
    // The budget is spent: later statements still run, but keep no rows.
    assert.deepEqual(results[2]?.rows, []);
    assert.equal(results[2]?.truncated, true);
  });

  it('PostgreSQL: 600 rows of 1 MB settle FINISHED, truncated, under the cap', async () => {
    const res = await runSql(
      server.as('developerA'),
      'RDSSQL',
      'pg',
      "select repeat('x', 1000000) as big from generate_series(1, 600)",
    );
    const [result] = assertCapped(res);
    assert.equal(result?.truncated, true);
    assert.equal(result?.rows.length, 1);
    await assertHealthy();
  });

  it('MariaDB: 600 rows of 1 MB settle FINISHED, truncated, under the cap', async () => {
    const res = await runSql(
      server.as('developerA'),
      'RDSSQL',
      'maria',
      'with recursive n(i) as (select 1 union all select i + 1 from n where i < 600) ' +
        "select repeat('x', 1000000) as big from n",
    );
    const [result] = assertCapped(res);
    assert.equal(result?.truncated, true);
    assert.equal(result?.rows.length, 1);
    await assertHealthy();
  });
});
