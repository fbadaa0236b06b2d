/**
 * HTTP integration tests of the script CRUD endpoints (docs/compatibility.md §1–§3) against a real in-process
 * server: create, get, modify, list, delete, validation, error envelope, content types and routing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type ApiClient, type ApiResponse, type TestServer } from '../helpers/server.js';
import { assertError, assertNoContent, assertOk } from '../helpers/assertions.js';

const MiB = 1024 * 1024;

/** The DLF error envelope: status, code, both the top-level pair and errors[0], JSON content type, request id. */

const SCRIPT_KEYS = [
  'autoAcquireLock',
  'configuration',
  'connectionName',
  'content',
  'createUser',
  'database',
  'description',
  'directory',
  'id',
  'name',
  'owner',
  'queueName',
  'type',
  'version',
];

let server: TestServer;
let projectCounter = 0;
/** A client on a fresh project, so every test starts with an empty namespace. */
function freshClient(workspace?: string): ApiClient {
  projectCounter += 1;
  return server.client(`scripts-p${projectCounter}`, workspace);
}

async function getScript(c: ApiClient, name: string): Promise<ApiResponse> {
  return c.request('GET', c.path(`/${encodeURIComponent(name)}`));
}

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

describe('create and get', () => {
  it('answers 204 with an empty body, and get returns the full script representation', async () => {
    const c = freshClient();
    const res = await c.request('POST', c.path(), {
      body: {
        name: 'full_script',
        type: 'DLISQL',
        content: 'select 1;',
        directory: '/etl/daily',
        connectionName: 'dli_conn',
        database: 'db1',
        queueName: 'q1',
        configuration: { 'spark.sql.shuffle.partitions': '8' },
        description: 'a description',
        targetStatus: 'SUBMITTED',
        approvers: [{ approverName: 'alice' }],
      },
    });
    assertNoContent(res);
    assert.match(res.headers.get('x-request-id') ?? '', /^\S+$/);

    const got = await getScript(c, 'full_script');
    assertOk(got);
    assert.deepEqual(Object.keys(got.json).sort(), SCRIPT_KEYS);
    const { id, ...rest } = got.json;
    assert.equal(typeof id, 'string');
    assert.ok(id.length > 0);
    assert.deepEqual(rest, {
      name: 'full_script',
      type: 'DLISQL',
      content: 'select 1;',
      directory: '/etl/daily',
      connectionName: 'dli_conn',
      database: 'db1',
      queueName: 'q1',
      configuration: { 'spark.sql.shuffle.partitions': '8' },
      description: 'a description',
      owner: 'anonymous',
      version: 1,
      createUser: 'anonymous',
      autoAcquireLock: true,
    });
  });

  it('fills absent optional fields with empty strings, "/" and {} (never null)', async () => {
    const c = freshClient();
    assertNoContent(await c.request('POST', c.path(), { body: { name: 'minimal', type: 'Shell' } }));
    const got = await getScript(c, 'minimal');
    assertOk(got);
    assert.equal(got.json.content, '');
    assert.equal(got.json.directory, '/');
    assert.equal(got.json.connectionName, '');
    assert.equal(got.json.database, '');
    assert.equal(got.json.queueName, '');
    assert.equal(got.json.description, '');
    assert.deepEqual(got.json.configuration, {});
    for (const [key, value] of Object.entries(got.json)) assert.notEqual(value, null, `${key} is null`);
  });

  it('treats a null content like a missing one', async () => {
    const c = freshClient();
    assertNoContent(
      await c.request('POST', c.path(), { body: { name: 'nullcontent', type: 'Shell', content: null } }),
    );
    assert.equal((await getScript(c, 'nullcontent')).json.content, '');
  });

  it('accepts every documented type and echoes it exactly, including SparkPython and "Spark Python"', async () => {
    const c = freshClient();
    const types = [
      'FlinkSQL',
      'DLISQL',
      'SparkSQL',
      'HiveSQL',
      'DWSSQL',
      'RDSSQL',
      'Shell',
      'PRESTO',
      'ClickHouseSQL',
      'HetuEngineSQL',
      'PYTHON',
      'ImpalaSQL',
      'Spark Python',
      'SparkPython',
    ];
    for (const [i, type] of types.entries()) {
      assertNoContent(await c.request('POST', c.path(), { body: { name: `t${i}`, type, content: 'x' } }));
      const got = await getScript(c, `t${i}`);
      assertOk(got);
      assert.equal(got.json.type, type);
    }
  });

  it('rejects a missing, empty, null, mis-cased or non-string type with DLF.6247', async () => {
    const c = freshClient();
    const bodies: Record<string, unknown>[] = [
      { name: 'nt1', content: 'x' },
      { name: 'nt2', type: '', content: 'x' },
      { name: 'nt3', type: null, content: 'x' },
      { name: 'nt4', type: 'shell', content: 'x' },
      { name: 'nt5', type: 'SPARKPYTHON', content: 'x' },
      { name: 'nt6', type: 'Unknown', content: 'x' },
      { name: 'nt7', type: 7, content: 'x' },
    ];
    for (const body of bodies) {
      assertError(await c.request('POST', c.path(), { body }), 400, 'DLF.6247');
      assertError(await getScript(c, body.name as string), 400, 'DLF.6201');
    }
  });

  it('rejects a second script with the same name with DLF.0202 and keeps the first one', async () => {
    const c = freshClient();
    assertNoContent(
      await c.request('POST', c.path(), { body: { name: 'dup', type: 'Shell', content: 'one' } }),
    );
    assertError(
      await c.request('POST', c.path(), { body: { name: 'dup', type: 'PYTHON', content: 'two' } }),
      400,
      'DLF.0202',
    );
    const got = await getScript(c, 'dup');
    assert.equal(got.json.type, 'Shell');
    assert.equal(got.json.content, 'one');
  });

  it('names are case-sensitive: "Dup" and "dup" are two scripts', async () => {
    const c = freshClient();
    assertNoContent(
      await c.request('POST', c.path(), { body: { name: 'dup', type: 'Shell', content: 'lower' } }),
    );
    assertNoContent(
      await c.request('POST', c.path(), { body: { name: 'Dup', type: 'Shell', content: 'upper' } }),
    );
    assert.equal((await getScript(c, 'dup')).json.content, 'lower');
    assert.equal((await getScript(c, 'Dup')).json.content, 'upper');
  });

  it('accepts names of letters, digits, _ . - up to 128 characters', async () => {
    const c = freshClient();
    for (const name of [
      'a',
      'A-b_c.d',
      '0',
      'x'.repeat(128),
      'mrs_spark_sql',
      'v1.2-rc_3',
      '-',
      '_',
      '.hidden',
    ]) {
      assertNoContent(await c.request('POST', c.path(), { body: { name, type: 'Shell' } }));
      const got = await getScript(c, name);
      assertOk(got);
      assert.equal(got.json.name, name);
    }
  });

  it('rejects bad names with DLF.3051', async () => {
    const c = freshClient();
    const names: unknown[] = [
      '',
      'x'.repeat(129),
      'a b',
      'a/b',
      'a%b',
      'é',
      'a\u0000b',
      'tab\t',
      'semi;colon',
      // Dot segments: clients (WHATWG URL, urllib3) normalise `/scripts/..` away, so such a script
      // could never be read or deleted again.
      '.',
      '..',
      42,
      null,
      ['a'],
    ];
    for (const name of names) {
      assertError(await c.request('POST', c.path(), { body: { name, type: 'Shell' } }), 400, 'DLF.3051');
    }
    assertError(await c.request('POST', c.path(), { body: { type: 'Shell' } }), 400, 'DLF.3051');
    const list = await c.request('GET', c.path('?limit=1000'));
    assert.equal(list.json.total, 0);
  });

  it('normalises the directory: a/b, /a/b/, /a/b ⇒ /a/b; "", "/" and absent ⇒ /', async () => {
    const c = freshClient();
    const cases: [unknown, string][] = [
      ['a/b', '/a/b'],
      ['/a/b/', '/a/b'],
      ['/a/b', '/a/b'],
      ['//a//b//', '/a/b'],
      ['a', '/a'],
      ['', '/'],
      ['/', '/'],
      [null, '/'],
      [undefined, '/'],
    ];
    for (const [i, [directory, expected]] of cases.entries()) {
      const body: Record<string, unknown> = { name: `d${i}`, type: 'Shell' };
      if (directory !== undefined) body.directory = directory;
      assertNoContent(await c.request('POST', c.path(), { body }));
      assert.equal(
        (await getScript(c, `d${i}`)).json.directory,
        expected,
        `directory ${JSON.stringify(directory)}`,
      );
    }
  });

  it('rejects invalid directories with DLF.3051', async () => {
    const c = freshClient();
    const deep = Array.from({ length: 11 }, (_, i) => `l${i}`).join('/');
    for (const directory of ['a b', '/a/b.c', deep, `/${'x'.repeat(65)}`, 5, { a: 1 }]) {
      assertError(
        await c.request('POST', c.path(), { body: { name: 'dir', type: 'Shell', directory } }),
        400,
        'DLF.3051',
      );
    }
    const ten = Array.from({ length: 10 }, (_, i) => `l${i}`).join('/');
    assertNoContent(
      await c.request('POST', c.path(), { body: { name: 'dir', type: 'Shell', directory: ten } }),
    );
    assert.equal((await getScript(c, 'dir')).json.directory, `/${ten}`);
  });

  it('coerces configuration values to strings', async () => {
    const c = freshClient();
    assertNoContent(
      await c.request('POST', c.path(), {
        body: {
          name: 'conf',
          type: 'DLISQL',
          configuration: { s: 'text', n: 8, f: 1.5, t: true, b: false, o: { x: 1 }, a: [1, 'y'], z: null },
        },
      }),
    );
    const got = await getScript(c, 'conf');
    assert.deepEqual(got.json.configuration, {
      s: 'text',
      n: '8',
      f: '1.5',
      t: 'true',
      b: 'false',
      o: '{"x":1}',
      a: '[1,"y"]',
      z: '',
    });
    for (const value of Object.values(got.json.configuration)) assert.equal(typeof value, 'string');
  });

  it('rejects non-object configuration and non-string fields with DLF.3051', async () => {
    const c = freshClient();
    const bad: Record<string, unknown>[] = [
      { configuration: 'a=b' },
      { configuration: ['a'] },
      { content: 5 },
      { content: { a: 1 } },
      { connectionName: 1 },
      { description: 'd'.repeat(256) },
      { targetStatus: 'DONE' },
      { approvers: 'alice' },
      { approvers: [{}] },
    ];
    for (const extra of bad) {
      assertError(
        await c.request('POST', c.path(), { body: { name: 'bad', type: 'Shell', ...extra } }),
        400,
        'DLF.3051',
      );
    }
    assertNoContent(
      await c.request('POST', c.path(), {
        body: { name: 'bad', type: 'Shell', description: 'd'.repeat(255) },
      }),
    );
  });

  it('accepts content of exactly 4 MB and rejects 4 MB + 1 byte (UTF-8 bytes) with DLF.3051', async () => {
    const c = freshClient();
    assertNoContent(
      await c.request('POST', c.path(), {
        body: { name: 'max', type: 'Shell', content: 'a'.repeat(4 * MiB) },
      }),
    );
    const got = await getScript(c, 'max');
    assert.equal(got.json.content.length, 4 * MiB);
    assertError(
      await c.request('POST', c.path(), {
        body: { name: 'over', type: 'Shell', content: 'a'.repeat(4 * MiB + 1) },
      }),
      400,
      'DLF.3051',
    );
    // 2 Mi + 1 characters but 4 MiB + 2 bytes: the limit is in bytes.
    assertError(
      await c.request('POST', c.path(), {
        body: { name: 'over2', type: 'Shell', content: 'é'.repeat(2 * MiB + 1) },
      }),
      400,
      'DLF.3051',
    );
    assertError(await getScript(c, 'over'), 400, 'DLF.6201');
    assertError(await getScript(c, 'over2'), 400, 'DLF.6201');
  });

  it('answers a raw body over 12 MB with 413 and the error envelope', async () => {
    const c = freshClient();
    const res = await c.request('POST', c.path(), {
      rawBody: Buffer.alloc(12 * MiB + 1024, 0x20),
      headers: { 'content-type': 'application/json' },
    });
    assertError(res, 413, 'APIGW.0201');
  });

  it('rejects malformed JSON and non-object bodies with DLF.3051', async () => {
    const c = freshClient();
    const ct = { 'content-type': 'application/json' };
    for (const rawBody of [
      '{',
      '{"name":"x",',
      'not json',
      "{'name':'x'}",
      '[]',
      '"text"',
      '42',
      'null',
      '',
    ]) {
      assertError(await c.request('POST', c.path(), { rawBody, headers: ct }), 400, 'DLF.3051');
    }
    assertError(await c.request('POST', c.path()), 400, 'DLF.3051');
  });

  it('accepts JSON under every content type PY and GO send, none, and text/plain', async () => {
    const c = freshClient();
    const variants: (string | undefined)[] = [
      'application/json',
      'application/json;charset=utf-8',
      'application/json;charset=UTF-8',
      'APPLICATION/JSON;CHARSET=UTF-8',
      'application/json; charset=utf-8',
      undefined,
      'text/plain',
    ];
    for (const [i, contentType] of variants.entries()) {
      const name = `ct${i}`;
      const res = await c.request('POST', c.path(), {
        // A Buffer body keeps fetch from adding a content type of its own.
        rawBody: Buffer.from(JSON.stringify({ name, type: 'Shell', content: `echo ${i}` })),
        headers: contentType === undefined ? {} : { 'content-type': contentType },
      });
      assertNoContent(res);
      const got = await getScript(c, name);
      assertOk(got);
      assert.equal(got.json.content, `echo ${i}`);
    }
  });

  it('reads multi-byte UTF-8 content back unchanged', async () => {
    const c = freshClient();
    const content = "echo 'héllo wörld ✓ 你好 🚀'";
    assertNoContent(await c.request('POST', c.path(), { body: { name: 'utf8', type: 'Shell', content } }));
    assert.equal((await getScript(c, 'utf8')).json.content, content);
  });
});

describe('get', () => {
  it('answers an unknown script with DLF.6201', async () => {
    const c = freshClient();
    assertError(await getScript(c, 'nope'), 400, 'DLF.6201');
  });

  it('accepts a GET that carries a Content-Type header (PY always sends one)', async () => {
    const c = freshClient();
    await c.createScript({ name: 'withct', type: 'Shell', content: 'echo' });
    for (const contentType of ['application/json', 'application/json;charset=UTF-8', 'text/plain']) {
      const got = await c.request('GET', c.path('/withct'), { headers: { 'content-type': contentType } });
      assertOk(got);
      assert.equal(got.json.name, 'withct');
      const list = await c.request('GET', c.path(), { headers: { 'content-type': contentType } });
      assertOk(list);
      assert.equal(list.json.total, 1);
    }
  });

  it('ignores a trailing slash', async () => {
    const c = freshClient();
    await c.createScript({ name: 'slash', type: 'Shell' });
    const got = await c.request('GET', c.path('/slash/'));
    assertOk(got);
    assert.equal(got.json.name, 'slash');
  });
});

describe('modify', () => {
  it('replaces the mutable fields, answers 204, bumps the version and keeps the id', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'mod',
      type: 'Shell',
      content: 'echo 1',
      directory: 'old',
      connectionName: 'local',
      database: 'db',
      queueName: 'q',
      configuration: { a: 'b' },
      description: 'old description',
    });
    const before = (await getScript(c, 'mod')).json;
    const res = await c.request('PUT', c.path('/mod'), {
      body: { name: 'mod', type: 'Shell', content: 'echo 2', directory: 'new/dir/', configuration: { n: 1 } },
    });
    assertNoContent(res);
    const got = await getScript(c, 'mod');
    assertOk(got);
    assert.equal(got.json.id, before.id);
    assert.equal(got.json.version, before.version + 1);
    assert.equal(got.json.content, 'echo 2');
    assert.equal(got.json.directory, '/new/dir');
    assert.deepEqual(got.json.configuration, { n: '1' });
    // A full replacement: fields the client omitted become empty.
    assert.equal(got.json.connectionName, '');
    assert.equal(got.json.database, '');
    assert.equal(got.json.queueName, '');
    assert.equal(got.json.description, '');
  });

  it('accepts a missing content as "" (GO omits empty content)', async () => {
    const c = freshClient();
    await c.createScript({ name: 'mod', type: 'Shell', content: 'echo 1' });
    assertNoContent(await c.request('PUT', c.path('/mod'), { body: { name: 'mod', type: 'Shell' } }));
    assert.equal((await getScript(c, 'mod')).json.content, '');
  });

  it('refuses a name or type change with DLF.3051 and leaves the script unchanged', async () => {
    const c = freshClient();
    await c.createScript({ name: 'fixed', type: 'Shell', content: 'original' });
    await c.createScript({ name: 'other', type: 'Shell', content: 'other' });
    assertError(
      await c.request('PUT', c.path('/fixed'), { body: { name: 'renamed', type: 'Shell', content: 'x' } }),
      400,
      'DLF.3051',
    );
    assertError(
      await c.request('PUT', c.path('/fixed'), { body: { name: 'other', type: 'Shell', content: 'x' } }),
      400,
      'DLF.3051',
    );
    assertError(
      await c.request('PUT', c.path('/fixed'), { body: { name: 'fixed', type: 'PYTHON', content: 'x' } }),
      400,
      'DLF.3051',
    );
    const got = await getScript(c, 'fixed');
    assert.equal(got.json.content, 'original');
    assert.equal(got.json.version, 1);
    assert.equal((await getScript(c, 'other')).json.content, 'other');
    assertError(await getScript(c, 'renamed'), 400, 'DLF.6201');
  });

  it('treats SparkPython and "Spark Python" as different stored values on modify (echo as stored)', async () => {
    const c = freshClient();
    await c.createScript({ name: 'sp', type: 'SparkPython', content: 'a' });
    assertNoContent(
      await c.request('PUT', c.path('/sp'), { body: { name: 'sp', type: 'SparkPython', content: 'b' } }),
    );
    const got = await getScript(c, 'sp');
    assert.equal(got.json.type, 'SparkPython');
    assert.equal(got.json.content, 'b');
  });

  it('answers a missing script with DLF.6201', async () => {
    const c = freshClient();
    assertError(
      await c.request('PUT', c.path('/ghost'), { body: { name: 'ghost', type: 'Shell', content: 'x' } }),
      400,
      'DLF.6201',
    );
    assertError(await getScript(c, 'ghost'), 400, 'DLF.6201');
  });

  it('validates the body like create (type, content size, malformed JSON)', async () => {
    const c = freshClient();
    await c.createScript({ name: 'val', type: 'Shell', content: 'keep' });
    assertError(await c.request('PUT', c.path('/val'), { body: { name: 'val' } }), 400, 'DLF.6247');
    assertError(
      await c.request('PUT', c.path('/val'), {
        body: { name: 'val', type: 'Shell', content: 'a'.repeat(4 * MiB + 1) },
      }),
      400,
      'DLF.3051',
    );
    assertError(
      await c.request('PUT', c.path('/val'), {
        rawBody: '{"name":',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'DLF.3051',
    );
    assertError(await c.request('PUT', c.path('/val')), 400, 'DLF.3051');
    assert.equal((await getScript(c, 'val')).json.content, 'keep');
  });
});

describe('list', () => {
  let c: ApiClient;
  const names = Array.from({ length: 15 }, (_, i) => `job_${String(i).padStart(2, '0')}`);

  before(async () => {
    c = freshClient();
    // Created in an order that is neither alphabetical nor reverse-alphabetical.
    const order = [...names.filter((_, i) => i % 2 === 1).reverse(), ...names.filter((_, i) => i % 2 === 0)];
    names.splice(0, names.length, ...order);
    for (const name of names) await c.createScript({ name, type: 'Shell', content: `echo ${name}` });
    await c.createScript({ name: 'jobXa', type: 'Shell' });
    await c.createScript({ name: 'other.script', type: 'PYTHON' });
    names.push('jobXa', 'other.script');
  });

  const listNames = (res: ApiResponse) => (res.json.scripts as { name: string }[]).map((s) => s.name);

  it('defaults to offset 0 and limit 10, reports the total, and lists in creation order', async () => {
    const res = await c.request('GET', c.path());
    assertOk(res);
    assert.deepEqual(Object.keys(res.json).sort(), ['scripts', 'total']);
    assert.equal(res.json.total, 17);
    assert.deepEqual(listNames(res), names.slice(0, 10));
    // Items carry the full representation, content included.
    const first = res.json.scripts[0];
    assert.deepEqual(Object.keys(first).sort(), SCRIPT_KEYS);
    assert.equal(first.content, `echo ${names[0]}`);
  });

  it('treats offset as a record offset', async () => {
    const res = await c.request('GET', c.path('?offset=3&limit=4'));
    assertOk(res);
    assert.equal(res.json.total, 17);
    assert.deepEqual(listNames(res), names.slice(3, 7));
    const tail = await c.request('GET', c.path('?offset=10'));
    assert.deepEqual(listNames(tail), names.slice(10));
    const past = await c.request('GET', c.path('?offset=100'));
    assertOk(past);
    assert.equal(past.json.total, 17);
    assert.deepEqual(past.json.scripts, []);
  });

  it('pages through everything without gaps or repeats', async () => {
    const seen: string[] = [];
    for (let offset = 0; offset < 17; offset += 5) {
      const res = await c.request('GET', c.path(`?offset=${offset}&limit=5`));
      assert.equal(res.json.total, 17);
      seen.push(...listNames(res));
    }
    assert.deepEqual(seen, names);
  });

  it('accepts limit 1 and 1000', async () => {
    const one = await c.request('GET', c.path('?limit=1'));
    assertOk(one);
    assert.deepEqual(listNames(one), names.slice(0, 1));
    const max = await c.request('GET', c.path('?limit=1000'));
    assertOk(max);
    assert.deepEqual(listNames(max), names);
  });

  it('rejects limit 0, 1001, negative, non-numeric and bad offsets with DLF.3051', async () => {
    for (const query of [
      'limit=0',
      'limit=1001',
      'limit=-1',
      'limit=abc',
      'limit=1.5',
      'limit=10abc',
      'offset=-1',
      'offset=x',
      'offset=1.5',
      'limit=5&limit=6',
    ]) {
      assertError(await c.request('GET', c.path(`?${query}`)), 400, 'DLF.3051');
    }
  });

  it('filters by scriptName substring (case-sensitive, _ is literal) and pages within the matches', async () => {
    const sub = await c.request('GET', c.path('?scriptName=job_0&limit=100'));
    assertOk(sub);
    const expected = names.filter((n) => n.includes('job_0'));
    assert.equal(sub.json.total, expected.length);
    assert.deepEqual(listNames(sub), expected);

    // `_` must not act as a wildcard (SQL LIKE would match jobXa).
    const literal = await c.request('GET', c.path('?scriptName=job_&limit=100'));
    assert.ok(!listNames(literal).includes('jobXa'));
    assert.equal(literal.json.total, 15);

    const middle = await c.request('GET', c.path('?scriptName=ther.scr'));
    assert.deepEqual(listNames(middle), ['other.script']);
    assert.equal(middle.json.total, 1);

    const upper = await c.request('GET', c.path('?scriptName=JOB_'));
    assert.equal(upper.json.total, 0);
    assert.deepEqual(upper.json.scripts, []);

    const paged = await c.request('GET', c.path('?scriptName=job_1&offset=1&limit=2'));
    const matches = names.filter((n) => n.includes('job_1'));
    assert.equal(paged.json.total, matches.length);
    assert.deepEqual(listNames(paged), matches.slice(1, 3));

    const none = await c.request('GET', c.path('?scriptName=zzz'));
    assertOk(none);
    assert.deepEqual(none.json, { total: 0, scripts: [] });
  });

  it('an empty scriptName matches everything', async () => {
    const res = await c.request('GET', c.path('?scriptName='));
    assertOk(res);
    assert.equal(res.json.total, 17);
  });

  it('an empty project lists nothing', async () => {
    const empty = freshClient();
    const res = await empty.request('GET', empty.path());
    assertOk(res);
    assert.deepEqual(res.json, { total: 0, scripts: [] });
  });

  it('keeps creation order after a modify and after deleting a script', async () => {
    const d = freshClient();
    for (const name of ['z', 'm', 'a']) await d.createScript({ name, type: 'Shell' });
    assertNoContent(
      await d.request('PUT', d.path('/z'), { body: { name: 'z', type: 'Shell', content: 'changed' } }),
    );
    assert.deepEqual(listNames(await d.request('GET', d.path())), ['z', 'm', 'a']);
    assertNoContent(await d.request('DELETE', d.path('/m')));
    await d.createScript({ name: 'm', type: 'Shell' });
    const res = await d.request('GET', d.path());
    assert.deepEqual(listNames(res), ['z', 'a', 'm']);
    assert.equal(res.json.total, 3);
  });
});

describe('delete', () => {
  it('deletes with a GO-style body ({} with application/json): 204, then DLF.6201', async () => {
    const c = freshClient();
    await c.createScript({ name: 'go_del', type: 'Shell' });
    const res = await c.request('DELETE', c.path('/go_del'), {
      rawBody: '{}',
      headers: { 'content-type': 'application/json' },
    });
    assertNoContent(res);
    assertError(await getScript(c, 'go_del'), 400, 'DLF.6201');
    assertError(
      await c.request('DELETE', c.path('/go_del'), {
        rawBody: '{}',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'DLF.6201',
    );
  });

  it('deletes with no body at all (PY): 204, then DLF.6201', async () => {
    const c = freshClient();
    await c.createScript({ name: 'py_del', type: 'Shell' });
    assertNoContent(await c.request('DELETE', c.path('/py_del')));
    assertError(await getScript(c, 'py_del'), 400, 'DLF.6201');
    assertError(await c.request('DELETE', c.path('/py_del')), 400, 'DLF.6201');
  });

  it('deletes with an empty body and a JSON content type, and with an approvers body', async () => {
    const c = freshClient();
    await c.createScript({ name: 'e1', type: 'Shell' });
    await c.createScript({ name: 'e2', type: 'Shell' });
    assertNoContent(
      await c.request('DELETE', c.path('/e1'), {
        rawBody: '',
        headers: { 'content-type': 'application/json;charset=utf-8' },
      }),
    );
    assertNoContent(
      await c.request('DELETE', c.path('/e2'), { body: { approvers: [{ approverName: 'bob' }] } }),
    );
    const list = await c.request('GET', c.path());
    assert.deepEqual(list.json, { total: 0, scripts: [] });
  });

  it('rejects a malformed body with DLF.3051 and keeps the script', async () => {
    const c = freshClient();
    await c.createScript({ name: 'keep', type: 'Shell' });
    assertError(
      await c.request('DELETE', c.path('/keep'), {
        rawBody: '{oops',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'DLF.3051',
    );
    assertOk(await getScript(c, 'keep'));
  });

  it('lets the name be reused after delete, as a new script', async () => {
    const c = freshClient();
    await c.createScript({ name: 'again', type: 'Shell', content: 'first' });
    const firstId = (await getScript(c, 'again')).json.id;
    assertNoContent(await c.request('DELETE', c.path('/again')));
    await c.createScript({ name: 'again', type: 'PYTHON', content: 'second' });
    const got = await getScript(c, 'again');
    assert.notEqual(got.json.id, firstId);
    assert.equal(got.json.type, 'PYTHON');
    assert.equal(got.json.content, 'second');
    assert.equal(got.json.version, 1);
  });
});

describe('errors and routing', () => {
  it('answers unknown routes with 404 APIGW.0101 in the error envelope', async () => {
    const c = freshClient();
    for (const [method, path] of [
      ['GET', '/'],
      ['GET', '/v1'],
      ['GET', `/v1/${c.projectId}`],
      ['GET', `/v2/${c.projectId}/scripts`],
      ['GET', `/v1/${c.projectId}/jobs-nope`],
      ['GET', c.path('/a/b')],
      ['POST', c.path('/a/instances/b/c')],
      ['PATCH', c.path('/a')],
    ] as const) {
      assertError(await c.request(method, path), 404, 'APIGW.0101');
    }
  });

  it('sets a distinct X-Request-Id on every response', async () => {
    const c = freshClient();
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const res = await getScript(c, 'missing');
      assertError(res, 400, 'DLF.6201');
      ids.add(res.headers.get('x-request-id') ?? '');
    }
    const ok = await c.request('GET', c.path());
    ids.add(ok.headers.get('x-request-id') ?? '');
    assert.equal(ids.size, 6);
  });

  it('rejects an invalid project id in the path with DLF.3051', async () => {
    const c = server.client('bad.project');
    assertError(await c.request('GET', c.path()), 400, 'DLF.3051');
  });

  it('routes scripts named execute, instances and stop by segment count', async () => {
    const c = freshClient();
    for (const name of ['execute', 'instances', 'stop']) {
      await c.createScript({ name, type: 'Shell', connectionName: 'local', content: `echo I am ${name}` });
    }
    for (const name of ['execute', 'instances', 'stop']) {
      const got = await c.request('GET', c.path(`/${name}`));
      assertOk(got);
      assert.equal(got.json.name, name);
      assert.equal(got.json.content, `echo I am ${name}`);
    }

    const exec = await c.request('POST', c.path('/execute/execute'));
    assertOk(exec);
    const id = exec.json.instanceId as string;
    const done = await c.waitFor('execute', id);
    assert.equal(done.json.status, 'FINISHED');
    assert.deepEqual(done.json.results[0].rows, [['I am execute']]);

    const list = await c.request('GET', c.path('/instances/instances'));
    assertOk(list);
    assert.deepEqual(list.json, { total: 0, instances: [] });
    const listOfExecute = await c.request('GET', c.path('/execute/instances'));
    assert.equal(listOfExecute.json.total, 1);

    const stopRun = await c.request('POST', c.path('/stop/execute'));
    assertOk(stopRun);
    const stopId = stopRun.json.instanceId as string;
    await c.waitFor('stop', stopId);
    assertNoContent(await c.request('POST', c.path(`/stop/instances/${stopId}/stop`)));

    assertNoContent(
      await c.request('PUT', c.path('/instances'), {
        body: { name: 'instances', type: 'Shell', content: 'new' },
      }),
    );
    assert.equal((await c.request('GET', c.path('/instances'))).json.content, 'new');
    assertNoContent(await c.request('DELETE', c.path('/execute')));
    assertError(await c.request('GET', c.path('/execute')), 400, 'DLF.6201');
    assertOk(await c.request('GET', c.path('/instances')));
  });

  it('decodes percent-encoded script names in every path', async () => {
    const c = freshClient();
    await c.createScript({
      name: 'my.script-1_x',
      type: 'Shell',
      connectionName: 'local',
      content: 'echo enc',
    });
    for (const encoded of ['my%2Escript%2D1%5Fx', 'my%2escript%2d1%5fx', '%6D%79.script-1_x']) {
      const got = await c.request('GET', c.path(`/${encoded}`));
      assertOk(got);
      assert.equal(got.json.name, 'my.script-1_x');
    }
    assertNoContent(
      await c.request('PUT', c.path('/my%2Escript-1_x'), {
        body: { name: 'my.script-1_x', type: 'Shell', connectionName: 'local', content: 'echo put' },
      }),
    );
    const exec = await c.request('POST', c.path('/my%2Escript-1_x/execute'));
    assertOk(exec);
    const done = await c.waitFor('my.script-1_x', exec.json.instanceId);
    assert.deepEqual(done.json.results[0].rows, [['put']]);
    const result = await c.request('GET', c.path(`/my%2Escript%2D1_x/instances/${exec.json.instanceId}`));
    assertOk(result);
    assert.equal(result.json.status, 'FINISHED');
    assertNoContent(await c.request('DELETE', c.path('/my%2Escript%2D1%5Fx')));
    assertError(await c.request('GET', c.path('/my.script-1_x')), 400, 'DLF.6201');
    // An encoded slash is part of the name, not a path separator: no such script.
    assertError(await c.request('GET', c.path('/a%2Fb')), 400, 'DLF.6201');
  });

  it('accepts the 128-character maximum name in the path', async () => {
    const c = freshClient();
    const name = `${'n'.repeat(127)}.`;
    await c.createScript({ name, type: 'Shell' });
    assertOk(await c.request('GET', c.path(`/${name}`)));
    assertNoContent(await c.request('DELETE', c.path(`/${encodeURIComponent(name)}`)));
  });
});
