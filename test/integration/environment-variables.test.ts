/**
 * Workspace environment variables and EL through the API (issue 13 item 7): CRUD on the extension
 * endpoints, workspace and project isolation, `#{…}` evaluated in execute params and in
 * environment variables on DuckDB and Shell, params over environment variables, the EL error for
 * an unknown method (400, nothing runs), and the access rules: reading needs read, writing needs
 * write; a caller without write may use EL, and what it evaluates to must still be data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { assertError, assertNoContent, assertOk } from '../helpers/assertions.js';
import { PROJECT_A, startMultiUserServer, type MultiUserServer } from '../helpers/multi-user.js';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';

const EL_ZONE = 'Asia/Shanghai';

function envPath(c: ApiClient, name?: string): string {
  return `/v1/${c.projectId}/environment-variables${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}

function putVariable(c: ApiClient, name: string, value: unknown): Promise<ApiResponse> {
  return c.request('PUT', envPath(c, name), { body: { value } });
}

async function setVariable(c: ApiClient, name: string, value: string): Promise<void> {
  const res = await putVariable(c, name, value);
  assertOk(res);
}

/** The calendar day, in the EL zone, of `ms` shifted by `days`. */
function dayIn(zone: string, ms: number, days = 0): string {
  return new Intl.DateTimeFormat('en-CA', {
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(ms + days * 86_400_000);
}

async function runToEnd(c: ApiClient, script: string, params?: Record<string, string>) {
  const id = await c.execute(script, params);
  return c.waitFor(script, id);
}

describe('environment variables and EL (single user)', () => {
  let server: TestServer;
  let api: ApiClient;

  before(async () => {
    server = await startTestServer({ elTimeZone: EL_ZONE });
    api = server.client();
    await api.createScript({
      name: 'report',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT '${day}' AS day, '${region}' AS region, '${bucket}' AS bucket",
    });
    await api.createScript({
      name: 'greet',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo "${greeting} ${stamp}"',
    });
    await api.createScript({
      name: 'pick',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT '${day}' AS d",
    });
  });

  after(async () => {
    await server.close();
  });

  it('CRUD: list, create, read, replace, delete, and the not-found error', async () => {
    const empty = await api.request('GET', envPath(api));
    assertOk(empty);
    assert.deepEqual(empty.json, { total: 0, variables: [] });

    const created = await putVariable(api, 'zone_b', 'first');
    assertOk(created);
    assert.equal(created.json.name, 'zone_b');
    assert.equal(created.json.value, 'first');
    assert.ok(!Number.isNaN(Date.parse(created.json.createTime)));
    assertOk(await putVariable(api, 'zone_a', 42));

    const replaced = await putVariable(api, 'zone_b', 'second');
    assertOk(replaced);
    assert.equal(replaced.json.value, 'second');
    assert.equal(replaced.json.createTime, created.json.createTime, 'a replace keeps the creation time');

    const read = await api.request('GET', envPath(api, 'zone_b'));
    assertOk(read);
    assert.equal(read.json.value, 'second');

    const listed = await api.request('GET', envPath(api));
    assert.deepEqual(
      listed.json.variables.map((v: { name: string; value: string }) => [v.name, v.value]),
      [
        ['zone_a', '42'],
        ['zone_b', 'second'],
      ],
      'listed by name; a number is stored as its text',
    );

    assertNoContent(await api.request('DELETE', envPath(api, 'zone_b')));
    assertError(await api.request('GET', envPath(api, 'zone_b')), 400, 'OPENDLF.0621');
    assertError(await api.request('DELETE', envPath(api, 'zone_b')), 400, 'OPENDLF.0621');
    assertNoContent(await api.request('DELETE', envPath(api, 'zone_a')));
  });

  it('refuses bad names, bodies and values that can never evaluate (nothing stored)', async () => {
    assertError(await putVariable(api, 'a'.repeat(17), 'x'), 400, 'DLF.3051');
    assertError(await putVariable(api, 'has space', 'x'), 400, 'DLF.3051');
    assertError(await putVariable(api, '__proto__', 'x'), 400, 'DLF.3051');
    assertError(await api.request('PUT', envPath(api, 'ok'), { body: { nothing: 1 } }), 400, 'DLF.3051');
    assertError(await putVariable(api, 'ok', { nested: true }), 400, 'DLF.3051');
    assertError(await putVariable(api, 'ok', 'x'.repeat(65_537)), 400, 'DLF.3051');
    const bad = await putVariable(api, 'bad', '#{DateUtil.addDayz(Job.planTime, 1)}');
    assertError(bad, 400, 'OPENDLF.0620');
    assert.match(bad.json.error_msg, /environment variable 'bad'.*unknown method DateUtil\.addDayz/);
    assertError(await putVariable(api, 'bad', '#{1 +'), 400, 'OPENDLF.0620');
    assertError(await api.request('GET', envPath(api, 'bad')), 400, 'OPENDLF.0621');
  });

  it('DuckDB: EL in a param and in environment variables, evaluated in the configured zone', async () => {
    await setVariable(api, 'region', 'cn-north-4');
    await setVariable(api, 'bucket', 'obs://#{Env.get("region")}/#{StringUtil.upperCase(Job.name)}');
    const before = Date.now();
    const res = await runToEnd(api, 'report', {
      day: '#{DateUtil.format(DateUtil.addDays(Job.planTime,-1),"yyyy-MM-dd")}',
    });
    const afterwards = Date.now();
    assert.equal(res.json.status, 'FINISHED', res.text);
    const [row] = res.json.results[0].rows as string[][];
    assert.ok(row);
    // Yesterday in Asia/Shanghai at the moment of the execute (either side of a midnight passing meanwhile).
    assert.ok([dayIn(EL_ZONE, before, -1), dayIn(EL_ZONE, afterwards, -1)].includes(row[0] ?? ''), row[0]);
    assert.deepEqual(row.slice(1), ['cn-north-4', 'obs://cn-north-4/REPORT']);
  });

  it('Shell: EL in a param and in an environment variable', async () => {
    await setVariable(api, 'greeting', 'hello-#{StringUtil.substringBefore(Job.name, "e")}');
    const res = await runToEnd(api, 'greet', {
      stamp:
        '#{DateUtil.format(DateUtil.addMonths(DateUtil.parseDate("2024-01-31","yyyy-MM-dd"),1),"yyyyMMdd")}',
    });
    assert.equal(res.json.status, 'FINISHED', res.text);
    assert.deepEqual(res.json.results[0].rows, [['hello-gr 20240229']]);
  });

  it('execute params win over environment variables of the same name', async () => {
    await setVariable(api, 'day', 'from-environment');
    const fromEnv = await runToEnd(api, 'pick');
    assert.deepEqual(fromEnv.json.results[0].rows, [['from-environment']]);
    const fromParam = await runToEnd(api, 'pick', { day: 'from-param' });
    assert.deepEqual(fromParam.json.results[0].rows, [['from-param']]);
    assertNoContent(await api.request('DELETE', envPath(api, 'day')));
    const neither = await runToEnd(api, 'pick');
    assert.deepEqual(
      neither.json.results[0].rows,
      [['${day}']],
      'without either, the placeholder stays verbatim',
    );
  });

  it('an unknown method fails the execute with the EL error; nothing runs', async () => {
    const instancesBefore = await api.request('GET', api.path('/pick/instances?limit=1000'));
    const res = await api.request('POST', api.path('/pick/execute'), {
      body: { params: { day: '#{DateUtil.addDayz(Job.planTime, 1)}' } },
    });
    assertError(res, 400, 'OPENDLF.0620');
    assert.match(res.json.error_msg, /parameter 'day'/);
    assert.match(res.json.error_msg, /unknown method DateUtil\.addDayz/);
    const unknownObject = await api.request('POST', api.path('/pick/execute'), {
      body: { params: { day: '#{Runtime.exec("id")}' } },
    });
    assertError(unknownObject, 400, 'OPENDLF.0620');
    assert.match(unknownObject.json.error_msg, /unknown object 'Runtime'/);
    const instancesAfter = await api.request('GET', api.path('/pick/instances?limit=1000'));
    assert.equal(instancesAfter.json.total, instancesBefore.json.total, 'no instance was created');
  });

  it('an environment variable failing at execute time is named in the error', async () => {
    await setVariable(api, 'day', '#{1 / 0}');
    const res = await api.request('POST', api.path('/pick/execute'), { body: {} });
    assertError(res, 400, 'OPENDLF.0620');
    assert.match(res.json.error_msg, /environment variable 'day'.*division by zero/);
    // Not used by the script: no error.
    const fine = await runToEnd(api, 'report', { day: 'd', region: 'r', bucket: 'b' });
    assert.equal(fine.json.status, 'FINISHED', fine.text);
    assertNoContent(await api.request('DELETE', envPath(api, 'day')));
  });

  it('workspaces and projects each have their own variables', async () => {
    const w1 = server.client(undefined, 'ws_one');
    const w2 = server.client(undefined, 'ws_two');
    const otherProject = server.client('p0000000000000000000000000000002');
    await setVariable(w1, 'shared', 'one');
    await setVariable(w2, 'shared', 'two');
    assert.equal((await w1.request('GET', envPath(w1, 'shared'))).json.value, 'one');
    assert.equal((await w2.request('GET', envPath(w2, 'shared'))).json.value, 'two');
    assertError(await api.request('GET', envPath(api, 'shared')), 400, 'OPENDLF.0621');
    assertError(await otherProject.request('GET', envPath(otherProject, 'shared')), 400, 'OPENDLF.0621');
    assert.equal((await w1.request('GET', envPath(w1))).json.total, 1);

    for (const [client, expected] of [
      [w1, 'one'],
      [w2, 'two'],
    ] as const) {
      await client.createScript({
        name: 'which',
        type: 'DWSSQL',
        connectionName: 'duckdb',
        content: "SELECT '${shared}'",
      });
      const res = await runToEnd(client, 'which');
      assert.deepEqual(res.json.results[0].rows, [[expected]]);
    }
    assertNoContent(await w1.request('DELETE', envPath(w1, 'shared')));
    assert.equal(
      (await w2.request('GET', envPath(w2, 'shared'))).json.value,
      'two',
      'deleting in one workspace leaves the other',
    );
  });

  it('elTimeZone: an unknown zone stops the server at start-up', () => {
    assert.throws(() => loadConfig({ overrides: { elTimeZone: 'Mars/Olympus' } }), ConfigError);
    assert.throws(() => loadConfig({ env: { OPENDLF_EL_TIME_ZONE: 'Nowhere/City' } }), /elTimeZone/);
    assert.equal(loadConfig({}).elTimeZone, 'UTC');
    assert.equal(loadConfig({ env: { OPENDLF_EL_TIME_ZONE: 'GMT+08:00' } }).elTimeZone, 'GMT+08:00');
  });
});

describe('environment variables and EL (access rules)', () => {
  let server: MultiUserServer;
  const WS = 'envws';

  before(async () => {
    server = await startMultiUserServer({ elTimeZone: 'UTC' });
    const developer = server.as('developerA', { workspace: WS });
    await developer.createScript({
      name: 'quoted',
      type: 'DWSSQL',
      connectionName: 'duckdb',
      content: "SELECT '${day}' AS d, '${label}' AS l",
    });
  });

  after(async () => {
    await server.close();
  });

  it('reading needs read, writing needs write', async () => {
    const developer = server.as('developerA', { workspace: WS });
    const admin = server.as('adminA', { workspace: WS });
    const operator = server.as('operatorA', { workspace: WS });
    const viewer = server.as('viewerA', { workspace: WS });
    assertOk(await putVariable(developer, 'label', 'a b'));
    assertOk(await putVariable(admin, 'by_admin', 'x'));
    for (const reader of [viewer, operator]) {
      assertOk(await reader.request('GET', envPath(reader)));
      assertOk(await reader.request('GET', envPath(reader, 'label')));
      assertError(await putVariable(reader, 'label', 'changed'), 403, 'DLF.6888');
      assertError(await reader.request('DELETE', envPath(reader, 'label')), 403, 'DLF.6888');
    }
    assert.equal((await viewer.request('GET', envPath(viewer, 'label'))).json.value, 'a b');
    const outsider = server.as('developerB', { projectId: PROJECT_A, workspace: WS });
    assertError(await outsider.request('GET', envPath(outsider)), 403, 'DLF.6888');
  });

  it('a caller without write may use EL; the result is checked as data, environment variables are not', async () => {
    const operator = server.as('operatorA', { workspace: WS });
    const res = await runToEnd(operator, 'quoted', {
      day: '#{DateUtil.format(DateUtil.addDays(Job.planTime, -1), "yyyy-MM-dd")}',
    });
    assert.equal(res.json.status, 'FINISHED', res.text);
    const [day, label] = (res.json.results[0].rows as string[][])[0] ?? [];
    assert.match(day ?? '', /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(label, 'a b', "a writer's environment variable is substituted as it is");

    // Evaluates to a quote: refused as data, naming the parameter; the EL itself was fine.
    const refused = await operator.request('POST', operator.path('/quoted/execute'), {
      body: { params: { day: `#{StringUtil.repeat("'", 1) + " or 1=1"}` } },
    });
    assertError(refused, 400, 'DLF.3051');
    assert.match(refused.json.error_msg, /parameter 'day' is refused/);
    // An EL error is reported as such before the data check.
    const broken = await operator.request('POST', operator.path('/quoted/execute'), {
      body: { params: { day: '#{Nope.x()}' } },
    });
    assertError(broken, 400, 'OPENDLF.0620');
  });
});
