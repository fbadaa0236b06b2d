/**
 * Large results (README "Large results"): rows past the inline caps are spilled and can be paged
 * and exported whole, on DuckDB, PostgreSQL and MariaDB; the documented result keeps its capped
 * rows; the spill goes with the instance.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuckDBInstance } from '@duckdb/node-api';
import { createClusterDatabase, type ClusterDatabase } from '../helpers/cluster.js';
import { startTestServer, tempDir, type ApiClient, type TestServer } from '../helpers/server.js';

const INLINE_ROWS = 100;

let server: TestServer;
let api: ApiClient;
let scriptCounter = 0;

async function runScript(
  client: ApiClient,
  script: { type: string; content: string; connectionName: string },
): Promise<{ name: string; id: string; result: any }> {
  scriptCounter += 1;
  const name = `large-${scriptCounter}`;
  await client.createScript({ name, ...script });
  const id = await client.execute(name);
  const result = (await client.waitFor(name, id, undefined, 300_000)).json;
  assert.equal(result.status, 'FINISHED', JSON.stringify(result).slice(0, 1000));
  return { name, id, result };
}

const resultsPath = (client: ApiClient, name: string, id: string, statement: string) =>
  client.path(`/${name}/instances/${id}/results/${statement}`);

/** Every row of statement `n` through pages of `limit` rows. */
async function allPages(client: ApiClient, name: string, id: string, n: number, limit: number) {
  const rows: unknown[][] = [];
  let rowCount = -1;
  for (let offset = 0; rowCount < 0 || offset < rowCount; offset += limit) {
    const page = await client.request(
      'GET',
      `${resultsPath(client, name, id, String(n))}?offset=${offset}&limit=${limit}`,
    );
    assert.equal(page.status, 200, page.text.slice(0, 500));
    assert.equal(page.json.offset, offset);
    assert.equal(page.json.limit, limit);
    assert.equal(page.json.truncated, false);
    rowCount = page.json.rowCount;
    assert.ok(page.json.rows.length <= limit);
    rows.push(...page.json.rows);
  }
  return { rows, rowCount };
}

function assertSequence(rows: unknown[][], n: number, label: string): void {
  assert.equal(rows.length, n, `${label}: row count`);
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    if (row[0] !== i + 1 || row[1] !== `r${i + 1}`)
      assert.fail(`${label}: row ${i} is ${JSON.stringify(row)}`);
  }
}

before(async () => {
  server = await startTestServer({ maxResultRows: INLINE_ROWS });
  api = server.client();
  const pgConfig = { ip: '127.0.0.1', port: '5432', userName: 'postgres', password: 'x', database: 'test' };
  for (const body of [
    { name: 'big-pg', type: 'DWS', config: { ...pgConfig, sslEnable: false } },
    {
      name: 'big-my',
      type: 'RDS',
      config: {
        ip: '127.0.0.1',
        port: 3306,
        userName: 'root',
        password: '',
        driverName: 'com.mysql.jdbc.Driver',
        database: 'test',
      },
    },
  ]) {
    const response = await api.request('POST', `/v1/${api.projectId}/connections`, { body });
    assert.equal(response.status, 204, response.text);
  }
});

after(async () => {
  await server?.close();
});

const ROWS = 5_000;
const ENGINES = [
  {
    engine: 'DuckDB',
    type: 'DWSSQL',
    connectionName: 'duckdb',
    sql: (n: number) => `SELECT i::INTEGER AS id, 'r' || i AS name FROM range(1, ${n + 1}) t(i) ORDER BY i`,
  },
  {
    engine: 'PostgreSQL',
    type: 'DWSSQL',
    connectionName: 'big-pg',
    sql: (n: number) => `SELECT g AS id, 'r' || g AS name FROM generate_series(1, ${n}) g`,
  },
  {
    engine: 'MariaDB',
    type: 'RDSSQL',
    connectionName: 'big-my',
    sql: (n: number) => `SELECT seq AS id, CONCAT('r', seq) AS name FROM seq_1_to_${n}`,
  },
];

describe('paging a spilled result', () => {
  for (const { engine, type, connectionName, sql } of ENGINES) {
    it(`${engine}: every row exactly once across pages, for each statement; the documented result keeps its capped rows`, async () => {
      const { name, id, result } = await runScript(api, {
        type,
        connectionName,
        content: `${sql(ROWS)};\n${sql(30)};\n${sql(ROWS + 7)}`,
      });
      assert.equal(result.results.length, 3);
      // The documented endpoint is unchanged: the first maxResultRows rows, truncated.
      assert.equal(result.results[0].rows.length, INLINE_ROWS);
      assert.equal(result.results[0].truncated, true);
      assert.equal(result.results[1].truncated, undefined);
      // Page sizes that do not line up with the spill's offset index (every 1,024 rows).
      const first = await allPages(api, name, id, 0, 997);
      assert.equal(first.rowCount, ROWS);
      assertSequence(first.rows, ROWS, `${engine} statement 0`);
      // A statement within the caps pages from the instance row.
      const small = await allPages(api, name, id, 1, 7);
      assert.equal(small.rowCount, 30);
      assertSequence(small.rows, 30, `${engine} statement 1`);
      const third = await allPages(api, name, id, 2, 10_000);
      assertSequence(third.rows, ROWS + 7, `${engine} statement 2`);
      // A deep offset seeks: one page in the middle is exactly those rows.
      const middle = await api.request('GET', `${resultsPath(api, name, id, '2')}?offset=3071&limit=3`);
      assert.deepEqual(
        middle.json.rows.map((r: unknown[]) => r[0]),
        [3072, 3073, 3074],
      );
      assert.deepEqual(Object.keys(middle.json), [
        'schema',
        'rows',
        'rowCount',
        'offset',
        'limit',
        'truncated',
      ]);
      assert.deepEqual(
        middle.json.schema.map((c: object) => Object.keys(c)[0]),
        ['id', 'name'],
      );
      // Past the end: no rows, the total still told.
      const past = await api.request('GET', `${resultsPath(api, name, id, '0')}?offset=${ROWS}`);
      assert.deepEqual([past.json.rows, past.json.rowCount], [[], ROWS]);
      // JSON Lines: every row, one array per line.
      const jsonl = await api.request('GET', resultsPath(api, name, id, '0.jsonl'));
      assert.equal(jsonl.status, 200);
      assert.match(jsonl.headers.get('content-type') ?? '', /jsonl/);
      const lines = jsonl.text.split('\n');
      assert.equal(lines.pop(), '');
      assertSequence(
        lines.map((line) => JSON.parse(line)),
        ROWS,
        `${engine} jsonl`,
      );
    });
  }
});

describe('CSV export', () => {
  it("a 1M-row DuckDB result's CSV equals DuckDB's own COPY … TO export", async () => {
    const query =
      "SELECT i AS id, 'name ' || i AS label, CASE WHEN i % 7 = 0 THEN NULL ELSE i % 13 END AS m, " +
      `i % 2 = 0 AS even, CASE WHEN i % 5 = 0 THEN 'a,"b"' WHEN i % 5 = 1 THEN '' ELSE 'x' || chr(10) || 'y' END AS q ` +
      'FROM range(1000000) t(i) ORDER BY i';
    const { name, id } = await runScript(api, { type: 'DWSSQL', connectionName: 'duckdb', content: query });
    const response = await fetch(`${api.baseUrl}${resultsPath(api, name, id, '0.csv')}`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/csv/);
    const ours = await response.text();

    const dir = mkdtempSync(join(tmpdir(), 'opendlf-csv-'));
    try {
      const db = await DuckDBInstance.create(':memory:');
      const connection = await db.connect();
      const file = join(dir, 'export.csv');
      await connection.run(`COPY (${query}) TO '${file}' (HEADER)`);
      connection.closeSync();
      db.closeSync();
      const theirs = readFileSync(file, 'utf8');
      assert.equal(ours.length, theirs.length);
      // Compared whole; on a difference, show the first line that differs rather than 40 MB.
      if (ours !== theirs) {
        const a = ours.split('\n');
        const b = theirs.split('\n');
        const at = a.findIndex((line, i) => line !== b[i]);
        assert.fail(`line ${at} differs: ${JSON.stringify(a[at])} vs DuckDB ${JSON.stringify(b[at])}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('spill lifetime and errors', () => {
  it('the spill is gone after the script is deleted', async () => {
    const { name, id } = await runScript(api, {
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT i FROM range(5000) t(i)',
    });
    const folder = join(server.dataDir, 'results', id);
    assert.deepEqual(readdirSync(folder).sort(), ['0.jsonl', '0.meta.json']);
    const deleted = await api.request('DELETE', api.path(`/${name}`));
    assert.equal(deleted.status, 204);
    assert.equal(existsSync(folder), false);
  });

  it('a statement within the caps is never spilled; a run without large results writes no spill', async () => {
    const { id } = await runScript(api, { type: 'DWSSQL', connectionName: 'duckdb', content: 'SELECT 42' });
    assert.equal(existsSync(join(server.dataDir, 'results', id)), false);
  });

  it('answers clear 400s: statement out of range, instance still running, malformed statement or limit', async () => {
    const { name, id } = await runScript(api, {
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT 1',
    });
    const outOfRange = await api.request('GET', resultsPath(api, name, id, '1'));
    assert.equal(outOfRange.status, 400);
    assert.equal(outOfRange.json.error_code, 'OPENDLF.0650');
    for (const bad of ['x', '-1', '0.xml', '1e3']) {
      const response = await api.request('GET', resultsPath(api, name, id, bad));
      assert.equal(response.status, 400, bad);
      assert.equal(response.json.error_code, 'DLF.3051', bad);
    }
    for (const query of ['limit=0', 'limit=10001', 'offset=-1', 'offset=a']) {
      const response = await api.request('GET', `${resultsPath(api, name, id, '0')}?${query}`);
      assert.equal(response.status, 400, query);
      assert.equal(response.json.error_code, 'DLF.3051', query);
    }
    const unknown = await api.request(
      'GET',
      resultsPath(api, name, '00000000-0000-4000-8000-000000000000', '0'),
    );
    assert.equal(unknown.json.error_code, 'DLF.6205');

    scriptCounter += 1;
    const slow = `large-${scriptCounter}`;
    await api.createScript({ name: slow, type: 'Shell', connectionName: 'local', content: 'sleep 30' });
    const running = await api.execute(slow);
    await api.waitFor(slow, running, (b) => b.status === 'RUNNING');
    const notYet = await api.request('GET', resultsPath(api, slow, running, '0.csv'));
    assert.equal(notYet.status, 400);
    assert.equal(notYet.json.error_code, 'OPENDLF.0651');
    assert.equal((await api.stop(slow, running)).status, 204);
  });

  it('a run stopped while it spills settles STOPPED and leaves no readable spill', async () => {
    scriptCounter += 1;
    const name = `large-${scriptCounter}`;
    await api.createScript({
      name,
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT i, repeat('x', 50) FROM range(1000000000) t(i)",
    });
    const id = await api.execute(name);
    const partial = join(server.dataDir, 'results', id, '0.jsonl');
    const deadline = Date.now() + 60_000;
    while (!existsSync(partial) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(partial), 'the spill started');
    assert.equal((await api.stop(name, id)).status, 204);
    const settled = (await api.waitFor(name, id)).json;
    assert.equal(settled.detailedStatus, 'STOPPED');
    // DuckDB ends an interrupted stream like a finished one: the statement's capped rows are kept
    // in the instance, but its partial spill is dropped, so no one takes it for the whole result.
    assert.deepEqual(readdirSync(join(server.dataDir, 'results', id)), []);
    assert.ok(settled.results.every((r: any) => r.truncated === true));
    const page = await api.request('GET', resultsPath(api, name, id, '0'));
    assert.equal(page.json.error_code, settled.results.length === 0 ? 'OPENDLF.0650' : 'OPENDLF.0652');
  });
});

describe('spill limits', () => {
  let limited: TestServer;
  before(async () => {
    limited = await startTestServer({ maxResultRows: 10, maxSpillBytes: 20_000 });
  });
  after(async () => {
    await limited?.close();
  });

  it('maxSpillBytes ends the spill, marked truncated; later statements of the instance get none', async () => {
    const client = limited.client();
    const { name, id } = await runScript(client, {
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT i FROM range(100000) t(i); SELECT i + 1000000 FROM range(100) t(i)',
    });
    const page = await client.request('GET', `${resultsPath(client, name, id, '0')}?limit=10000`);
    assert.equal(page.json.truncated, true);
    assert.ok(page.json.rowCount > 10 && page.json.rowCount < 100_000, String(page.json.rowCount));
    assert.deepEqual(
      page.json.rows.map((r: number[]) => r[0]),
      [...Array(page.json.rowCount).keys()],
    );
    const second = await client.request('GET', resultsPath(client, name, id, '1'));
    assert.equal(second.json.truncated, true);
    assert.equal(second.json.rowCount, 0);
  });

  it('with spills off (maxSpillBytes 0) a capped statement answers OPENDLF.0652, one within the caps pages', async () => {
    const off = await startTestServer({ maxResultRows: 10, maxSpillBytes: 0 });
    try {
      const client = off.client();
      const { name, id } = await runScript(client, {
        type: 'DWSSQL',
        connectionName: 'duckdb',
        content: 'SELECT i FROM range(100) t(i); SELECT 1 AS one',
      });
      const capped = await client.request('GET', resultsPath(client, name, id, '0'));
      assert.equal(capped.status, 400);
      assert.equal(capped.json.error_code, 'OPENDLF.0652');
      const csv = await client.request('GET', resultsPath(client, name, id, '1.csv'));
      assert.equal(csv.text, 'one\n1\n');
    } finally {
      await off.close();
    }
  });
});

describe('retention', () => {
  it('the retention sweep deletes a spill with its instance', async () => {
    const dataDir = tempDir();
    const first = await startTestServer({ dataDir, maxResultRows: 10 });
    let id: string;
    try {
      ({ id } = await runScript(first.client(), {
        type: 'DWSSQL',
        connectionName: 'duckdb',
        content: 'SELECT i FROM range(1000) t(i)',
      }));
    } finally {
      await first.close();
    }
    const folder = join(dataDir, 'results', id);
    assert.equal(existsSync(folder), true);
    // Retention 0: the sweep at start-up deletes every ended instance.
    const second = await startTestServer({ dataDir, retentionDays: 0 });
    try {
      const deadline = Date.now() + 30_000;
      while (existsSync(folder) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(existsSync(folder), false);
    } finally {
      await second.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a PostgreSQL store (several nodes)', () => {
  let database: ClusterDatabase;
  let shared: string;
  const nodes: TestServer[] = [];
  const previousKey = process.env.OPENDLF_SECRET_KEY;
  before(async () => {
    database = await createClusterDatabase('opendlf_spill');
    shared = tempDir('opendlf-spill-shared-');
    // Every node of a deployment seals secrets with the same key.
    process.env.OPENDLF_SECRET_KEY = Buffer.alloc(32, 7).toString('base64');
    for (const [nodeId, resultSpillDirectory] of [
      ['spill-a', shared],
      ['spill-b', shared],
      ['spill-c', ''],
    ] as const) {
      nodes.push(
        await startTestServer({
          store: database.url,
          nodeId,
          resultSpillDirectory,
          maxResultRows: 10,
          pollMs: 200,
        }),
      );
    }
  });
  after(async () => {
    for (const node of nodes) await node.close();
    await database?.drop();
    rmSync(shared, { recursive: true, force: true });
    if (previousKey === undefined) delete process.env.OPENDLF_SECRET_KEY;
    else process.env.OPENDLF_SECRET_KEY = previousKey;
  });

  it('a spill in resultSpillDirectory is read from another node, and deleted from there', async () => {
    const [a, b] = nodes as [TestServer, TestServer];
    const { name, id } = await runScript(a.client(), {
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT i::INTEGER + 1 AS id, 'r' || (i + 1) AS name FROM range(3000) t(i)",
    });
    const onB = b.client();
    const { rows, rowCount } = await allPages(onB, name, id, 0, 1000);
    assert.equal(rowCount, 3000);
    assertSequence(rows, 3000, 'read on node b');
    assert.equal(existsSync(join(shared, id)), true);
    assert.equal((await onB.request('DELETE', onB.path(`/${name}`))).status, 204);
    assert.equal(existsSync(join(shared, id)), false);
  });

  it('without resultSpillDirectory a PostgreSQL store spills nothing: a capped statement answers OPENDLF.0652', async () => {
    const c = nodes[2]!;
    const { name, id } = await runScript(c.client(), {
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT i FROM range(100) t(i)',
    });
    const page = await c.client().request('GET', resultsPath(c.client(), name, id, '0'));
    assert.equal(page.json.error_code, 'OPENDLF.0652');
    assert.equal(existsSync(join(c.dataDir, 'results')), false);
  });
});
