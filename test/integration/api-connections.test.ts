/**
 * HTTP integration tests of the v1 data-connection API (compatibility.md §2, §5) against a real in-process
 * server: create/get/list/edit/delete and their error codes, the GO client's typing constraints
 * (§3.2), secret masking and "keep the stored secret" edits (proved against a real MariaDB user
 * with a password), encryption at rest, the CLICKHOUSE extension type, script/connection type
 * checks at execute (§3.4), export, import (upload and server-local path) with system tasks, and
 * workspace isolation.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { strFromU8, strToU8, unzipSync, zipSync } from 'fflate';
import mysql from 'mysql2/promise';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';
import { assertError, assertNoContent, assertOk } from '../helpers/assertions.js';

const MASK = '*********';
const MARIADB = { host: '127.0.0.1', port: 3306, user: 'root' };

const connPath = (c: ApiClient, suffix = '') => `/v1/${c.projectId}/connections${suffix}`;
const create = (c: ApiClient, body: unknown) => c.request('POST', connPath(c), { body });
const getConn = (c: ApiClient, name: string) => c.request('GET', connPath(c, `/${encodeURIComponent(name)}`));
const list = (c: ApiClient, query = '') => c.request('GET', connPath(c, query));
const edit = (c: ApiClient, name: string, body: unknown, query = '') =>
  c.request('PUT', connPath(c, `/${encodeURIComponent(name)}${query}`), { body });
const del = (c: ApiClient, name: string) => c.request('DELETE', connPath(c, `/${encodeURIComponent(name)}`));
const names = (res: ApiResponse) => (res.json.connections as { name: string }[]).map((c) => c.name);

async function mustCreate(c: ApiClient, body: unknown): Promise<void> {
  assertNoContent(await create(c, body));
}

/** Polls a system task until it leaves RUNNING (bounded). */
async function waitTask(c: ApiClient, taskId: string): Promise<any> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await c.request('GET', `/v1/${c.projectId}/system-tasks/${taskId}`);
    assertOk(res);
    if (res.json.status !== 'RUNNING') return res.json;
    if (Date.now() > deadline) throw new Error(`task still running: ${res.text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function runScript(c: ApiClient, script: Record<string, unknown>): Promise<any> {
  await c.createScript(script);
  const id = await c.execute(script.name as string);
  return (await c.waitFor(script.name as string, id)).json;
}

let server: TestServer;
let counter = 0;
/** A client on a project id no other test uses. */
function fresh(workspace?: string): ApiClient {
  counter += 1;
  return server.client(`conn-p${counter}`, workspace);
}

before(async () => {
  server = await startTestServer();
});
after(() => server.close());

describe('create, get, list, edit, delete', () => {
  it('creates with 204 and an empty body, gets the connection back', async () => {
    const c = fresh();
    const res = await create(c, {
      name: 'dws1',
      type: 'DWS',
      description: 'a warehouse',
      config: {
        ip: '10.0.0.1',
        port: '8000',
        userName: 'dbadmin',
        password: 'pw',
        sslEnable: false,
        kmsKey: 'k',
        agentName: 'cdm',
      },
    });
    assertNoContent(res);
    const got = await getConn(c, 'dws1');
    assertOk(got);
    assert.deepEqual(Object.keys(got.json).sort(), ['config', 'description', 'name', 'type']);
    assert.equal(got.json.name, 'dws1');
    assert.equal(got.json.type, 'DWS');
    assert.equal(got.json.description, 'a warehouse');
    assert.deepEqual(got.json.config, {
      ip: '10.0.0.1',
      port: '8000',
      userName: 'dbadmin',
      password: MASK,
      sslEnable: false,
      kmsKey: 'k',
      agentName: 'cdm',
    });
  });

  it('lists {total, connections} with offset, limit and connectionName', async () => {
    const c = fresh();
    for (const name of ['alpha-1', 'alpha-2', 'beta-1', 'alpha-3', 'gamma']) {
      await mustCreate(c, { name, type: 'CloudTable', config: { clusterName: `cl-${name}` } });
    }
    const all = await list(c);
    assertOk(all);
    assert.deepEqual(Object.keys(all.json).sort(), ['connections', 'total']);
    assert.equal(all.json.total, 5);
    assert.deepEqual(names(all), ['alpha-1', 'alpha-2', 'beta-1', 'alpha-3', 'gamma']);
    for (const item of all.json.connections) {
      assert.deepEqual(Object.keys(item).sort(), ['config', 'description', 'name', 'type']);
    }

    const page = await list(c, '?offset=1&limit=2');
    assertOk(page);
    assert.equal(page.json.total, 5);
    assert.deepEqual(names(page), ['alpha-2', 'beta-1']);

    const tail = await list(c, '?offset=4&limit=10');
    assert.deepEqual(names(tail), ['gamma']);
    const past = await list(c, '?offset=50');
    assert.equal(past.json.total, 5);
    assert.deepEqual(names(past), []);

    const filtered = await list(c, '?connectionName=alpha');
    assert.equal(filtered.json.total, 3);
    assert.deepEqual(names(filtered), ['alpha-1', 'alpha-2', 'alpha-3']);
    const none = await list(c, '?connectionName=nothing-like-this');
    assertOk(none);
    assert.deepEqual(none.json, { total: 0, connections: [] });

    // Default limit 10.
    for (let i = 0; i < 8; i++) await mustCreate(c, { name: `more-${i}`, type: 'CloudTable', config: {} });
    const defaulted = await list(c);
    assert.equal(defaulted.json.total, 13);
    assert.equal(defaulted.json.connections.length, 10);
  });

  it('rejects out-of-range or malformed paging values with DLF.3051', async () => {
    const c = fresh();
    for (const query of [
      '?limit=0',
      '?limit=1001',
      '?limit=abc',
      '?limit=-1',
      '?offset=-1',
      '?offset=x',
      '?limit=1&limit=2',
    ]) {
      assertError(await list(c, query), 400, 'DLF.3051');
    }
    assertOk(await list(c, '?limit=1'));
    assertOk(await list(c, '?limit=100'));
  });

  it('edits with 204, and rejects renames, type changes and unknown connections', async () => {
    const c = fresh();
    await mustCreate(c, {
      name: 'h1',
      type: 'HOST',
      config: { ip: '10.0.0.2', port: '22', userName: 'u', password: 'p' },
    });
    // A new address without the password: the stored one must not follow (connection-secrets.test.ts).
    assertError(
      await edit(c, 'h1', {
        name: 'h1',
        type: 'HOST',
        description: 'edited',
        config: { ip: '10.0.0.3', port: '2222', userName: 'u' },
      }),
      400,
      'OPENDLF.0610',
    );
    const res = await edit(c, 'h1', {
      name: 'h1',
      type: 'HOST',
      description: 'edited',
      config: { ip: '10.0.0.3', port: '2222', userName: 'u', password: 'p2' },
    });
    assertNoContent(res);
    const got = await getConn(c, 'h1');
    assert.equal(got.json.description, 'edited');
    assert.deepEqual(got.json.config, { ip: '10.0.0.3', port: '2222', userName: 'u', password: MASK });

    assertError(await edit(c, 'h1', { name: 'h2', type: 'HOST', config: {} }), 400, 'DLF.3051');
    assertError(await edit(c, 'h1', { name: 'h1', type: 'RDS', config: {} }), 400, 'DLF.6323');
    assertError(await edit(c, 'nope', { name: 'nope', type: 'HOST', config: {} }), 400, 'DLF.6322');
    // The failed edits changed nothing.
    assert.deepEqual((await getConn(c, 'h1')).json, got.json);
    assertError(await getConn(c, 'h2'), 400, 'DLF.6322');
  });

  it('deletes with 204; afterwards the connection does not exist', async () => {
    const c = fresh();
    await mustCreate(c, { name: 'gone', type: 'CloudTable', config: { clusterName: 'x' } });
    assertNoContent(await del(c, 'gone'));
    assertError(await getConn(c, 'gone'), 400, 'DLF.6322');
    assertError(await del(c, 'gone'), 400, 'DLF.6322');
    assert.deepEqual((await list(c)).json, { total: 0, connections: [] });
    // The name is free again.
    await mustCreate(c, { name: 'gone', type: 'HOST', config: { ip: 'h', port: '22', userName: 'u' } });
    assert.equal((await getConn(c, 'gone')).json.type, 'HOST');
  });

  it('gets an unknown connection with DLF.6322', async () => {
    assertError(await getConn(fresh(), 'missing'), 400, 'DLF.6322');
  });
});

describe('create rules', () => {
  it('refuses a duplicate name with DLF.6309 (even with another type)', async () => {
    const c = fresh();
    await mustCreate(c, { name: 'dup', type: 'CloudTable', config: { clusterName: 'a' } });
    assertError(
      await create(c, { name: 'dup', type: 'CloudTable', config: { clusterName: 'b' } }),
      400,
      'DLF.6309',
    );
    assertError(
      await create(c, { name: 'dup', type: 'HOST', config: { ip: 'h', port: '22' } }),
      400,
      'DLF.6309',
    );
    assert.equal((await getConn(c, 'dup')).json.config.clusterName, 'a');
  });

  it('allows only one DLI connection per workspace (DLF.6271)', async () => {
    const c = fresh();
    await mustCreate(c, { name: 'dli1', type: 'DLI' });
    assertError(await create(c, { name: 'dli2', type: 'DLI' }), 400, 'DLF.6271');
    assertError(await getConn(c, 'dli2'), 400, 'DLF.6322');
    // Another workspace may have its own.
    await mustCreate(server.client(c.projectId, 'other-ws'), { name: 'dli2', type: 'DLI' });
  });

  it('requires a DWS cluster name or ip+port (DLF.6418)', async () => {
    const c = fresh();
    assertError(
      await create(c, { name: 'd1', type: 'DWS', config: { userName: 'u', password: 'p' } }),
      400,
      'DLF.6418',
    );
    assertError(
      await create(c, { name: 'd2', type: 'DWS', config: { ip: '10.0.0.1', userName: 'u' } }),
      400,
      'DLF.6418',
    );
    assertError(
      await create(c, { name: 'd3', type: 'DWS', config: { port: '8000', userName: 'u' } }),
      400,
      'DLF.6418',
    );
    await mustCreate(c, { name: 'd4', type: 'DWS', config: { clusterName: 'dws-cluster', userName: 'u' } });
    await mustCreate(c, { name: 'd5', type: 'DWS', config: { ip: '10.0.0.1', port: '8000', userName: 'u' } });
    assert.deepEqual(names(await list(c)), ['d4', 'd5']);
  });

  it("refuses the built-in names 'local' and 'duckdb' (DLF.6309)", async () => {
    const c = fresh();
    assertError(
      await create(c, { name: 'local', type: 'HOST', config: { ip: 'h', port: '22' } }),
      400,
      'DLF.6309',
    );
    assertError(
      await create(c, { name: 'duckdb', type: 'RDS', config: { ip: 'h', port: '3306' } }),
      400,
      'DLF.6309',
    );
    assert.deepEqual((await list(c, '?includeExtensionTypes=true')).json, { total: 0, connections: [] });
  });

  it('rejects malformed bodies with DLF.3051', async () => {
    const c = fresh();
    const bad: unknown[] = [
      { type: 'HOST', config: {} },
      { name: 'bad name', type: 'HOST', config: {} },
      { name: 'x'.repeat(101), type: 'HOST', config: {} },
      { name: 'n1', type: 'Hive', config: {} },
      { name: 'n1', type: 'MYSQL', config: {} },
      { name: 'n1', type: 'HOST', config: [] },
      { name: 'n1', type: 'HOST', config: { port: '70000' } },
      { name: 'n1', type: 'HOST', config: { port: 'ssh' } },
      { name: 'n1', type: 'HOST', description: 'd'.repeat(256), config: {} },
      { name: 'n1', type: 'DWS', config: { ip: 'h', port: '1', sslEnable: 'maybe' } },
      { name: 'n1', type: 'RDS', config: { ip: 'h', port: '1', driverName: 'oracle.jdbc.OracleDriver' } },
    ];
    for (const body of bad) assertError(await create(c, body), 400, 'DLF.3051');
    assertError(
      await c.request('POST', connPath(c), {
        rawBody: '{not json',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'DLF.3051',
    );
    assert.equal((await list(c, '?includeExtensionTypes=true')).json.total, 0);
  });
});

describe('GO client typing (docs/compatibility.md §5)', () => {
  it('renders port as a string and sslEnable as a boolean whatever was sent', async () => {
    const c = fresh();
    await mustCreate(c, {
      name: 'typed',
      type: 'DWS',
      config: { ip: '10.0.0.1', port: 8000, userName: 'u', password: 'p', sslEnable: 'true' },
    });
    await mustCreate(c, {
      name: 'typed-rds',
      type: 'RDS',
      config: { ip: '10.0.0.1', port: 3306, userName: 'u' },
    });
    for (const res of [await getConn(c, 'typed'), { json: (await list(c)).json.connections[0] }]) {
      assert.equal(res.json.config.port, '8000');
      assert.equal(res.json.config.sslEnable, true);
    }
    assert.equal((await getConn(c, 'typed-rds')).json.config.port, '3306');

    // A DWS connection created without sslEnable still shows a boolean.
    await mustCreate(c, {
      name: 'typed2',
      type: 'DWS',
      config: { ip: '10.0.0.1', port: '8000', userName: 'u' },
    });
    assert.equal((await getConn(c, 'typed2')).json.config.sslEnable, false);
    // Edit with a number and a "false" string.
    assertNoContent(
      await edit(c, 'typed', {
        name: 'typed',
        type: 'DWS',
        // A new target takes the password again.
        config: { ip: 'h', port: 9000, sslEnable: 'false', password: 'p' },
      }),
    );
    const edited = await getConn(c, 'typed');
    assert.equal(edited.json.config.port, '9000');
    assert.equal(edited.json.config.sslEnable, false);
  });

  it('always includes config (DLI created without one, CloudTable with an empty one)', async () => {
    const c = fresh();
    await mustCreate(c, { name: 'dli', type: 'DLI' });
    await mustCreate(c, { name: 'ct', type: 'CloudTable' });
    for (const name of ['dli', 'ct']) {
      const got = await getConn(c, name);
      assert.deepEqual(got.json.config, {});
      assert.equal(got.json.description, '');
    }
    for (const item of (await list(c)).json.connections) assert.deepEqual(item.config, {});
  });

  it('masks password and privateKey in get and list', async () => {
    const c = fresh();
    const pem = '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n';
    await mustCreate(c, {
      name: 'host-key',
      type: 'HOST',
      config: { ip: '10.0.0.9', port: '22', userName: 'root', privateKey: pem, password: 'pw-host' },
    });
    await mustCreate(c, {
      name: 'rds-pw',
      type: 'RDS',
      config: { ip: '10.0.0.9', port: '3306', userName: 'u', password: 'pw-rds' },
    });
    const got = await getConn(c, 'host-key');
    assert.equal(got.json.config.privateKey, MASK);
    assert.equal(got.json.config.password, MASK);
    const listed = await list(c);
    assert.equal(listed.json.connections[0].config.privateKey, MASK);
    assert.equal(listed.json.connections[0].config.password, MASK);
    assert.equal(listed.json.connections[1].config.password, MASK);
    for (const text of [got.text, listed.text, (await getConn(c, 'rds-pw')).text]) {
      assert.ok(
        !text.includes('pw-host') && !text.includes('pw-rds') && !text.includes('BEGIN OPENSSH'),
        text,
      );
    }
  });
});

describe('secrets against a real MariaDB user', () => {
  const suffix = randomBytes(4).toString('hex');
  const user = `odlf_x_${suffix}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const encUser = `odlf_enc_${suffix}`;
  const marker = 'S3cret-Unique-Marker';
  let admin: mysql.Connection;

  before(async () => {
    admin = await mysql.createConnection(MARIADB);
    for (const [u, p] of [
      [user, password],
      [encUser, marker],
    ] as const) {
      for (const host of ['%', 'localhost']) {
        await admin.query(`CREATE USER '${u}'@'${host}' IDENTIFIED BY '${p}'`);
      }
    }
  });
  after(async () => {
    for (const u of [user, encUser]) {
      for (const host of ['%', 'localhost']) await admin.query(`DROP USER IF EXISTS '${u}'@'${host}'`);
    }
    await admin.end();
  });

  const rds = (config: Record<string, unknown>) => ({
    name: 'maria',
    type: 'RDS',
    config: { ip: '127.0.0.1', port: '3306', userName: user, driverName: 'com.mysql.jdbc.Driver', ...config },
  });

  it('keeps the stored password on edits that send the mask or no password (proved with ischeck)', async () => {
    const c = fresh();
    await mustCreate(c, rds({ password }));
    assertNoContent(await edit(c, 'maria', rds({ password }), '?ischeck=true'));

    // The object as read back (password = mask) goes back unchanged, like GO's acceptance test.
    const read = (await getConn(c, 'maria')).json;
    assert.equal(read.config.password, MASK);
    assertNoContent(await edit(c, 'maria', { ...read, description: 'edited with the mask' }));
    assertNoContent(await edit(c, 'maria', { ...read, description: 'checked' }, '?ischeck=true'));
    assert.equal((await getConn(c, 'maria')).json.description, 'checked');

    // Without any password key: still the stored one.
    assertNoContent(await edit(c, 'maria', rds({})));
    assertNoContent(await edit(c, 'maria', rds({}), '?ischeck=true'));
    assert.equal((await getConn(c, 'maria')).json.config.password, MASK);

    // A script on it runs with the stored password.
    const result = await runScript(c, {
      name: 'q',
      type: 'RDSSQL',
      content: 'SELECT 1 AS one',
      connectionName: 'maria',
    });
    assert.equal(result.status, 'FINISHED', JSON.stringify(result));
    assert.deepEqual(result.results[0].rows, [[1]]);

    // A wrong password fails the check; the failed edit stores nothing.
    const wrong = await edit(c, 'maria', rds({ password: 'definitely-wrong' }), '?ischeck=true');
    assertError(wrong, 400, 'OPENDLF.0602');
    assert.ok(!wrong.text.includes(password));
    assertNoContent(await edit(c, 'maria', rds({}), '?ischeck=true'));

    // Stored without a check, the wrong password is kept: the next check fails.
    assertNoContent(await edit(c, 'maria', rds({ password: 'definitely-wrong' })));
    assertError(await edit(c, 'maria', rds({ password: MASK }), '?ischeck=true'), 400, 'OPENDLF.0602');
    assertError(await edit(c, 'maria', rds({}), '?ischeck=TRUE'), 400, 'OPENDLF.0602');
    // ischeck=false does not test.
    assertNoContent(await edit(c, 'maria', rds({}), '?ischeck=false'));
    // And the right one again works.
    assertNoContent(await edit(c, 'maria', rds({ password }), '?ischeck=true'));
  });

  it('does not store the password in clear in the SQLite files, and the connection works', async () => {
    const c = fresh();
    await mustCreate(c, {
      name: 'enc',
      type: 'RDS',
      config: {
        ip: '127.0.0.1',
        port: '3306',
        userName: encUser,
        password: marker,
        driverName: 'com.mysql.jdbc.Driver',
      },
    });
    const result = await runScript(c, {
      name: 'enc-q',
      type: 'RDSSQL',
      content: 'SELECT CURRENT_USER() AS u',
      connectionName: 'enc',
    });
    assert.equal(result.status, 'FINISHED', JSON.stringify(result));
    assert.match(String(result.results[0].rows[0][0]), new RegExp(`^${encUser}@`));

    const files = ['opendlf.sqlite', 'opendlf.sqlite-wal']
      .map((f) => join(server.dataDir, f))
      .filter((f) => existsSync(f));
    assert.ok(files.length > 0);
    const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
    // The row is there (the non-secret user name is stored as is) …
    assert.ok(bytes.includes(Buffer.from(encUser)), 'the connection row was not found in the store files');
    // … but not the password, in any common encoding.
    for (const needle of [
      marker,
      Buffer.from(marker).toString('base64'),
      Buffer.from(marker, 'utf16le').toString('latin1'),
    ]) {
      assert.ok(!bytes.includes(Buffer.from(needle, 'latin1')), `found ${needle} in the store files`);
    }
  });
});

describe('extension types and execution checks', () => {
  it('creates CLICKHOUSE, hides it from the plain list, shows it with includeExtensionTypes', async () => {
    const c = fresh();
    await mustCreate(c, {
      name: 'ch',
      type: 'CLICKHOUSE',
      config: { ip: '127.0.0.1', port: 8123, userName: 'default' },
    });
    await mustCreate(c, {
      name: 'rds',
      type: 'RDS',
      config: { ip: '127.0.0.1', port: '3306', userName: 'u' },
    });
    const plain = await list(c);
    assert.deepEqual(plain.json, {
      total: 1,
      connections: [
        {
          name: 'rds',
          type: 'RDS',
          config: { ip: '127.0.0.1', port: '3306', userName: 'u' },
          description: '',
        },
      ],
    });
    const all = await list(c, '?includeExtensionTypes=true');
    assert.equal(all.json.total, 2);
    assert.deepEqual(names(all), ['ch', 'rds']);
    assert.equal(all.json.connections[0].type, 'CLICKHOUSE');
    assert.equal(all.json.connections[0].config.port, '8123');
    assert.deepEqual(names(await list(c, '?includeExtensionTypes=false')), ['rds']);
    // The name is taken all the same.
    assertError(await create(c, { name: 'ch', type: 'RDS', config: {} }), 400, 'DLF.6309');
  });

  it('refuses to execute on stored-only connection types (DLI, HIVE: OPENDLF.0603)', async () => {
    const c = fresh();
    await mustCreate(c, { name: 'dli', type: 'DLI' });
    await mustCreate(c, {
      name: 'hive',
      type: 'HIVE',
      config: { clusterName: 'mrs', connectionMethod: 'direct' },
    });
    await c.createScript({
      name: 'on-dli',
      type: 'DLISQL',
      content: 'SELECT 1',
      connectionName: 'dli',
      queueName: 'default',
    });
    await c.createScript({ name: 'on-hive', type: 'HiveSQL', content: 'SELECT 1', connectionName: 'hive' });
    for (const name of ['on-dli', 'on-hive']) {
      assertError(await c.request('POST', c.path(`/${name}/execute`), { body: {} }), 400, 'OPENDLF.0603');
    }
  });

  it('refuses a Shell script on an RDS connection (OPENDLF.0601) and an unknown connection (DLF.6322)', async () => {
    const c = fresh();
    await mustCreate(c, {
      name: 'rds',
      type: 'RDS',
      config: { ip: '127.0.0.1', port: '3306', userName: 'root' },
    });
    await c.createScript({ name: 'sh', type: 'Shell', content: 'echo hi', connectionName: 'rds' });
    assertError(await c.request('POST', c.path('/sh/execute'), { body: {} }), 400, 'OPENDLF.0601');
    await c.createScript({
      name: 'orphan',
      type: 'RDSSQL',
      content: 'SELECT 1',
      connectionName: 'not-there',
    });
    assertError(await c.request('POST', c.path('/orphan/execute'), { body: {} }), 400, 'DLF.6322');
  });
});

/** A few connections of several types, with secrets, for export/import. */
async function seed(c: ApiClient): Promise<void> {
  await mustCreate(c, {
    name: 'exp-dws',
    type: 'DWS',
    description: 'warehouse',
    config: {
      ip: '10.1.1.1',
      port: 8000,
      userName: 'dbadmin',
      password: 'Export-Secret-1',
      sslEnable: 'true',
    },
  });
  await mustCreate(c, {
    name: 'exp-host',
    type: 'HOST',
    config: { ip: '10.1.1.2', port: '22', userName: 'root', privateKey: 'Export-Secret-2-KEY' },
  });
  await mustCreate(c, { name: 'exp-dli', type: 'DLI' });
  await mustCreate(c, {
    name: 'exp-ch',
    type: 'CLICKHOUSE',
    config: { ip: '10.1.1.3', port: '8123', password: 'Export-Secret-3' },
  });
}

async function exportZip(c: ApiClient): Promise<Buffer> {
  const res = await fetch(`${c.baseUrl}${connPath(c, '/export')}`, {
    method: 'POST',
    headers: c.workspace ? { workspace: c.workspace } : {},
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  assert.match(
    res.headers.get('content-disposition') ?? '',
    /attachment;.*filename="?DLF_All_DataConnections\.zip"?/,
  );
  return Buffer.from(await res.arrayBuffer());
}

/** Waits for the import task and returns it; asserts the documented task shape. */
async function importedTask(c: ApiClient, res: ApiResponse): Promise<any> {
  assertOk(res);
  assert.deepEqual(Object.keys(res.json), ['taskId']);
  assert.equal(typeof res.json.taskId, 'string');
  const task = await waitTask(c, res.json.taskId);
  assert.equal(task.id, res.json.taskId);
  assert.equal(task.projectId, c.projectId);
  for (const key of ['startTime', 'endTime', 'lastUpdate']) assert.equal(typeof task[key], 'number', key);
  assert.ok(Array.isArray(task.subtasks));
  for (const sub of task.subtasks) assert.equal(sub.taskId, task.id);
  return task;
}

describe('export and import', () => {
  it('exports every connection as connections/<name>.conn JSON without secrets', async () => {
    const c = fresh();
    await seed(c);
    const zip = await exportZip(c);
    const files = unzipSync(new Uint8Array(zip));
    assert.deepEqual(Object.keys(files).sort(), [
      'connections/exp-ch.conn',
      'connections/exp-dli.conn',
      'connections/exp-dws.conn',
      'connections/exp-host.conn',
    ]);
    for (const [path, bytes] of Object.entries(files)) {
      const text = strFromU8(bytes);
      assert.ok(!/Export-Secret/.test(text), `${path} carries a secret`);
      assert.ok(!text.includes(MASK), `${path} carries the mask`);
      const parsed = JSON.parse(text);
      assert.equal(`connections/${parsed.name}.conn`, path);
      assert.equal('password' in parsed.config, false);
      assert.equal('privateKey' in parsed.config, false);
    }
    const dws = JSON.parse(strFromU8(files['connections/exp-dws.conn']!));
    assert.deepEqual(dws, {
      name: 'exp-dws',
      type: 'DWS',
      description: 'warehouse',
      config: { ip: '10.1.1.1', port: '8000', userName: 'dbadmin', sslEnable: true },
    });
    // An empty workspace exports an empty zip.
    assert.deepEqual(Object.keys(unzipSync(new Uint8Array(await exportZip(fresh())))), []);
  });

  it('round-trips an upload into another workspace (OVERWRITE), secrets absent', async () => {
    const a = fresh();
    const b = server.client(a.projectId, 'ws-b');
    await seed(a);
    // B already has one of the names with other values: OVERWRITE replaces them.
    await mustCreate(b, {
      name: 'exp-host',
      type: 'HOST',
      description: 'old',
      // The same target as the exported one: only then may the stored password survive the import.
      config: { ip: '10.1.1.2', port: '22', userName: 'root', password: 'keep-me' },
    });
    const zip = await exportZip(a);
    const res = await b.request('POST', connPath(b, '/import?sameNamePolicy=OVERWRITE'), {
      rawBody: zip,
      headers: { 'content-type': 'application/zip' },
    });
    const task = await importedTask(b, res);
    assert.equal(task.status, 'SUCCESSFUL', JSON.stringify(task));
    assert.equal(task.subtasks.length, 4);
    assert.ok(task.subtasks.every((s: any) => s.status === 'SUCCESSFUL'));

    const inA = (await list(a, '?includeExtensionTypes=true')).json.connections as any[];
    const inB = (await list(b, '?includeExtensionTypes=true')).json.connections as any[];
    const strip = (conn: any) => {
      const config = { ...conn.config };
      delete config.password;
      delete config.privateKey;
      return { ...conn, config };
    };
    const byName = (xs: any[]) => Object.fromEntries(xs.map((x) => [x.name, x]));
    const bByName = byName(inB);
    assert.deepEqual(Object.keys(bByName).sort(), ['exp-ch', 'exp-dli', 'exp-dws', 'exp-host']);
    for (const conn of inA) {
      const imported = bByName[conn.name];
      if (conn.name === 'exp-host') {
        // Overwritten; the existing stored password survives an import without one.
        assert.deepEqual(strip(imported), strip(conn));
        assert.equal(imported.config.password, MASK);
        assert.equal('privateKey' in imported.config, false);
      } else {
        assert.deepEqual(imported, strip(conn), conn.name);
      }
    }
    // The task belongs to B's namespace.
    assertError(
      await a.request('GET', `/v1/${a.projectId}/system-tasks/${res.json.taskId}`),
      400,
      'DLF.20810',
    );
  });

  it('imports a server-local zip by path with SKIP and per-connection params', async () => {
    const c = fresh('ws-local');
    await mustCreate(c, {
      name: 'keep',
      type: 'HOST',
      description: 'original',
      config: { ip: 'h0', port: '22', userName: 'u0' },
    });
    const file = (name: string, body: unknown) =>
      [`connections/${name}.conn`, strToU8(JSON.stringify(body))] as const;
    const zip = zipSync(
      Object.fromEntries([
        file('keep', {
          name: 'keep',
          type: 'HOST',
          description: 'from zip',
          config: { ip: 'h1', port: '22', userName: 'u1' },
        }),
        file('new-rds', {
          name: 'new-rds',
          type: 'RDS',
          description: 'new',
          config: { ip: 'h2', port: 3306, userName: 'u2' },
        }),
        file('new-host', {
          name: 'new-host',
          type: 'HOST',
          config: { ip: 'h3', port: '22', userName: 'u3' },
        }),
      ]),
    );
    const fileName = `import-${randomBytes(4).toString('hex')}.zip`;
    writeFileSync(join(server.dataDir, 'imports', fileName), zip);

    const res = await c.request('POST', connPath(c, '/import'), {
      body: {
        path: join(server.dataDir, 'imports', fileName),
        sameNamePolicy: 'SKIP',
        params: [
          { name: 'new-rds', type: 'RDS', params: { password: 'x' } },
          // PY-old's spelling of the type key.
          { name: 'new-host', connectionType: 'HOST', params: { password: 'y', port: 2222 } },
          { name: 'keep', type: 'HOST', params: { password: 'z' } },
        ],
      },
    });
    const task = await importedTask(c, res);
    assert.equal(task.status, 'SUCCESSFUL', JSON.stringify(task));
    assert.equal(task.subtasks.length, 3);

    // SKIP: the existing connection is unchanged (not even the param's password was applied).
    assert.deepEqual((await getConn(c, 'keep')).json, {
      name: 'keep',
      type: 'HOST',
      config: { ip: 'h0', port: '22', userName: 'u0' },
      description: 'original',
    });
    assert.deepEqual((await getConn(c, 'new-rds')).json, {
      name: 'new-rds',
      type: 'RDS',
      config: { ip: 'h2', port: '3306', userName: 'u2', password: MASK },
      description: 'new',
    });
    assert.deepEqual((await getConn(c, 'new-host')).json.config, {
      ip: 'h3',
      port: '2222',
      userName: 'u3',
      password: MASK,
    });

    // A relative path inside the import directory works too; SKIP again leaves all three alone.
    const again = await c.request('POST', connPath(c, '/import'), { body: { path: fileName } });
    const task2 = await importedTask(c, again);
    assert.equal(task2.status, 'SUCCESSFUL', JSON.stringify(task2));
    assert.equal((await getConn(c, 'keep')).json.description, 'original');
    assert.equal((await list(c)).json.total, 3);
  });

  it('refuses import paths outside the import directory and OBS paths (DLF.0803)', async () => {
    const c = fresh();
    for (const path of [
      '/etc/passwd',
      '../opendlf.sqlite',
      join(server.dataDir, 'opendlf.sqlite'),
      join(server.dataDir, 'imports', '..', 'secret.key'),
      'obs://bucket/dir/DLF_All_DataConnections.zip',
      '/definitely/not/there.zip',
      '../../../../nonexistent-dir/x.zip',
    ]) {
      assertError(await c.request('POST', connPath(c, '/import'), { body: { path } }), 400, 'DLF.0803');
    }
    // A missing file inside the directory is a read failure.
    assertError(
      await c.request('POST', connPath(c, '/import'), { body: { path: 'missing.zip' } }),
      400,
      'DLF.0815',
    );
    // No path at all.
    assertError(
      await c.request('POST', connPath(c, '/import'), { body: { sameNamePolicy: 'SKIP' } }),
      400,
      'DLF.3051',
    );
    assertError(
      await c.request('POST', connPath(c, '/import'), { body: { path: 'x.zip', sameNamePolicy: 'MERGE' } }),
      400,
      'DLF.3051',
    );
    assert.equal((await list(c, '?includeExtensionTypes=true')).json.total, 0);
  });

  it('reports a broken upload as a FAILED task', async () => {
    const c = fresh();
    const res = await c.request('POST', connPath(c, '/import'), {
      rawBody: Buffer.from('this is not a zip'),
      headers: { 'content-type': 'application/zip' },
    });
    const task = await importedTask(c, res);
    assert.equal(task.status, 'FAILED');
    assert.ok(task.message.length > 0);
  });

  it('answers an unknown system task with DLF.20810', async () => {
    const c = fresh();
    assertError(await c.request('GET', `/v1/${c.projectId}/system-tasks/no-such-task`), 400, 'DLF.20810');
  });
});

describe('workspace isolation', () => {
  it('keeps connections of workspaces and projects apart', async () => {
    const a = fresh();
    const aExplicit = server.client(a.projectId, 'default');
    const b = server.client(a.projectId, 'ws-iso');
    const otherProject = fresh();
    await mustCreate(a, {
      name: 'shared',
      type: 'HOST',
      description: 'in a',
      config: { ip: 'a', port: '22' },
    });
    // No header and the default workspace's id are the same workspace.
    assert.equal((await getConn(aExplicit, 'shared')).json.description, 'in a');
    for (const other of [b, otherProject]) {
      assertError(await getConn(other, 'shared'), 400, 'DLF.6322');
      assert.deepEqual((await list(other)).json, { total: 0, connections: [] });
      assertError(await edit(other, 'shared', { name: 'shared', type: 'HOST', config: {} }), 400, 'DLF.6322');
      assertError(await del(other, 'shared'), 400, 'DLF.6322');
    }
    // The same name in another workspace, with another type.
    await mustCreate(b, { name: 'shared', type: 'CloudTable', description: 'in b', config: {} });
    assert.equal((await getConn(a, 'shared')).json.type, 'HOST');
    assert.equal((await getConn(b, 'shared')).json.type, 'CloudTable');
    // Scripts resolve connections in their own workspace only.
    await otherProject.createScript({
      name: 's',
      type: 'Shell',
      content: 'echo hi',
      connectionName: 'shared',
    });
    assertError(
      await otherProject.request('POST', otherProject.path('/s/execute'), { body: {} }),
      400,
      'DLF.6322',
    );
    // Export sees only its own workspace.
    assert.deepEqual(Object.keys(unzipSync(new Uint8Array(await exportZip(b)))), ['connections/shared.conn']);
    assertNoContent(await del(b, 'shared'));
    assert.equal((await getConn(a, 'shared')).json.description, 'in a');
  });
});
