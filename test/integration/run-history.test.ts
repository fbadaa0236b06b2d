/**
 * Run history through the API (README "Extension endpoints"): `GET …/scripts/{name}/instances` and
 * `GET /v1/{project_id}/instances` — newest first, filters by status, detailedStatus, from/to and
 * scriptName, paging without overlap, `total`, who started and who stopped each run, bad
 * parameters answered DLF.3051, and a listing that never leaves the caller's namespace.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError } from '../helpers/assertions.js';
import { startMultiUserServer, tokenId, PRINCIPALS, type MultiUserServer } from '../helpers/multi-user.js';
import { CLUSTER_SECRET_KEY, createClusterDatabase } from '../helpers/cluster.js';
import { startTestServer, type ApiClient, type TestServer } from '../helpers/server.js';

type Item = Record<string, unknown> & { instanceId: string; createTime: string };

/** `GET /v1/{project}/instances?…` for the client's project and workspace. */
function workspaceHistory(c: ApiClient, query = '') {
  return c.request('GET', `/v1/${c.projectId}/instances${query === '' ? '' : `?${query}`}`);
}

async function listIds(c: ApiClient, query: string): Promise<{ total: number; ids: string[] }> {
  const res = await workspaceHistory(c, query);
  assert.equal(res.status, 200, res.text.slice(0, 300));
  return { total: res.json.total as number, ids: (res.json.instances as Item[]).map((i) => i.instanceId) };
}

/** Both stores: the embedded SQLite file, and PostgreSQL (a database of this test's own, dropped after). */
async function startServerOn(kind: 'SQLite' | 'PostgreSQL'): Promise<TestServer> {
  if (kind === 'SQLite') return startTestServer();
  const database = await createClusterDatabase('opendlf_history');
  // A PostgreSQL store needs the key every node of the deployment shares.
  process.env.OPENDLF_SECRET_KEY ??= CLUSTER_SECRET_KEY;
  let server: TestServer;
  try {
    server = await startTestServer({ store: database.url });
  } catch (error) {
    await database.drop();
    throw error;
  }
  return {
    ...server,
    async close() {
      await server.close();
      await database.drop();
    },
  };
}

for (const kind of ['SQLite', 'PostgreSQL'] as const)
  describe(`run history on ${kind} (single user: DuckDB and shell runs)`, () => {
    let server: TestServer;
    let c: ApiClient;
    /** Instance ids in execute order (each run settles before the next starts: distinct creation times). */
    const runs: { id: string; script: string; detailed: string }[] = [];
    const newestFirst = () => runs.map((r) => r.id).reverse();
    const idsOf = (scripts: string[], detailed?: string[]) =>
      runs
        .filter(
          (r) => scripts.includes(r.script) && (detailed === undefined || detailed.includes(r.detailed)),
        )
        .map((r) => r.id)
        .reverse();

    before(async () => {
      server = await startServerOn(kind);
      c = server.client('history-project');
      const scripts = [
        { name: 'sql_ok', type: 'DWSSQL', connectionName: 'duckdb', content: 'SELECT 42 AS answer;' },
        {
          name: 'sql_bad',
          type: 'DWSSQL',
          connectionName: 'duckdb',
          content: 'SELECT * FROM no_such_table;',
        },
        { name: 'sh_ok', type: 'Shell', connectionName: 'local', content: 'echo fine' },
        { name: 'sh_fail', type: 'Shell', connectionName: 'local', content: 'echo broken; exit 3' },
        { name: 'sh_long', type: 'Shell', connectionName: 'local', content: 'sleep 300' },
      ];
      for (const script of scripts) await c.createScript(script);
      const plan: [string, string][] = [
        ['sql_ok', 'FINISHED'],
        ['sh_ok', 'FINISHED'],
        ['sql_bad', 'FAILED'],
        ['sql_ok', 'FINISHED'],
        ['sh_fail', 'FAILED'],
        ['sh_long', 'STOPPED'],
        ['sh_ok', 'FINISHED'],
        ['sql_ok', 'FINISHED'],
      ];
      for (const [script, detailed] of plan) {
        const id = await c.execute(script);
        if (detailed === 'STOPPED') {
          await c.waitFor(script, id, (b) => b.detailedStatus === 'RUNNING');
          assert.equal((await c.stop(script, id)).status, 204);
        }
        const done = await c.waitFor(script, id);
        assert.equal(done.json.detailedStatus, detailed, done.text.slice(0, 300));
        runs.push({ id, script, detailed });
      }
    });

    after(async () => {
      await server.close();
    });

    it('lists the workspace newest first with every field of a run, without results', async () => {
      const res = await workspaceHistory(c, 'limit=100');
      assert.equal(res.status, 200);
      assert.equal(res.json.total, runs.length);
      const items = res.json.instances as Item[];
      assert.deepEqual(
        items.map((i) => i.instanceId),
        newestFirst(),
      );
      for (const item of items) {
        const run = runs.find((r) => r.id === item.instanceId);
        assert.ok(run);
        assert.equal(item.scriptName, run.script);
        assert.equal(item.detailedStatus, run.detailed);
        assert.equal(item.status, run.detailed === 'FINISHED' ? 'FINISHED' : 'FAILED');
        assert.equal(item.results, undefined);
        assert.equal(item.startedBy, 'anonymous');
        assert.equal(typeof item.nodeId, 'string');
        assert.equal(item.connectionName, run.script.startsWith('sql') ? 'duckdb' : 'local');
        const start = Date.parse(item.startTime as string);
        const end = Date.parse(item.endTime as string);
        assert.ok(Date.parse(item.createTime) <= start && start <= end, JSON.stringify(item));
        assert.equal(item.duration, (end - start) / 1000);
        assert.equal(typeof item.message, 'string');
      }
      // Times strictly newest first (the order the listing promises).
      const created = items.map((i) => Date.parse(i.createTime));
      assert.deepEqual(
        created,
        [...created].sort((a, b) => b - a),
      );
      const stopped = items.find((i) => i.detailedStatus === 'STOPPED');
      assert.equal(stopped?.stoppedBy, 'anonymous');
      assert.equal(typeof stopped?.stopRequestTime, 'string');
      assert.equal(stopped?.failureReason, 'stopped');
      const failedShell = items.find((i) => i.scriptName === 'sh_fail');
      assert.equal(failedShell?.exitCode, 3);
      assert.equal(failedShell?.failureReason, 'script_error');
      // The GET result names who started it too.
      const result = await c.result('sql_ok', runs[0]?.id ?? '');
      assert.equal(result.json.startedBy, 'anonymous');
    });

    it('the script route lists only that script, with the same filters', async () => {
      const res = await c.request('GET', c.path('/sql_ok/instances'));
      assert.equal(res.status, 200);
      assert.equal(res.json.total, 3);
      assert.deepEqual(
        (res.json.instances as Item[]).map((i) => i.instanceId),
        idsOf(['sql_ok']),
      );
      const none = await c.request('GET', c.path('/sql_ok/instances?status=FAILED'));
      assert.deepEqual(none.json, { total: 0, instances: [] });
      const paged = await c.request('GET', c.path('/sh_ok/instances?limit=1&offset=1'));
      assert.equal(paged.json.total, 2);
      assert.deepEqual(
        (paged.json.instances as Item[]).map((i) => i.instanceId),
        idsOf(['sh_ok']).slice(1),
      );
      // scriptName means nothing here: the path names the script.
      const ignored = await c.request('GET', c.path('/sql_ok/instances?scriptName=sh_ok'));
      assert.equal(ignored.json.total, 3);
      assertError(await c.request('GET', c.path('/ghost/instances')), 400, 'DLF.6201');
    });

    it('filters by status and detailedStatus (comma lists; both must hold)', async () => {
      const all = runs.map((r) => r.script);
      assert.deepEqual(await listIds(c, 'status=FAILED&limit=100'), {
        total: 3,
        ids: idsOf(all, ['FAILED', 'STOPPED']),
      });
      assert.deepEqual(await listIds(c, 'status=FINISHED&limit=100'), {
        total: 5,
        ids: idsOf(all, ['FINISHED']),
      });
      assert.deepEqual(await listIds(c, 'status=FINISHED,FAILED&limit=100'), {
        total: 8,
        ids: newestFirst(),
      });
      assert.deepEqual(await listIds(c, 'status=RUNNING,LAUNCHING'), { total: 0, ids: [] });
      assert.deepEqual(await listIds(c, 'detailedStatus=STOPPED'), {
        total: 1,
        ids: idsOf(all, ['STOPPED']),
      });
      assert.deepEqual(await listIds(c, 'detailedStatus=FAILED,%20STOPPED&limit=100'), {
        total: 3,
        ids: idsOf(all, ['FAILED', 'STOPPED']),
      });
      assert.deepEqual(await listIds(c, 'status=FAILED&detailedStatus=FAILED,FINISHED'), {
        total: 2,
        ids: idsOf(all, ['FAILED']),
      });
      assert.deepEqual(await listIds(c, 'status=FINISHED&detailedStatus=STOPPED'), { total: 0, ids: [] });
    });

    it('filters by creation time: from inclusive, to exclusive, epoch ms or ISO-8601', async () => {
      const items = (await workspaceHistory(c, 'limit=100')).json.instances as Item[];
      // The fourth run in execute order; items are newest first.
      const pivot = items[items.length - 4];
      assert.ok(pivot);
      const pivotMs = Date.parse(pivot.createTime);
      const newer = newestFirst().slice(0, runs.length - 3);
      const older = newestFirst().slice(runs.length - 3);
      assert.deepEqual(await listIds(c, `from=${pivotMs}&limit=100`), { total: 5, ids: newer });
      assert.deepEqual(await listIds(c, `to=${pivotMs}&limit=100`), { total: 3, ids: older });
      assert.deepEqual(await listIds(c, `from=${encodeURIComponent(pivot.createTime)}&limit=100`), {
        total: 5,
        ids: newer,
      });
      // The same instant with an offset: encoded `+`, and a `+` sent raw (it arrives as a space).
      const shifted = new Date(pivotMs + 3_600_000).toISOString().replace('Z', '+01:00');
      assert.deepEqual(await listIds(c, `to=${encodeURIComponent(shifted)}&limit=100`), {
        total: 3,
        ids: older,
      });
      assert.deepEqual(await listIds(c, `to=${shifted}&limit=100`), { total: 3, ids: older });
      assert.deepEqual(await listIds(c, `from=${pivotMs}&to=${pivotMs + 1}`), {
        total: 1,
        ids: [pivot.instanceId],
      });
      assert.deepEqual(await listIds(c, `from=${pivotMs}&to=${pivotMs}`), { total: 0, ids: [] });
      assert.deepEqual(await listIds(c, 'to=2000-01-01'), { total: 0, ids: [] });
      assert.deepEqual(await listIds(c, 'from=2000-01-01&limit=100'), { total: 8, ids: newestFirst() });
      // Combined with a script and a status.
      assert.deepEqual(await listIds(c, `scriptName=sql_ok&status=FINISHED&from=${pivotMs}`), {
        total: 2,
        ids: idsOf(['sql_ok']).slice(0, 2),
      });
    });

    it('scriptName on the workspace route is an exact name', async () => {
      assert.deepEqual(await listIds(c, 'scriptName=sh_ok'), { total: 2, ids: idsOf(['sh_ok']) });
      assert.deepEqual(await listIds(c, 'scriptName=sh_'), { total: 0, ids: [] });
      assert.deepEqual(await listIds(c, 'scriptName=SH_OK'), { total: 0, ids: [] });
    });

    it('pages without overlap, total on every page, an empty page past the end', async () => {
      const seen: string[] = [];
      for (let offset = 0; offset < runs.length; offset += 3) {
        const page = await listIds(c, `limit=3&offset=${offset}`);
        assert.equal(page.total, runs.length);
        assert.ok(page.ids.length <= 3);
        seen.push(...page.ids);
      }
      assert.deepEqual(seen, newestFirst());
      assert.deepEqual(await listIds(c, `offset=${runs.length}`), { total: runs.length, ids: [] });
      assert.deepEqual(await listIds(c, 'offset=1000000000&limit=1000'), { total: runs.length, ids: [] });
      // Default limit 10.
      assert.equal((await listIds(c, '')).ids.length, Math.min(10, runs.length));
      const failedPages = [
        await listIds(c, 'status=FAILED&limit=2'),
        await listIds(c, 'status=FAILED&limit=2&offset=2'),
      ];
      assert.deepEqual(
        failedPages.flatMap((p) => p.ids),
        idsOf(
          runs.map((r) => r.script),
          ['FAILED', 'STOPPED'],
        ),
      );
      assert.ok(failedPages.every((p) => p.total === 3));
    });

    it('answers bad parameters with DLF.3051 naming them, on both routes', async () => {
      const bad = [
        ['status=DONE', /status must be one or more of LAUNCHING, RUNNING, FINISHED, FAILED/],
        ['status=finished', /status/],
        ['status=FAILED,', /status/],
        ['status=STOPPED', /status/],
        ['detailedStatus=CANCELLED', /detailedStatus must be one or more of QUEUED/],
        ['detailedStatus=FAILED;DROP', /detailedStatus/],
        ['from=yesterday', /from must be epoch milliseconds or an ISO-8601/],
        ['from=2026-02-30', /from/],
        ['from=2026-12-01T10:00:00', /from/],
        ['from=2026-12-01T24:00:00Z', /from/],
        ['to=-1', /to must/],
        ['to=1e12', /to must/],
        ['to=99999999999999999', /to must/],
        ['from=2026-12-02&to=2026-12-01', /from must not be later than to/],
        ['offset=-1', /offset must be an integer from 0 to 1000000000/],
        ['offset=1.5', /offset/],
        ['limit=0', /limit must be an integer from 1 to 1000/],
        ['limit=1001', /limit/],
        ['limit=x', /limit/],
        ['status=FAILED&status=FINISHED', /status may be given only once/],
        ['from=1&from=2', /from may be given only once/],
      ] as const;
      for (const [query, message] of bad) {
        for (const res of [
          await workspaceHistory(c, query),
          await c.request('GET', c.path(`/sql_ok/instances?${query}`)),
        ]) {
          assertError(res, 400, 'DLF.3051');
          assert.match(res.json.error_msg as string, message, query);
        }
      }
      for (const query of ['scriptName=a%20b', `scriptName=${'x'.repeat(129)}`, 'scriptName=%2E%2E%2Fetc']) {
        const res = await workspaceHistory(c, query);
        assertError(res, 400, 'DLF.3051');
        assert.match(res.json.error_msg as string, /scriptName/);
      }
    });

    it('shows only the caller’s project and workspace', async () => {
      assert.deepEqual(await listIds(server.client('history-project', 'other_ws'), ''), {
        total: 0,
        ids: [],
      });
      assert.deepEqual(await listIds(server.client('other-project'), ''), { total: 0, ids: [] });
      // The default workspace named explicitly is the same workspace.
      assert.equal((await listIds(server.client('history-project', 'default'), '')).total, runs.length);
    });
  });

describe('run history (multi-user: who started, who stopped, who may read)', () => {
  let server: MultiUserServer;
  before(async () => {
    server = await startMultiUserServer();
  });
  after(async () => {
    await server.close();
  });

  it('records the executing and the stopping principal; read needs read in the namespace', async () => {
    const developer = server.as('developerA');
    const operator = server.as('operatorA');
    const viewer = server.as('viewerA');
    await developer.createScript({
      name: 'spin',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3;',
    });
    const id = await developer.execute('spin');
    await developer.waitFor('spin', id, (b) => b.detailedStatus === 'RUNNING');
    assert.equal((await operator.stop('spin', id)).status, 204);
    await developer.waitFor('spin', id);
    const secondId = await operator.execute('spin');
    await operator.stop('spin', secondId);
    await operator.waitFor('spin', secondId);

    const res = await workspaceHistory(viewer, 'scriptName=spin');
    assert.equal(res.status, 200);
    assert.equal(res.json.total, 2);
    const [second, first] = res.json.instances as Item[];
    assert.equal(first?.instanceId, id);
    assert.equal(first?.detailedStatus, 'STOPPED');
    assert.equal(first?.startedBy, tokenId(PRINCIPALS.developerA.token));
    assert.equal(first?.stoppedBy, tokenId(PRINCIPALS.operatorA.token));
    assert.equal(second?.instanceId, secondId);
    assert.equal(second?.startedBy, tokenId(PRINCIPALS.operatorA.token));
    const byScript = await viewer.request('GET', viewer.path('/spin/instances?detailedStatus=STOPPED'));
    assert.equal(byScript.json.total, 2);

    // Another project's admin: refused on both routes; another workspace: nothing of this one.
    const outsider = server.as('adminB', { projectId: viewer.projectId });
    assertError(await workspaceHistory(outsider), 403, 'DLF.6888');
    assertError(await outsider.request('GET', outsider.path('/spin/instances')), 403, 'DLF.6888');
    assertError(await workspaceHistory(server.client(viewer.projectId)), 401, 'APIGW.0301');
    assert.deepEqual((await workspaceHistory(server.as('viewerA', { workspace: 'elsewhere' }))).json, {
      total: 0,
      instances: [],
    });
    // Admin B in its own project sees none of project A's runs.
    assert.deepEqual((await workspaceHistory(server.as('adminB'))).json, { total: 0, instances: [] });
  });
});
