/**
 * Execute extensions: `?waitSeconds=N` (answer with the result when the run settles in time), the
 * `Idempotency-Key` header (one instance per key and script, also under concurrent duplicates and
 * across two nodes of a PostgreSQL store), and `timeoutSeconds` (per call, or the script's
 * `opendlf.timeoutSeconds` default) ending the run TIMED_OUT with its whole process tree.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseScriptInput } from '../../src/domain/script.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { NewInstance, Store } from '../../src/store/store.js';
import { assertError, assertOk } from '../helpers/assertions.js';
import { CLUSTER_SECRET_KEY, createClusterDatabase, type ClusterDatabase } from '../helpers/cluster.js';
import { processesOfInstance } from '../helpers/processes.js';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';

const executePath = (api: ApiClient, name: string, query = '') =>
  api.path(`/${encodeURIComponent(name)}/execute${query}`);

function execute(
  api: ApiClient,
  name: string,
  options: { body?: unknown; rawBody?: string; key?: string; query?: string } = {},
): Promise<ApiResponse> {
  return api.request('POST', executePath(api, name, options.query), {
    ...(options.rawBody === undefined ? { body: options.body ?? {} } : { rawBody: options.rawBody }),
    headers: options.key === undefined ? {} : { 'idempotency-key': options.key },
  });
}

function linesOf(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

describe('execute with a bounded wait (?waitSeconds)', () => {
  let server: TestServer;
  let api: ApiClient;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'opendlf-exec-ext-'));
    server = await startTestServer();
    api = server.client();
    await api.createScript({
      name: 'answer',
      type: 'DWSSQL',
      content: 'select 42 as answer',
      connectionName: 'duckdb',
    });
    await api.createScript({ name: 'slow', type: 'Shell', content: 'sleep 30', connectionName: 'local' });
    await api.createScript({
      name: 'marker',
      type: 'Shell',
      content: `echo ran >> ${join(dir, 'ran')}`,
      connectionName: 'local',
    });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers with the settled result, the same body as the result GET', async () => {
    const response = await execute(api, 'answer', { query: '?waitSeconds=30' });
    assertOk(response);
    assert.equal(Object.keys(response.json)[0], 'instanceId');
    assert.equal(response.json.status, 'FINISHED');
    assert.deepEqual(response.json.results[0].rows, [[42]]);
    const read = await api.result('answer', response.json.instanceId);
    assert.deepEqual(response.json, read.json);
  });

  it('answers only the instance id when the run has not settled in time', async () => {
    const response = await execute(api, 'slow', { query: '?waitSeconds=1' });
    assertOk(response);
    assert.deepEqual(Object.keys(response.json), ['instanceId']);
    const read = await api.result('slow', response.json.instanceId);
    assert.ok(['LAUNCHING', 'RUNNING'].includes(read.json.status), read.text);
    assert.equal((await api.stop('slow', response.json.instanceId)).status, 204);
  });

  it('without the parameter the answer is exactly {"instanceId"}', async () => {
    const response = await execute(api, 'answer');
    assertOk(response);
    assert.match(response.text, /^\{"instanceId":"[0-9a-f-]{36}"\}$/);
    assert.equal(response.headers.get('idempotent-replayed'), null);
  });

  it('a bad waitSeconds is DLF.3051 and nothing runs', async () => {
    for (const bad of ['-1', '61', 'abc', '1e3', '', '1.2345']) {
      assertError(await execute(api, 'marker', { query: `?waitSeconds=${bad}` }), 400, 'DLF.3051');
    }
    assertError(await execute(api, 'marker', { query: '?waitSeconds=1&waitSeconds=2' }), 400, 'DLF.3051');
    // The same call with a good value does run (so the file above would have shown a run).
    const ok = await execute(api, 'marker', { query: '?waitSeconds=30' });
    assert.equal(ok.json.status, 'FINISHED', ok.text);
    assert.deepEqual(linesOf(join(dir, 'ran')), ['ran']);
  });
});

describe('Idempotency-Key (SQLite store)', () => {
  let server: TestServer;
  let api: ApiClient;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'opendlf-idem-'));
    server = await startTestServer();
    api = server.client();
    for (const name of ['count-a', 'count-b']) {
      await api.createScript({
        name,
        type: 'Shell',
        content: `echo \${n} >> ${join(dir, name)}`,
        connectionName: 'local',
      });
    }
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('20 concurrent executes with one key create one instance, run once', async () => {
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => execute(api, 'count-a', { body: { params: { n: '1' } }, key })),
    );
    for (const response of responses) assertOk(response);
    const ids = new Set(responses.map((r) => r.json.instanceId as string));
    assert.equal(ids.size, 1, [...ids].join(' '));
    const replays = responses.filter((r) => r.headers.get('idempotent-replayed') === 'true');
    assert.equal(replays.length, 19);
    const [id] = ids;
    assert.ok(id);
    assert.equal((await api.waitFor('count-a', id)).json.status, 'FINISHED');
    // A repeat after the run ended still answers the same instance, and runs nothing.
    const later = await execute(api, 'count-a', { rawBody: '{ "params" : { "n" : "1" } }', key });
    assert.equal(later.json.instanceId, id);
    assert.deepEqual(linesOf(join(dir, 'count-a')), ['1']);
  });

  it('the same key with a different body is OPENDLF.0640, and nothing runs', async () => {
    const key = `order-${randomUUID()}`;
    const first = await execute(api, 'count-b', { body: { params: { n: '2' } }, key });
    assertOk(first);
    await api.waitFor('count-b', first.json.instanceId);
    const other = await execute(api, 'count-b', { body: { params: { n: '3' } }, key });
    assertError(other, 400, 'OPENDLF.0640');
    assert.match(other.json.error_msg, /different request/);
    assertError(
      await execute(api, 'count-b', { body: { params: { n: '2' }, timeoutSeconds: 5 }, key }),
      400,
      'OPENDLF.0640',
    );
    // Key order and white space do not make a different request.
    const again = await execute(api, 'count-b', { rawBody: '{"params":{"n":"2"}}\n', key });
    assert.equal(again.json.instanceId, first.json.instanceId);
    assert.deepEqual(linesOf(join(dir, 'count-b')), ['2']);
  });

  it('different scripts with the same key are independent', async () => {
    const key = `shared-${randomUUID()}`;
    const a = await execute(api, 'count-a', { body: { params: { n: '4' } }, key });
    const b = await execute(api, 'count-b', { body: { params: { n: '4' } }, key });
    assertOk(a);
    assertOk(b);
    assert.notEqual(a.json.instanceId, b.json.instanceId);
    assert.equal(b.headers.get('idempotent-replayed'), null);
    await api.waitFor('count-a', a.json.instanceId);
    await api.waitFor('count-b', b.json.instanceId);
  });

  it('a repeat with ?waitSeconds answers the first instance with its result', async () => {
    const key = randomUUID();
    const first = await execute(api, 'count-a', {
      body: { params: { n: '5' } },
      key,
      query: '?waitSeconds=30',
    });
    assert.equal(first.json.status, 'FINISHED', first.text);
    const repeat = await execute(api, 'count-a', {
      body: { params: { n: '5' } },
      key,
      query: '?waitSeconds=30',
    });
    assert.equal(repeat.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(repeat.json, first.json);
  });

  it('bad keys are DLF.3051 and nothing runs', async () => {
    const before = linesOf(join(dir, 'count-b')).length;
    for (const bad of ['', 'x'.repeat(256), 'caf\u00e9', 'a\tb']) {
      assertError(await execute(api, 'count-b', { body: { params: { n: '6' } }, key: bad }), 400, 'DLF.3051');
    }
    assert.equal(linesOf(join(dir, 'count-b')).length, before);
    // 255 printable characters, spaces included, are a key.
    const longest = `${'k '.repeat(127)}k`;
    const ok = await execute(api, 'count-b', {
      body: { params: { n: '7' } },
      key: longest,
      query: '?waitSeconds=30',
    });
    assert.equal(ok.json.status, 'FINISHED', ok.text);
  });
});

/** A server on the PostgreSQL database of this test (a node of a two-node deployment). */
function startNodeOn(database: ClusterDatabase, maxConcurrentRuns = 8): Promise<TestServer> {
  // Every node of a PostgreSQL store needs the same secret key.
  process.env.OPENDLF_SECRET_KEY ??= CLUSTER_SECRET_KEY;
  return startTestServer({ store: database.url, maxConcurrentRuns, pollMs: 100 });
}

describe('PostgreSQL store, two nodes in one process', () => {
  let database: ClusterDatabase;
  let a: TestServer;
  let b: TestServer;
  let apiA: ApiClient;
  let apiB: ApiClient;
  before(async () => {
    database = await createClusterDatabase('opendlf_execext');
    // Node A runs one instance at a time, so work queued there while it is busy is claimed by B.
    a = await startNodeOn(database, 1);
    b = await startNodeOn(database);
    apiA = a.client();
    apiB = b.client();
    await apiA.createScript({ name: 'quick', type: 'Shell', content: 'echo ${n}', connectionName: 'local' });
    await apiA.createScript({ name: 'busy', type: 'Shell', content: 'sleep 60', connectionName: 'local' });
    await apiA.createScript({
      name: 'tree',
      type: 'Shell',
      content: 'echo started; sleep 30 & sleep 30; wait',
      connectionName: 'local',
    });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  it('20 concurrent executes with one key, sent to both nodes, create one instance', async () => {
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        execute(i % 2 === 0 ? apiA : apiB, 'quick', { body: { params: { n: '1' } }, key }),
      ),
    );
    for (const response of responses) assertOk(response);
    const ids = new Set(responses.map((r) => r.json.instanceId as string));
    assert.equal(ids.size, 1, [...ids].join(' '));
    const counts = await database.admin.query<{ n: string }>(
      `SELECT count(*) AS n FROM instances WHERE script_name = 'quick'`,
    );
    assert.equal(counts.rows[0]?.n, '1');
    const [id] = ids;
    assert.ok(id);
    const done = await apiB.waitFor('quick', id);
    assert.deepEqual(done.json.results[0].rows, [['1']]);
    assertError(await execute(apiB, 'quick', { body: { params: { n: '2' } }, key }), 400, 'OPENDLF.0640');
  });

  it('the run limit travels with the instance: the node that claims it applies it', async () => {
    const busy = await execute(apiA, 'busy');
    assertOk(busy);
    const holder = await apiA.waitFor('busy', busy.json.instanceId, (r) => r.detailedStatus === 'RUNNING');
    // A is full: this one is queued there and claimed by B.
    const timed = await execute(apiA, 'tree', { body: { timeoutSeconds: 1 } });
    assertOk(timed);
    const result = await apiA.waitFor('tree', timed.json.instanceId);
    assert.equal(result.json.detailedStatus, 'TIMED_OUT', result.text);
    assert.notEqual(result.json.nodeId, holder.json.nodeId);
    assert.match(result.json.message, /timeout of 1 s/);
    assert.deepEqual(processesOfInstance(timed.json.instanceId), []);
    assert.equal((await apiA.stop('busy', busy.json.instanceId)).status, 204);
  });
});

describe('per-call timeout (timeoutSeconds)', () => {
  let server: TestServer;
  let capped: TestServer | undefined;
  let api: ApiClient;
  const TREE = 'echo started; sleep 30 & sleep 30; wait';
  before(async () => {
    server = await startTestServer({ stopGraceMs: 200 });
    api = server.client();
    await api.createScript({ name: 'tree', type: 'Shell', content: TREE, connectionName: 'local' });
    await api.createScript({
      name: 'tree-default',
      type: 'Shell',
      content: TREE,
      connectionName: 'local',
      configuration: { 'opendlf.timeoutSeconds': 1 },
    });
    await api.createScript({
      name: 'short-default',
      type: 'Shell',
      content: 'sleep 2; echo done',
      connectionName: 'local',
      configuration: { 'opendlf.timeoutSeconds': '1' },
    });
  });
  after(async () => {
    await server.close();
    await capped?.close();
  });

  async function assertTimedOut(name: string, id: string, seconds: string, client = api): Promise<void> {
    const result = await client.waitFor(name, id);
    assert.equal(result.json.status, 'FAILED', result.text);
    assert.equal(result.json.detailedStatus, 'TIMED_OUT');
    assert.equal(result.json.failureReason, 'timeout');
    assert.match(result.json.message, new RegExp(`timeout of ${seconds.replace('.', '\\.')} s`));
    assert.deepEqual(processesOfInstance(id), []);
  }

  it('timeoutSeconds=1 ends a `sleep 30` tree TIMED_OUT, naming 1 s, with every process gone', async () => {
    const response = await execute(api, 'tree', { body: { timeoutSeconds: 1 } });
    assertOk(response);
    assert.deepEqual(Object.keys(response.json), ['instanceId']);
    await assertTimedOut('tree', response.json.instanceId, '1');
    // It did start (the limit ended a running tree, not a queued instance).
    const result = await api.result('tree', response.json.instanceId);
    assert.ok(result.json.startTime, result.text);
  });

  it("the script's opendlf.timeoutSeconds is the default; a call's own value wins", async () => {
    const byDefault = await execute(api, 'tree-default');
    await assertTimedOut('tree-default', byDefault.json.instanceId, '1');
    const script = await api.request('GET', api.path('/tree-default'));
    assert.deepEqual(script.json.configuration, { 'opendlf.timeoutSeconds': '1' });
    const longer = await execute(api, 'short-default', { body: { timeoutSeconds: 30 } });
    const finished = await api.waitFor('short-default', longer.json.instanceId);
    assert.equal(finished.json.detailedStatus, 'FINISHED', finished.text);
    const fractional = await execute(api, 'tree', { body: { timeoutSeconds: '0.5' } });
    await assertTimedOut('tree', fractional.json.instanceId, '0.5');
  });

  it('bad values are DLF.3051: in the body, and in the script configuration', async () => {
    for (const bad of [0, -1, 'abc', 1.2345, 86_401, 1e21, true, {}, '']) {
      const response = await execute(api, 'tree', { body: { timeoutSeconds: bad } });
      assertError(response, 400, 'DLF.3051');
      assert.match(response.json.error_msg, /timeoutSeconds/);
    }
    for (const bad of ['0', 'x', '-5', '']) {
      const response = await api.request('POST', api.path(), {
        body: {
          name: `bad-${randomUUID().slice(0, 8)}`,
          type: 'Shell',
          content: 'true',
          configuration: { 'opendlf.timeoutSeconds': bad },
        },
      });
      assertError(response, 400, 'DLF.3051');
    }
    const modify = await api.request('PUT', api.path('/tree-default'), {
      body: {
        name: 'tree-default',
        type: 'Shell',
        content: TREE,
        configuration: { 'opendlf.timeoutSeconds': 'soon' },
      },
    });
    assertError(modify, 400, 'DLF.3051');
  });

  it("the server's instanceTimeoutSeconds caps both: a longer call is refused, a longer default shortened", async () => {
    capped = await startTestServer({ instanceTimeoutSeconds: 2, stopGraceMs: 200 });
    const client = capped.client();
    await client.createScript({
      name: 'long-default',
      type: 'Shell',
      content: TREE,
      connectionName: 'local',
      configuration: { 'opendlf.timeoutSeconds': '3600' },
    });
    const refused = await execute(client, 'long-default', { body: { timeoutSeconds: 3 } });
    assertError(refused, 400, 'DLF.3051');
    assert.match(refused.json.error_msg, /at most 2/);
    const shortened = await execute(client, 'long-default');
    await assertTimedOut('long-default', shortened.json.instanceId, '2', client);
  });
});

/** The store's side of idempotency keys, on both stores: expiry and the sweep. */
for (const kind of ['SQLite', 'PostgreSQL'] as const) {
  describe(`idempotency keys in the ${kind} store`, () => {
    let store: Store;
    let database: ClusterDatabase | undefined;
    const ns = { projectId: 'p-keys', workspaceId: 'w' };
    let scriptId = '';
    before(async () => {
      if (kind === 'SQLite') store = await openSqliteStore(':memory:');
      else {
        database = await createClusterDatabase('opendlf_keys');
        store = await openPostgresStore(database.url);
      }
      const input = parseScriptInput({ name: 's', type: 'Shell', content: 'true', connectionName: 'local' });
      await store.scripts.create(ns, input, 'test', { state: 'NONE', by: null });
      scriptId = (await store.scripts.get(ns, 's'))?.id ?? assert.fail('created');
    });
    after(async () => {
      await store?.close();
      await database?.drop();
    });

    const instance = (): NewInstance => ({
      id: randomUUID(),
      namespace: ns,
      scriptId,
      scriptName: 's',
      connectionName: 'local',
      engine: 'local-shell',
      nodeId: 'n1',
      request: { scriptType: 'Shell', content: 'true', database: '', timeoutMs: 1500 },
    });

    it('a record older than the expiry is replaced; the sweep deletes expired ones', async () => {
      const day = 24 * 3_600_000;
      const old = new Date(Date.now() - 2 * day);
      const first = await store.idempotencyKeys.createInstanceOnce(instance(), old, {
        key: 'k',
        requestHash: 'h1',
        expiredBefore: new Date(old.getTime() - day),
      });
      assert.equal(first.kind, 'created');
      const now = new Date();
      const expiredBefore = new Date(now.getTime() - day);
      assert.equal(await store.idempotencyKeys.find(ns, scriptId, 'k', expiredBefore), undefined);
      const second = await store.idempotencyKeys.createInstanceOnce(instance(), now, {
        key: 'k',
        requestHash: 'h2',
        expiredBefore,
      });
      assert.equal(second.kind, 'created');
      const repeat = await store.idempotencyKeys.createInstanceOnce(instance(), now, {
        key: 'k',
        requestHash: 'h2',
        expiredBefore,
      });
      assert.ok(repeat.kind === 'existing' && second.kind === 'created');
      assert.deepEqual(repeat.record, { instanceId: second.instance.id, requestHash: 'h2' });
      // The run limit is stored with the run request.
      const claimed = await store.instances.claim('n1', 10, 30_000, now);
      assert.ok(claimed.some((run) => run.request?.timeoutMs === 1500));
      await store.idempotencyKeys.createInstanceOnce(instance(), old, {
        key: 'old',
        requestHash: 'h',
        expiredBefore: old,
      });
      assert.equal(await store.idempotencyKeys.deleteCreatedBefore(expiredBefore), 1);
      assert.ok(await store.idempotencyKeys.find(ns, scriptId, 'k', expiredBefore));
    });

    it('a deleted script: nothing is stored, neither the instance nor the key', async () => {
      const input = parseScriptInput({ name: 'gone', type: 'Shell', content: 'true' });
      await store.scripts.create(ns, input, 'test', { state: 'NONE', by: null });
      const goneId = (await store.scripts.get(ns, 'gone'))?.id ?? assert.fail('created');
      await store.scripts.delete(ns, 'gone');
      const result = await store.idempotencyKeys.createInstanceOnce(
        { ...instance(), scriptId: goneId, scriptName: 'gone' },
        new Date(),
        { key: 'g', requestHash: 'h', expiredBefore: new Date(0) },
      );
      assert.equal(result.kind, 'scriptGone');
      assert.equal(await store.idempotencyKeys.find(ns, goneId, 'g', new Date(0)), undefined);
    });
  });
}
