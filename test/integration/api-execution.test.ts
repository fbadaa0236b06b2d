/**
 * HTTP integration tests of execution (docs/compatibility.md §4): execute's body
 * forms, `${name}` substitution, Shell/Python/DuckDB results, failures, row and output caps,
 * connection resolution, the status enum, the instance-list extension and deletion of instances
 * together with their script.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';
import { JSON_CT, assertError, assertNoContent } from '../helpers/assertions.js';

const API_STATUSES = ['LAUNCHING', 'RUNNING', 'FINISHED', 'FAILED'];
const DETAILED_STATES = [
  'QUEUED',
  'LAUNCHING',
  'RUNNING',
  'FINISHED',
  'FAILED',
  'STOPPED',
  'TIMED_OUT',
  'ABORTED',
];

/** execute's success shape: 200, JSON, exactly `{instanceId: <non-empty string>}`. */
function assertExecuted(res: ApiResponse): string {
  assert.equal(res.status, 200, res.text.slice(0, 300));
  assert.equal(res.headers.get('content-type'), JSON_CT);
  assert.deepEqual(Object.keys(res.json), ['instanceId']);
  assert.equal(typeof res.json.instanceId, 'string');
  assert.ok(res.json.instanceId.length > 0);
  return res.json.instanceId as string;
}

/** A terminal result with the documented top-level shape (plus opendlf's extension fields). */
function assertTerminal(res: ApiResponse, status: 'FINISHED' | 'FAILED', instanceId: string): void {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), JSON_CT);
  assert.equal(res.json.status, status, res.text.slice(0, 500));
  assert.ok(Array.isArray(res.json.results));
  assert.equal(res.json.instanceId, instanceId);
  if (status === 'FAILED') {
    assert.equal(typeof res.json.message, 'string');
    assert.ok(res.json.message.length > 0);
  } else {
    assert.equal(res.json.message, undefined);
    assert.equal(res.json.detailedStatus, 'FINISHED');
  }
  for (const result of res.json.results as Record<string, unknown>[]) {
    assert.ok(Array.isArray(result.schema));
    for (const column of result.schema as Record<string, unknown>[]) {
      assert.equal(Object.keys(column).length, 1);
      assert.equal(typeof Object.values(column)[0], 'string');
    }
    assert.ok(Array.isArray(result.rows));
    assert.ok(Number.isInteger(result.rowCount));
    assert.equal(result.rowCount, (result.rows as unknown[]).length);
    assert.equal(typeof result.duration, 'number');
    assert.ok((result.duration as number) >= 0);
    assert.equal(typeof result.message, 'string');
  }
}

let server: TestServer;
let counter = 0;
function freshClient(): ApiClient {
  counter += 1;
  return server.client(`exec-p${counter}`);
}
const shell = (name: string, content: string) => ({ name, type: 'Shell', connectionName: 'local', content });
const sql = (name: string, content: string, type = 'HiveSQL') => ({
  name,
  type,
  connectionName: 'duckdb',
  content,
});

async function run(
  c: ApiClient,
  name: string,
  params?: Record<string, string>,
): Promise<{ id: string; res: ApiResponse }> {
  const id = await c.execute(name, params);
  return { id, res: await c.waitFor(name, id) };
}

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

describe('execute request forms', () => {
  let c: ApiClient;
  before(async () => {
    c = freshClient();
    await c.createScript(shell('forms', "echo 'p=${p}'"));
  });

  it('accepts no body at all (PY without params)', async () => {
    const id = assertExecuted(await c.request('POST', c.path('/forms/execute')));
    const done = await c.waitFor('forms', id);
    assertTerminal(done, 'FINISHED', id);
    assert.deepEqual(done.json.results[0].rows, [['p=${p}']]);
  });

  it('accepts an empty body with a JSON content type', async () => {
    for (const contentType of ['application/json', 'application/json;charset=UTF-8']) {
      const id = assertExecuted(
        await c.request('POST', c.path('/forms/execute'), {
          rawBody: '',
          headers: { 'content-type': contentType },
        }),
      );
      assertTerminal(await c.waitFor('forms', id), 'FINISHED', id);
    }
  });

  it('accepts {} (GO without params) and {"params":{}} and {"params":null}', async () => {
    for (const body of [{}, { params: {} }, { params: null }]) {
      const id = assertExecuted(await c.request('POST', c.path('/forms/execute'), { body }));
      const done = await c.waitFor('forms', id);
      assertTerminal(done, 'FINISHED', id);
      assert.deepEqual(done.json.results[0].rows, [['p=${p}']]);
    }
  });

  it('accepts {params} and substitutes them', async () => {
    const id = assertExecuted(
      await c.request('POST', c.path('/forms/execute'), { body: { params: { p: 'given' } } }),
    );
    const done = await c.waitFor('forms', id);
    assertTerminal(done, 'FINISHED', id);
    assert.deepEqual(done.json.results[0].rows, [['p=given']]);
  });

  it('creates a new instance per call', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++)
      ids.add(assertExecuted(await c.request('POST', c.path('/forms/execute'), { body: {} })));
    assert.equal(ids.size, 3);
    for (const id of ids) await c.waitFor('forms', id);
  });

  it('rejects invalid param names, non-object params or body, and malformed JSON with DLF.3051', async () => {
    const bad: unknown[] = [
      { params: { 'bad name': 'x' } },
      { params: { 'a.b': 'x' } },
      { params: { '': 'x' } },
      { params: { ['p'.repeat(17)]: 'x' } },
      { params: { a$: 'x' } },
      { params: { '${a}': 'x' } },
      { params: 'a=1' },
      { params: ['a'] },
      [],
      'text',
      42,
    ];
    const before = (await c.request('GET', c.path('/forms/instances?limit=1000'))).json.total as number;
    for (const body of bad) {
      assertError(await c.request('POST', c.path('/forms/execute'), { body }), 400, 'DLF.3051');
    }
    assertError(
      await c.request('POST', c.path('/forms/execute'), {
        rawBody: '{"params":',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'DLF.3051',
    );
    // Nothing was started by the refused calls.
    assert.equal((await c.request('GET', c.path('/forms/instances?limit=1000'))).json.total, before);
  });

  it('accepts the full parameter name alphabet up to 16 characters', async () => {
    const d = freshClient();
    await d.createScript(shell('alpha', "echo '${Ab_1-<>}|${p234567890123456}'"));
    const { id, res } = await run(d, 'alpha', { 'Ab_1-<>': 'x', p234567890123456: 'y' });
    assertTerminal(res, 'FINISHED', id);
    assert.deepEqual(res.json.results[0].rows, [['x|y']]);
  });
});

describe('parameter substitution', () => {
  it('replaces only the names given (every occurrence) and leaves unknown placeholders verbatim in Shell', async () => {
    const c = freshClient();
    await c.createScript(
      shell(
        'params',
        [
          "echo 'a=${a}'",
          "echo 'b=${b}'",
          "echo 'twice=${a}-${a}'",
          "echo 'unknown=${nope}'",
          "echo 'dollar=$a'",
        ].join('\n'),
      ),
    );
    const { id, res } = await run(c, 'params', { a: 'alpha', b: 'with space' });
    assertTerminal(res, 'FINISHED', id);
    assert.deepEqual(res.json.results[0].rows, [
      ['a=alpha'],
      ['b=with space'],
      ['twice=alpha-alpha'],
      ['unknown=${nope}'],
      ['dollar=$a'],
    ]);
  });

  it('leaves shell variables alone unless a param of the same name is given', async () => {
    const c = freshClient();
    await c.createScript(shell('env', 'X=inner\necho "x=${X}"'));
    const plain = await run(c, 'env');
    assert.deepEqual(plain.res.json.results[0].rows, [['x=inner']]);
    const overridden = await run(c, 'env', { X: 'outer' });
    assert.deepEqual(overridden.res.json.results[0].rows, [['x=outer']]);
  });

  it('coerces non-string param values to strings', async () => {
    const c = freshClient();
    await c.createScript(shell('coerce', "echo '${n}|${t}|${z}|${o}'"));
    const id = assertExecuted(
      await c.request('POST', c.path('/coerce/execute'), {
        body: { params: { n: 5, t: true, z: null, o: { k: 1 } } },
      }),
    );
    const done = await c.waitFor('coerce', id);
    assertTerminal(done, 'FINISHED', id);
    assert.deepEqual(done.json.results[0].rows, [['5|true||{"k":1}']]);
  });

  it('substitutes into DuckDB SQL textually and leaves unknown placeholders', async () => {
    const c = freshClient();
    await c.createScript(sql('sqlparams', "select '${v}' as x, '${w}' as y"));
    const given = await run(c, 'sqlparams', { v: 'hello' });
    assertTerminal(given.res, 'FINISHED', given.id);
    assert.equal(given.res.json.results.length, 1);
    assert.deepEqual(given.res.json.results[0].schema, [{ x: 'VARCHAR' }, { y: 'VARCHAR' }]);
    assert.deepEqual(given.res.json.results[0].rows, [['hello', '${w}']]);
    const none = await run(c, 'sqlparams');
    assert.deepEqual(none.res.json.results[0].rows, [['${v}', '${w}']]);
  });

  it('does not change the stored script content', async () => {
    const c = freshClient();
    await c.createScript(shell('stored', "echo '${a}'"));
    await run(c, 'stored', { a: 'x' });
    assert.equal((await c.request('GET', c.path('/stored'))).json.content, "echo '${a}'");
  });
});

describe('Shell and Python results', () => {
  it('Shell: one result, schema [{"output":"string"}], rows are lines, rawResult is the text', async () => {
    const c = freshClient();
    await c.createScript(shell('lines', 'echo one\necho two\necho "three  spaced"\n'));
    const { id, res } = await run(c, 'lines');
    assertTerminal(res, 'FINISHED', id);
    assert.equal(res.json.results.length, 1);
    const [result] = res.json.results;
    assert.deepEqual(result.schema, [{ output: 'string' }]);
    assert.deepEqual(result.rows, [['one'], ['two'], ['three  spaced']]);
    assert.equal(result.rowCount, 3);
    assert.equal(result.rawResult, 'one\ntwo\nthree  spaced\n');
    assert.equal(result.message, '');
    assert.equal(res.json.connectionName, 'local');
  });

  it('Shell with no output: empty rows', async () => {
    const c = freshClient();
    await c.createScript(shell('quiet', 'true'));
    const { id, res } = await run(c, 'quiet');
    assertTerminal(res, 'FINISHED', id);
    assert.deepEqual(res.json.results[0].rows, []);
    assert.equal(res.json.results[0].rowCount, 0);
    assert.equal(res.json.results[0].rawResult, '');
  });

  it('Shell: a non-zero exit is FAILED with the exit code in the top-level message', async () => {
    const c = freshClient();
    await c.createScript(shell('fails', 'echo before\necho oops >&2\nexit 7\necho never'));
    const { id, res } = await run(c, 'fails');
    assertTerminal(res, 'FAILED', id);
    assert.equal(res.json.detailedStatus, 'FAILED');
    assert.equal(res.json.failureReason, 'script_error');
    assert.match(res.json.message, /exit code 7/);
    assert.equal(res.json.exitCode, 7);
    assert.equal(res.json.results.length, 1);
    assert.deepEqual(res.json.results[0].rows, [['before'], ['oops']]);
    assert.match(res.json.results[0].message, /oops/);
  });

  it('PYTHON runs on the local connection', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'py',
      type: 'PYTHON',
      connectionName: 'local',
      content: 'import sys\nprint("py", 1 + 1)\nprint("${who}")\nprint(sys.version_info[0])\n',
    });
    const { id, res } = await run(c, 'py', { who: 'param' });
    assertTerminal(res, 'FINISHED', id);
    assert.deepEqual(res.json.results[0].schema, [{ output: 'string' }]);
    assert.deepEqual(res.json.results[0].rows, [['py 2'], ['param'], ['3']]);
  });

  it('PYTHON: an exception is FAILED with a non-zero exit code', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'pyfail',
      type: 'PYTHON',
      connectionName: 'local',
      content: 'raise ValueError("bad value")',
    });
    const { id, res } = await run(c, 'pyfail');
    assertTerminal(res, 'FAILED', id);
    assert.equal(res.json.detailedStatus, 'FAILED');
    assert.match(res.json.message, /exit code 1/);
    assert.match(res.json.message, /ValueError: bad value/);
  });
});

describe('SQL on the duckdb connection', () => {
  it('returns one result per statement, in order, with JSON numbers and null', async () => {
    const c = freshClient();
    await c.createScript(
      sql(
        'multi',
        [
          'create table nums(a integer, b varchar);',
          "insert into nums values (1, 'x'), (2, null);",
          'select a, b, 2.5::double as d, 1.25::decimal(5,2) as dec, 10000000000::bigint as big, null as n from nums order by a;',
          "-- a comment between statements\nselect 'second' as s;",
          '-- trailing comment',
        ].join('\n'),
        'DLISQL',
      ),
    );
    const { id, res } = await run(c, 'multi');
    assertTerminal(res, 'FINISHED', id);
    assert.equal(res.json.connectionName, 'duckdb');
    assert.equal(res.json.results.length, 4);
    const select = res.json.results[2];
    assert.deepEqual(
      select.schema.map((col: Record<string, string>) => Object.keys(col)[0]),
      ['a', 'b', 'd', 'dec', 'big', 'n'],
    );
    assert.deepEqual(select.schema[0], { a: 'INTEGER' });
    assert.deepEqual(select.rows, [
      [1, 'x', 2.5, 1.25, 10000000000, null],
      [2, null, 2.5, 1.25, 10000000000, null],
    ]);
    assert.equal(select.rowCount, 2);
    assert.equal(select.truncated, undefined);
    assert.deepEqual(res.json.results[3].rows, [['second']]);
    assert.deepEqual(res.json.results[3].schema, [{ s: 'VARCHAR' }]);
  });

  it('a failing statement is FAILED with the DuckDB message and later statements do not run', async () => {
    const c = freshClient();
    await c.createScript(
      sql(
        'failing',
        [
          'create table marks(x integer);',
          'insert into marks values (1);',
          'select * from no_such_table;',
          'insert into marks values (2);',
        ].join('\n'),
      ),
    );
    await c.createScript(sql('count', 'select count(*) as c, max(x) as m from marks'));
    const failed = await run(c, 'failing');
    assertTerminal(failed.res, 'FAILED', failed.id);
    assert.equal(failed.res.json.detailedStatus, 'FAILED');
    assert.equal(failed.res.json.failureReason, 'script_error');
    assert.match(failed.res.json.message, /no_such_table/);
    assert.match(failed.res.json.message, /Statement 3/);
    assert.equal(failed.res.json.results.length, 3);
    assert.match(failed.res.json.results[2].message, /no_such_table/);
    assert.deepEqual(failed.res.json.results[2].rows, []);

    const counted = await run(c, 'count');
    assertTerminal(counted.res, 'FINISHED', counted.id);
    assert.deepEqual(counted.res.json.results[0].rows, [[1, 1]]);
  });

  it('a syntax error fails the first statement', async () => {
    const c = freshClient();
    await c.createScript(sql('syntax', 'selec 1'));
    const { id, res } = await run(c, 'syntax');
    assertTerminal(res, 'FAILED', id);
    assert.match(res.json.message, /syntax error/i);
  });
});

describe('connection resolution', () => {
  it('an unknown connectionName is DLF.6322 at execute (create accepts it)', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'anyconn',
      type: 'Shell',
      connectionName: 'anyConnection',
      content: 'echo',
    });
    assertError(await c.request('POST', c.path('/anyconn/execute')), 400, 'DLF.6322');
    await c.createScript({ name: 'noconn', type: 'Shell', content: 'echo' });
    assertError(await c.request('POST', c.path('/noconn/execute')), 400, 'DLF.6322');
    const list = await c.request('GET', c.path('/anyconn/instances'));
    assert.deepEqual(list.json, { total: 0, instances: [] });
  });

  it('a script type the connection cannot run is 400 OPENDLF.0601', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'shell_on_duckdb',
      type: 'Shell',
      connectionName: 'duckdb',
      content: 'echo',
    });
    await c.createScript({
      name: 'sql_on_local',
      type: 'DWSSQL',
      connectionName: 'local',
      content: 'select 1',
    });
    await c.createScript({
      name: 'py_on_duckdb',
      type: 'PYTHON',
      connectionName: 'duckdb',
      content: 'print(1)',
    });
    assertError(await c.request('POST', c.path('/shell_on_duckdb/execute')), 400, 'OPENDLF.0601');
    assertError(await c.request('POST', c.path('/sql_on_local/execute')), 400, 'OPENDLF.0601');
    assertError(await c.request('POST', c.path('/py_on_duckdb/execute'), { body: {} }), 400, 'OPENDLF.0601');
  });
});

describe('status values and instances', () => {
  it('only ever reports LAUNCHING, RUNNING, FINISHED or FAILED', async () => {
    const c = freshClient();
    await c.createScript(shell('slow', 'sleep 0.3\necho done'));
    await c.createScript(shell('slowfail', 'sleep 0.2\nexit 3'));
    const seen = new Set<string>();
    const seenDetailed = new Set<string>();
    const record = (body: { status: string; detailedStatus: string }) => {
      seen.add(body.status);
      seenDetailed.add(body.detailedStatus);
      return body.status === 'FINISHED' || body.status === 'FAILED';
    };
    const ok = await c.waitFor('slow', await c.execute('slow'), record);
    assert.equal(ok.json.status, 'FINISHED');
    const bad = await c.waitFor('slowfail', await c.execute('slowfail'), record);
    assert.equal(bad.json.status, 'FAILED');
    for (const status of seen) assert.ok(API_STATUSES.includes(status), `unexpected status ${status}`);
    for (const state of seenDetailed)
      assert.ok(DETAILED_STATES.includes(state), `unexpected detailed ${state}`);
    assert.ok(seen.has('FINISHED') && seen.has('FAILED'));
  });

  it('a stopped instance reports FAILED (detailed STOPPED); stop answers 204 and is idempotent', async () => {
    const c = freshClient();
    await c.createScript(shell('long', 'echo started\nsleep 30'));
    const id = await c.execute('long');
    await c.waitFor('long', id, (b) => b.detailedStatus === 'RUNNING');
    assertNoContent(await c.stop('long', id));
    const done = await c.waitFor('long', id);
    assertTerminal(done, 'FAILED', id);
    assert.equal(done.json.detailedStatus, 'STOPPED');
    assert.equal(done.json.message, 'The script instance is stopped.');
    assertNoContent(await c.stop('long', id));
    assert.equal((await c.result('long', id)).json.detailedStatus, 'STOPPED');
  });

  it('GET .../scripts/{name}/instances lists instances newest first, without results', async () => {
    const c = freshClient();
    await c.createScript(shell('listed', 'echo hi'));
    await c.createScript(shell('unrelated', 'echo no'));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { id } = await run(c, 'listed');
      ids.push(id);
    }
    await run(c, 'unrelated');
    const res = await c.request('GET', c.path('/listed/instances'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), JSON_CT);
    assert.equal(res.json.total, 3);
    const instances = res.json.instances as Record<string, unknown>[];
    assert.deepEqual(
      instances.map((i) => i.instanceId),
      [...ids].reverse(),
    );
    for (const instance of instances) {
      assert.equal(instance.status, 'FINISHED');
      assert.equal(instance.results, undefined);
      assert.equal(instance.connectionName, 'local');
    }
    const limited = await c.request('GET', c.path('/listed/instances?limit=2'));
    assert.deepEqual(
      (limited.json.instances as { instanceId: string }[]).map((i) => i.instanceId),
      [...ids].reverse().slice(0, 2),
    );
    for (const query of ['limit=0', 'limit=1001', 'limit=x']) {
      assertError(await c.request('GET', c.path(`/listed/instances?${query}`)), 400, 'DLF.3051');
    }
    assertError(await c.request('GET', c.path('/ghost/instances')), 400, 'DLF.6201');
  });

  it('deleting a script deletes its instances, finished and running', async () => {
    const c = freshClient();
    await c.createScript(shell('doomed', 'echo "${mode}"\nif [ "${mode}" = long ]; then sleep 30; fi'));
    const { id: finishedId } = await run(c, 'doomed', { mode: 'short' });
    const runningId = await c.execute('doomed', { mode: 'long' });
    await c.waitFor('doomed', runningId, (b) => b.detailedStatus === 'RUNNING');

    assertNoContent(await c.request('DELETE', c.path('/doomed')));
    assertError(await c.result('doomed', finishedId), 400, 'DLF.6201');
    assertError(await c.result('doomed', runningId), 400, 'DLF.6201');
    assertError(await c.stop('doomed', runningId), 400, 'DLF.6201');

    // A new script with the same name does not inherit the old instances.
    await c.createScript(shell('doomed', 'echo new'));
    assertError(await c.result('doomed', finishedId), 400, 'DLF.6205');
    assertError(await c.result('doomed', runningId), 400, 'DLF.6205');
    const list = await c.request('GET', c.path('/doomed/instances'));
    assert.deepEqual(list.json, { total: 0, instances: [] });
  });
});

describe('result limits', () => {
  let capped: TestServer;
  before(async () => {
    capped = await startTestServer({ maxResultRows: 5, maxOutputBytes: 100_000 });
  });
  after(async () => {
    await capped.close();
  });

  it('SQL rows are capped at maxResultRows with truncated: true', async () => {
    const c = capped.client('limits-p1');
    await c.createScript(sql('big', 'select range as r from range(100) order by r; select 1 as one'));
    const { id, res } = await run(c, 'big');
    assertTerminal(res, 'FINISHED', id);
    assert.equal(res.json.results.length, 2);
    assert.deepEqual(res.json.results[0].rows, [[0], [1], [2], [3], [4]]);
    assert.equal(res.json.results[0].rowCount, 5);
    assert.equal(res.json.results[0].truncated, true);
    assert.deepEqual(res.json.results[1].rows, [[1]]);
    assert.equal(res.json.results[1].truncated, undefined);
  });

  it('exactly maxResultRows rows are not marked truncated', async () => {
    const c = capped.client('limits-p2');
    await c.createScript(sql('five', 'select * from range(5)'));
    const { id, res } = await run(c, 'five');
    assertTerminal(res, 'FINISHED', id);
    assert.equal(res.json.results[0].rowCount, 5);
    assert.equal(res.json.results[0].truncated, undefined);
  });

  it('Shell output lines are capped at maxResultRows too', async () => {
    const c = capped.client('limits-p3');
    await c.createScript(shell('lines', 'seq 1 20'));
    const { id, res } = await run(c, 'lines');
    assertTerminal(res, 'FINISHED', id);
    assert.deepEqual(res.json.results[0].rows, [['1'], ['2'], ['3'], ['4'], ['5']]);
    assert.equal(res.json.results[0].truncated, true);
  });

  it('Shell output beyond maxOutputBytes fails the run with a message about the limit', async () => {
    const c = capped.client('limits-p4');
    await c.createScript(shell('flood', 'head -c 2000000 /dev/zero | tr "\\0" x\necho\necho after'));
    const { id, res } = await run(c, 'flood');
    assertTerminal(res, 'FAILED', id);
    assert.equal(res.json.detailedStatus, 'FAILED');
    assert.equal(res.json.failureReason, 'output_limit');
    assert.match(res.json.message, /output exceeds the .*limit/);
    assert.equal(res.json.results.length, 1);
    // The run was ended before its last lines: they are not in the result.
    assert.ok(!res.json.results[0].rows.some((row: string[]) => row[0] === 'after'));
  });

  it('the output-limit message states the configured limit, and the kept output is within it', async () => {
    const c = capped.client('limits-p5');
    await c.createScript(shell('flood', 'head -c 2000000 /dev/zero | tr "\\0" x'));
    const { res } = await run(c, 'flood');
    assert.equal(res.json.status, 'FAILED');
    assert.doesNotMatch(res.json.message, /\b0 MB\b/);
    assert.match(res.json.message, /the 100000 bytes limit/);
    assert.equal(res.json.results[0].truncated, true);
    assert.ok(Buffer.byteLength(res.json.results[0].rawResult) <= 100000);
  });
});
