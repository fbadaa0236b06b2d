/**
 * Pure pieces of the client commands: CSV quoting, the choice of a statement, the settings
 * precedence (flags > environment > profile), the profiles file checks, and the API client's error
 * mapping (against a stub `fetch`: the client's own parsing, not a server's behaviour).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ApiError, DlfApiClient, type InstanceResult } from '../../src/client/api-client.js';
import { CliError } from '../../src/cli/client/cli-error.js';
import { chooseStatement } from '../../src/cli/client/instance-output.js';
import { toCsv } from '../../src/cli/client/output.js';
import { resolveSettings } from '../../src/cli/client/profiles.js';

describe('CSV', () => {
  it('quotes commas, quotes and line breaks (RFC 4180), null as empty, CRLF lines', () => {
    assert.equal(
      toCsv(
        ['a', 'b,c'],
        [
          [1, 'x"y'],
          [null, 'two\nlines'],
          [true, { k: 1 }],
        ],
      ),
      'a,"b,c"\r\n1,"x""y"\r\n,"two\nlines"\r\ntrue,"{""k"":1}"\r\n',
    );
  });
});

describe('chooseStatement', () => {
  const result = (columns: string[]) => ({
    schema: columns.map((c) => ({ [c]: 'INTEGER' })),
    rows: [],
    rowCount: 0,
    duration: 0,
    message: '',
  });
  const instance = (...results: ReturnType<typeof result>[]) =>
    ({ status: 'FINISHED', results }) as InstanceResult;

  it('takes --statement (from 1), else the only statement with columns', () => {
    assert.equal(chooseStatement(instance(result([]), result(['a'])), undefined), 1);
    assert.equal(chooseStatement(instance(result(['a']), result(['b'])), 2), 1);
  });
  it('refuses to guess between several, and an index out of range', () => {
    assert.throws(
      () => chooseStatement(instance(result(['a']), result(['b'])), undefined),
      /--statement <1-2>/,
    );
    assert.throws(
      () => chooseStatement(instance(result(['a'])), 2),
      (e: unknown) => e instanceof CliError && e.exitCode === 2,
    );
  });
});

describe('resolveSettings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendlf-profiles-'));
  const file = join(dir, 'profiles.json');
  after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    file,
    JSON.stringify({
      default: 'a',
      profiles: {
        a: { endpoint: 'http://a.example:1', projectId: 'pa', workspace: 'wa', token: 'tok-a-0123456789' },
        b: { endpoint: 'http://b.example:2', projectId: 'pb', accessKey: 'AK', secretKey: 'SK' },
      },
    }),
  );
  const env = { OPENDLF_PROFILES_FILE: file };

  it('uses the default profile, or the one named by OPENDLF_PROFILE or --profile', () => {
    assert.deepEqual(resolveSettings({}, env).settings, {
      profileName: 'a',
      endpoint: 'http://a.example:1',
      projectId: 'pa',
      workspace: 'wa',
      auth: 'token',
    });
    assert.equal(resolveSettings({}, { ...env, OPENDLF_PROFILE: 'b' }).settings.auth, 'aksk');
    assert.equal(
      resolveSettings({ profile: 'b' }, { ...env, OPENDLF_PROFILE: 'a' }).settings.projectId,
      'pb',
    );
  });

  it('flags beat the environment, which beats the profile; credentials come as a unit', () => {
    const fromEnv = resolveSettings(
      {},
      { ...env, OPENDLF_ENDPOINT: 'http://env:3', OPENDLF_PROJECT_ID: 'pe' },
    ).settings;
    assert.equal(fromEnv.endpoint, 'http://env:3');
    assert.equal(fromEnv.projectId, 'pe');
    assert.equal(fromEnv.workspace, 'wa');
    const fromFlags = resolveSettings(
      { endpoint: 'http://flag:4', project: 'pf' },
      { ...env, OPENDLF_ENDPOINT: 'http://env:3' },
    ).settings;
    assert.equal(fromFlags.endpoint, 'http://flag:4');
    assert.equal(fromFlags.projectId, 'pf');
    assert.equal(resolveSettings({}, { ...env, OPENDLF_AK: 'x', OPENDLF_SK: 'y' }).settings.auth, 'aksk');
    assert.throws(() => resolveSettings({}, { ...env, OPENDLF_AK: 'x' }), /must be set together/);
  });

  it('names the problem: an unknown profile, no project, a bad endpoint, a malformed file', () => {
    assert.throws(() => resolveSettings({ profile: 'zz' }, env), /no profile 'zz' .*profiles: a, b/);
    assert.throws(
      () => resolveSettings({}, { OPENDLF_PROFILES_FILE: join(dir, 'none.json') }),
      /no project id/,
    );
    assert.throws(() => resolveSettings({ endpoint: 'ftp://x' }, env), /http\(s\) URL/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ profiles: { a: { projectId: 'p', password: 'x' } } }));
    assert.throws(
      () => resolveSettings({}, { OPENDLF_PROFILES_FILE: bad, OPENDLF_PROFILE: 'a' }),
      /unknown key "password"/,
    );
  });
});

describe('DlfApiClient errors', () => {
  const client = (response: () => Promise<Response>) =>
    new DlfApiClient({ endpoint: 'http://x.example/', projectId: 'p', fetch: () => response() });

  it('turns a DLF body into an ApiError with its code, message and request id', async () => {
    const body = JSON.stringify({ error_code: 'DLF.6201', error_msg: 'The script does not exist.' });
    const failing = client(() =>
      Promise.resolve(new Response(body, { status: 400, headers: { 'x-request-id': 'r1' } })),
    );
    await assert.rejects(failing.getScript('s'), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.deepEqual(
        [e.status, e.error_code, e.error_msg, e.requestId],
        [400, 'DLF.6201', 'The script does not exist.', 'r1'],
      );
      return true;
    });
  });

  it('a non-DLF answer and no answer at all are ApiErrors too', async () => {
    await assert.rejects(
      client(() => Promise.resolve(new Response('<html>bad gateway</html>', { status: 502 }))).listScripts(),
      {
        name: 'ApiError',
        error_code: 'HTTP.502',
      },
    );
    await assert.rejects(
      client(() =>
        Promise.reject(
          new TypeError('fetch failed', {
            cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
          }),
        ),
      ).listScripts(),
      {
        status: 0,
        error_code: 'NETWORK',
        message: /ECONNREFUSED/,
      },
    );
  });
});
