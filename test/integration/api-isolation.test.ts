/**
 * HTTP integration tests of namespace isolation (docs/compatibility.md §1): the `workspace` header
 * and the project id in the path each separate scripts, instances and SQL data; a server with
 * declared workspaces refuses unknown ones; instance ids are checked against the script and
 * namespace they are fetched through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';
import { assertError, assertNoContent, assertOk } from '../helpers/assertions.js';

const get = (c: ApiClient, name: string) => c.request('GET', c.path(`/${encodeURIComponent(name)}`));
const list = (c: ApiClient, query = '?limit=1000') => c.request('GET', c.path(query));
const names = (res: ApiResponse) => (res.json.scripts as { name: string }[]).map((s) => s.name).sort();
const shell = (name: string, content: string) => ({ name, type: 'Shell', connectionName: 'local', content });

let server: TestServer;
let counter = 0;
/** A project id no other test uses. */
function project(): string {
  counter += 1;
  return `iso-p${counter}`;
}

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

describe('workspace isolation', () => {
  it('scripts of workspace A are invisible in workspace B and in the default workspace', async () => {
    const p = project();
    const a = server.client(p, 'wsA');
    const b = server.client(p, 'wsB');
    const none = server.client(p);
    await a.createScript(shell('only_a', 'echo a'));

    assertOk(await get(a, 'only_a'));
    assertError(await get(b, 'only_a'), 400, 'DLF.6201');
    assertError(await get(none, 'only_a'), 400, 'DLF.6201');
    assert.deepEqual((await list(a)).json.total, 1);
    assert.deepEqual((await list(b)).json, { total: 0, scripts: [] });
    assert.deepEqual((await list(none)).json, { total: 0, scripts: [] });

    // Every other script endpoint also misses it from B.
    assertError(await b.request('PUT', b.path('/only_a'), { body: shell('only_a', 'x') }), 400, 'DLF.6201');
    assertError(await b.request('DELETE', b.path('/only_a')), 400, 'DLF.6201');
    assertError(await b.request('POST', b.path('/only_a/execute')), 400, 'DLF.6201');
    assertError(await b.request('GET', b.path('/only_a/instances')), 400, 'DLF.6201');
    assert.equal((await get(a, 'only_a')).json.content, 'echo a');
  });

  it('the same name lives independently in two workspaces', async () => {
    const p = project();
    const a = server.client(p, 'wsA');
    const b = server.client(p, 'wsB');
    await a.createScript(shell('same', 'echo from A'));
    await b.createScript({
      name: 'same',
      type: 'PYTHON',
      connectionName: 'local',
      content: 'print("from B")',
    });
    assert.equal((await get(a, 'same')).json.type, 'Shell');
    assert.equal((await get(b, 'same')).json.type, 'PYTHON');
    assertNotEqualIds(await get(a, 'same'), await get(b, 'same'));

    assertNoContent(await a.request('PUT', a.path('/same'), { body: shell('same', 'echo changed') }));
    assert.equal((await get(b, 'same')).json.content, 'print("from B")');
    assertNoContent(await a.request('DELETE', a.path('/same')));
    assertError(await get(a, 'same'), 400, 'DLF.6201');
    assertOk(await get(b, 'same'));
  });

  it('no header and the header "default" are the same workspace', async () => {
    const p = project();
    const none = server.client(p);
    const dflt = server.client(p, 'default');
    const empty = server.client(p, '');
    await none.createScript(shell('created_without_header', 'echo 1'));
    assertOk(await get(dflt, 'created_without_header'));
    assertOk(await get(empty, 'created_without_header'));
    await dflt.createScript(shell('created_with_header', 'echo 2'));
    assertOk(await get(none, 'created_with_header'));
    assertError(
      await none.request('POST', none.path(), { body: shell('created_with_header', 'echo 3') }),
      400,
      'DLF.0202',
    );
    assert.deepEqual(names(await list(none)), names(await list(dflt)));
    assert.equal((await list(none)).json.total, 2);
    // Delete through one, gone through the other (GO's acceptance test pattern).
    assertNoContent(await dflt.request('DELETE', dflt.path('/created_without_header')));
    assertError(await get(none, 'created_without_header'), 400, 'DLF.6201');
  });

  it('instances are visible only through the workspace that ran them', async () => {
    const p = project();
    const a = server.client(p, 'wsA');
    const b = server.client(p, 'wsB');
    await a.createScript(shell('runner', 'echo A'));
    await b.createScript(shell('runner', 'echo B'));
    const idA = await a.execute('runner');
    const idB = await b.execute('runner');
    const doneA = await a.waitFor('runner', idA);
    const doneB = await b.waitFor('runner', idB);
    assert.deepEqual(doneA.json.results[0].rows, [['A']]);
    assert.deepEqual(doneB.json.results[0].rows, [['B']]);

    assertError(await b.result('runner', idA), 400, 'DLF.6205');
    assertError(await a.result('runner', idB), 400, 'DLF.6205');
    assertError(await b.stop('runner', idA), 400, 'DLF.6205');
    const listA = await a.request('GET', a.path('/runner/instances'));
    assertOk(listA);
    assert.deepEqual(
      (listA.json.instances as { instanceId: string }[]).map((i) => i.instanceId),
      [idA],
    );
  });

  it('SQL data of the duckdb connection is separate per workspace', async () => {
    const p = project();
    const a = server.client(p, 'wsA');
    const b = server.client(p, 'wsB');
    const sql = (name: string, content: string) => ({
      name,
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content,
    });
    await a.createScript(sql('mk', 'create table secret_a(x int); insert into secret_a values (42);'));
    await a.createScript(sql('rd', 'select x from secret_a'));
    await b.createScript(sql('rd', 'select x from secret_a'));
    assert.equal((await a.waitFor('mk', await a.execute('mk'))).json.status, 'FINISHED');
    const readA = await a.waitFor('rd', await a.execute('rd'));
    assert.equal(readA.json.status, 'FINISHED');
    assert.deepEqual(readA.json.results[0].rows, [[42]]);
    const readB = await b.waitFor('rd', await b.execute('rd'));
    assert.equal(readB.json.status, 'FAILED');
    assert.match(readB.json.message, /secret_a/);
  });

  it('refuses a malformed workspace id with DLF.0819', async () => {
    const p = project();
    for (const workspace of ['a/b', 'ws.1', 'x'.repeat(65), 'ws 1']) {
      const c = server.client(p, workspace);
      assertError(await list(c), 400, 'DLF.0819');
      assertError(await c.request('POST', c.path(), { body: shell('x', '') }), 400, 'DLF.0819');
    }
  });
});

describe('project isolation', () => {
  it("two project ids never see each other's scripts", async () => {
    const p1 = server.client(project());
    const p2 = server.client(project());
    await p1.createScript(shell('shared_name', 'echo p1'));
    await p1.createScript(shell('p1_only', 'echo p1'));
    await p2.createScript(shell('shared_name', 'echo p2'));

    assert.deepEqual(names(await list(p1)), ['p1_only', 'shared_name']);
    assert.deepEqual(names(await list(p2)), ['shared_name']);
    assert.equal((await get(p1, 'shared_name')).json.content, 'echo p1');
    assert.equal((await get(p2, 'shared_name')).json.content, 'echo p2');
    assertError(await get(p2, 'p1_only'), 400, 'DLF.6201');
    assertError(await p2.request('DELETE', p2.path('/p1_only')), 400, 'DLF.6201');
    assertError(await p2.request('POST', p2.path('/p1_only/execute')), 400, 'DLF.6201');
    assertOk(await get(p1, 'p1_only'));
    assertNoContent(await p2.request('DELETE', p2.path('/shared_name')));
    assert.equal((await get(p1, 'shared_name')).json.content, 'echo p1');
  });

  it("two project ids never see each other's instances", async () => {
    const p1 = server.client(project());
    const p2 = server.client(project());
    const p3 = server.client(project());
    await p1.createScript(shell('job', 'echo one'));
    await p2.createScript(shell('job', 'echo two'));
    const id1 = await p1.execute('job');
    const id2 = await p2.execute('job');
    await p1.waitFor('job', id1);
    await p2.waitFor('job', id2);

    // Same script name exists in the other project: the instance is not found there.
    assertError(await p2.result('job', id1), 400, 'DLF.6205');
    assertError(await p1.result('job', id2), 400, 'DLF.6205');
    assertError(await p2.stop('job', id1), 400, 'DLF.6205');
    // The script does not exist in the third project at all.
    assertError(await p3.result('job', id1), 400, 'DLF.6201');
    assertError(await p3.stop('job', id1), 400, 'DLF.6201');

    const list1 = await p1.request('GET', p1.path('/job/instances'));
    const list2 = await p2.request('GET', p2.path('/job/instances'));
    assert.deepEqual(
      (list1.json.instances as { instanceId: string }[]).map((i) => i.instanceId),
      [id1],
    );
    assert.deepEqual(
      (list2.json.instances as { instanceId: string }[]).map((i) => i.instanceId),
      [id2],
    );
    assert.equal((await p1.result('job', id1)).json.status, 'FINISHED');
  });

  it('a project and a workspace with the same name do not collide', async () => {
    const p = project();
    const pw = server.client(p, 'ws1');
    const other = server.client('ws1', p);
    await pw.createScript(shell('collide', 'echo 1'));
    assertError(await get(other, 'collide'), 400, 'DLF.6201');
    await other.createScript(shell('collide', 'echo 2'));
    assert.equal((await get(pw, 'collide')).json.content, 'echo 1');
    assert.equal((await get(other, 'collide')).json.content, 'echo 2');
  });
});

describe('instance lookup errors', () => {
  let c: ApiClient;
  let idOfFirst: string;

  before(async () => {
    c = server.client(project());
    await c.createScript(shell('first', 'echo first'));
    await c.createScript(shell('second', 'echo second'));
    idOfFirst = await c.execute('first');
    await c.waitFor('first', idOfFirst);
  });

  it('an instance fetched through another script is DLF.6205', async () => {
    assertError(await c.result('second', idOfFirst), 400, 'DLF.6205');
    assertError(await c.stop('second', idOfFirst), 400, 'DLF.6205');
    assertOk(await c.result('first', idOfFirst));
  });

  it('an unknown instance id is DLF.6205 on result and stop', async () => {
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-an-id', '1']) {
      assertError(await c.result('first', id), 400, 'DLF.6205');
      assertError(await c.stop('first', id), 400, 'DLF.6205');
    }
  });

  it('an unknown script is DLF.6201 on result, stop, execute and the instance list', async () => {
    assertError(await c.result('ghost', idOfFirst), 400, 'DLF.6201');
    assertError(await c.stop('ghost', idOfFirst), 400, 'DLF.6201');
    assertError(await c.request('POST', c.path('/ghost/execute')), 400, 'DLF.6201');
    assertError(
      await c.request('POST', c.path('/ghost/execute'), { body: { params: { a: '1' } } }),
      400,
      'DLF.6201',
    );
    assertError(await c.request('GET', c.path('/ghost/instances')), 400, 'DLF.6201');
  });
});

describe('declared workspaces', () => {
  let declared: TestServer;

  before(async () => {
    declared = await startTestServer({ workspaces: ['ws1'] });
  });

  after(async () => {
    await declared.close();
  });

  it('refuses an unknown workspace with DLF.0819 on every endpoint', async () => {
    const c = declared.client(project(), 'ws2');
    const checks: ApiResponse[] = [
      await c.request('POST', c.path(), { body: shell('s', 'echo') }),
      await c.request('GET', c.path()),
      await c.request('GET', c.path('/s')),
      await c.request('PUT', c.path('/s'), { body: shell('s', 'echo') }),
      await c.request('DELETE', c.path('/s')),
      await c.request('POST', c.path('/s/execute')),
      await c.result('s', 'x'),
      await c.stop('s', 'x'),
      await c.request('GET', c.path('/s/instances')),
    ];
    for (const res of checks) assertError(res, 400, 'DLF.0819');
    assert.match(checks[0]!.json.error_msg, /workspace/i);
  });

  it('accepts the declared workspace, and the default one (no header)', async () => {
    const p = project();
    const ws1 = declared.client(p, 'ws1');
    const none = declared.client(p);
    const dflt = declared.client(p, 'default');
    await ws1.createScript(shell('in_ws1', 'echo ws1'));
    await none.createScript(shell('in_default', 'echo default'));
    assert.deepEqual(names(await list(ws1)), ['in_ws1']);
    assert.deepEqual(names(await list(none)), ['in_default']);
    assert.deepEqual(names(await list(dflt)), ['in_default']);
    const id = await ws1.execute('in_ws1');
    const done = await ws1.waitFor('in_ws1', id);
    assert.equal(done.json.status, 'FINISHED');
    assert.deepEqual(done.json.results[0].rows, [['ws1']]);
  });

  it('workspace ids are case-sensitive', async () => {
    const c = declared.client(project(), 'WS1');
    assertError(await c.request('GET', c.path()), 400, 'DLF.0819');
  });
});

function assertNotEqualIds(x: ApiResponse, y: ApiResponse): void {
  assert.equal(typeof x.json.id, 'string');
  assert.equal(typeof y.json.id, 'string');
  assert.notEqual(x.json.id, y.json.id);
}
