/**
 * Authentication that never fails open (issue 10, finding 3 and the auth parts): the mode is decided
 * once and only ever tightens, one answer for every authentication failure, failures throttled per
 * access key and per client address, UNSIGNED-PAYLOAD only for raw uploads, /metrics and /readyz in
 * multi-user mode, and the official Huawei Go SDK's signatures (no `host`) against a real server.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { loadConfig, type ConfigOverrides } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { startupAuthDecision } from '../../src/services/credential-directory.js';
import { assertError } from '../helpers/assertions.js';
import { credentialsAddArgs } from '../helpers/credentials-cli.js';
import { tempDir, type ApiResponse } from '../helpers/server.js';
import { signHuaweiGoV3, signPython } from '../helpers/signers.js';

const run = promisify(execFile);
const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { timeout: 60_000 });

const PROJECT = 'projM0000000000000000000000000001';
const KEY_A = { ak: 'AKMODEA000000001', sk: 'mode-a-secret-key-S3cr3t-0001' };
const KEY_B = { ak: 'AKMODEB000000002', sk: 'mode-b-secret-key-S3cr3t-0002' };
const TOKEN = 'token-mode-test-S3cr3t-00000003';
type Key = { ak: string; sk: string };

interface Call {
  method?: string;
  path: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Source address of the connection (any 127.x reaches a server bound to 127.0.0.1 on Linux). */
  localAddress?: string;
}

/** One HTTP request over node:http (fetch cannot pick the source address). */
function send(baseUrl: string, call: Call): Promise<ApiResponse> {
  const url = new URL(call.path, baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: call.method ?? 'GET',
        headers: call.headers ?? {},
        ...(call.localAddress ? { localAddress: call.localAddress } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (typeof value === 'string') headers.set(name, value);
          }
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(call.body);
  });
}

/** A Python-SDK-signed call (host signed). */
function signedCall(baseUrl: string, key: Key, call: Call): Call {
  const headers = signPython({
    method: call.method ?? 'GET',
    url: new URL(call.path, baseUrl).toString(),
    ...(call.headers ? { headers: call.headers } : {}),
    ...(call.body !== undefined ? { body: call.body } : {}),
    ak: key.ak,
    sk: key.sk,
    date: new Date(),
  });
  return { ...call, headers };
}

/** A call signed as huaweicloud-sdk-go-v3 signs it: host never signed, content type unsigned. */
function goV3Call(baseUrl: string, key: Key, call: Call & { contentType?: string }): Call {
  const headers = signHuaweiGoV3({
    method: call.method ?? 'GET',
    url: new URL(call.path, baseUrl).toString(),
    ...(call.headers ? { headers: call.headers } : {}),
    ...(call.body !== undefined ? { body: call.body } : {}),
    ...(call.contentType !== undefined ? { contentType: call.contentType } : {}),
    ak: key.ak,
    sk: key.sk,
    date: new Date(),
    projectId: PROJECT,
  });
  return { ...call, headers };
}

const addKey = (dataDir: string, key: Key) => cli(...credentialsAddArgs(dataDir, key, '--project', PROJECT));
const removeKey = (dataDir: string, key: Key) =>
  cli('credentials', 'remove', '--data-dir', dataDir, '--access-key', key.ak);

async function start(dataDir: string, overrides: ConfigOverrides = {}): Promise<RunningServer> {
  const config = loadConfig({ overrides: { port: 0, stopGraceMs: 300, ...overrides, dataDir } });
  return startServer(config, pino({ level: 'silent' }));
}

const scripts = `/v1/${PROJECT}/scripts`;

describe('the auth mode is decided once and only tightens', () => {
  const dataDir = tempDir();
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  it('removing the last credential of a running server gives 401, not an anonymous admin', async () => {
    await addKey(dataDir, KEY_A);
    const server = await start(dataDir);
    try {
      assert.equal(server.authMode, 'enforced');
      assert.equal((await send(server.url, signedCall(server.url, KEY_A, { path: scripts }))).status, 200);
      await removeKey(dataDir, KEY_A);
      assertError(await send(server.url, { path: scripts }), 401, 'APIGW.0301');
      assertError(
        await send(server.url, { method: 'POST', path: scripts, body: '{"name":"x","type":"DWSSQL"}' }),
        401,
        'APIGW.0301',
      );
      assertError(
        await send(server.url, signedCall(server.url, KEY_A, { path: scripts })),
        401,
        'APIGW.0301',
      );
    } finally {
      await server.close();
    }
  });

  it('a store that once enforced authentication refuses to start without credentials unless --auth none', async () => {
    await assert.rejects(start(dataDir), /once enforced authentication.*--auth none/);
    const server = await start(dataDir, { auth: 'none' });
    try {
      assert.equal(server.authMode, 'none');
      assert.equal((await send(server.url, { path: scripts })).status, 200);
      // A credential added while it runs turns enforcement on from the next request, for good.
      await addKey(dataDir, KEY_B);
      assertError(await send(server.url, { path: scripts }), 401, 'APIGW.0301');
      assert.equal((await send(server.url, signedCall(server.url, KEY_B, { path: scripts }))).status, 200);
      await removeKey(dataDir, KEY_B);
      assertError(await send(server.url, { path: scripts }), 401, 'APIGW.0301');
    } finally {
      await server.close();
    }
  });

  it('auth none is refused while credentials exist', async () => {
    await addKey(dataDir, KEY_A);
    try {
      await assert.rejects(start(dataDir, { auth: 'none' }), /auth is "none" but credentials are configured/);
    } finally {
      await removeKey(dataDir, KEY_A);
    }
  });

  it('unauthenticated serving on a non-loopback address needs --allow-unauthenticated-remote, latch or not', async () => {
    // Refused before anything is bound (this machine may have no other address to test with).
    await assert.rejects(start(dataDir, { auth: 'none', host: '0.0.0.0' }), /refusing to bind 0\.0\.0\.0/);
    await assert.rejects(start(tempDirOnce(), { host: '0.0.0.0' }), /refusing to bind 0\.0\.0\.0/);
    const decide = (input: Partial<Parameters<typeof startupAuthDecision>[0]>) =>
      startupAuthDecision({
        credentialsExist: false,
        wasEnforced: false,
        requested: 'auto',
        loopbackOnly: true,
        allowUnauthenticatedRemote: false,
        host: '127.0.0.1',
        ...input,
      });
    assert.deepEqual(decide({}), { ok: true, mode: 'none' });
    assert.equal(decide({ loopbackOnly: false, host: '10.0.0.5' }).ok, false);
    assert.deepEqual(decide({ loopbackOnly: false, allowUnauthenticatedRemote: true }), {
      ok: true,
      mode: 'none',
    });
    assert.equal(decide({ wasEnforced: true }).ok, false);
    assert.equal(decide({ wasEnforced: true, requested: 'none', loopbackOnly: false }).ok, false);
    assert.deepEqual(decide({ wasEnforced: true, requested: 'none' }), { ok: true, mode: 'none' });
    assert.deepEqual(decide({ credentialsExist: true, loopbackOnly: false }), { ok: true, mode: 'enforced' });
    assert.equal(decide({ credentialsExist: true, requested: 'none' }).ok, false);
  });
});

const scratchDirs: string[] = [];
function tempDirOnce(): string {
  const dir = tempDir();
  scratchDirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

describe('failures: one answer, throttled per access key and per client address', () => {
  const credentials = [
    {
      accessKey: KEY_A.ak,
      secretKey: KEY_A.sk,
      projects: [PROJECT],
      grants: [{ workspace: '*', role: 'admin' }],
    },
    {
      accessKey: KEY_B.ak,
      secretKey: KEY_B.sk,
      projects: [PROJECT],
      grants: [{ workspace: '*', role: 'admin' }],
    },
    { token: TOKEN, projects: [PROJECT], grants: [{ workspace: '*', role: 'viewer' }] },
  ] satisfies ConfigOverrides['credentials'];

  it('an unknown access key, a wrong signature, a bad token and no credentials get the same answer', async () => {
    const dataDir = tempDirOnce();
    const server = await start(dataDir, { credentials });
    try {
      const answers = [
        await send(
          server.url,
          signedCall(server.url, { ak: 'AKUNKNOWN0000001', sk: KEY_A.sk }, { path: scripts }),
        ),
        await send(
          server.url,
          signedCall(server.url, { ak: KEY_A.ak, sk: 'wrong-secret-key-000000000' }, { path: scripts }),
        ),
        await send(server.url, { path: scripts, headers: { 'x-auth-token': `${TOKEN}x` } }),
        await send(server.url, { path: scripts }),
      ];
      for (const answer of answers) assertError(answer, 401, 'APIGW.0301');
      const messages = new Set(answers.map((a) => (a.json as { error_msg: string }).error_msg));
      assert.equal(messages.size, 1, [...messages].join(' | '));
    } finally {
      await server.close();
    }
  });

  it('per access key: past the limit even its valid signature waits (429, Retry-After); other keys work', async () => {
    const server = await start(tempDirOnce(), {
      credentials,
      authFailuresPerAccessKey: 3,
      authFailuresPerAddress: 1000,
    });
    try {
      // Successful calls are not counted.
      for (let i = 0; i < 5; i++) {
        assert.equal((await send(server.url, signedCall(server.url, KEY_A, { path: scripts }))).status, 200);
      }
      const wrong = { ak: KEY_A.ak, sk: 'guessed-secret-key-0000000' };
      for (let i = 0; i < 3; i++) {
        assertError(
          await send(server.url, signedCall(server.url, wrong, { path: scripts })),
          401,
          'APIGW.0301',
        );
      }
      const throttled = await send(server.url, signedCall(server.url, KEY_A, { path: scripts }));
      assertError(throttled, 429, 'APIGW.0308');
      const retryAfter = Number(throttled.headers.get('retry-after'));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `Retry-After ${retryAfter}`,
      );
      assert.equal((await send(server.url, signedCall(server.url, KEY_B, { path: scripts }))).status, 200);
      assert.equal(
        (await send(server.url, { path: scripts, headers: { 'x-auth-token': TOKEN } })).status,
        200,
      );
    } finally {
      await server.close();
    }
  });

  it('per client address: past the limit that address waits, another address is served', async () => {
    const server = await start(tempDirOnce(), {
      credentials,
      authFailuresPerAccessKey: 1000,
      authFailuresPerAddress: 3,
    });
    try {
      const other = '127.0.0.2';
      assert.equal(
        (await send(server.url, { ...signedCall(server.url, KEY_A, { path: scripts }), localAddress: other }))
          .status,
        200,
        'a second loopback address must reach the server for this test',
      );
      for (let i = 0; i < 3; i++) {
        const unknown = { ak: `AKGUESS${String(i).padStart(9, '0')}`, sk: KEY_A.sk };
        assertError(
          await send(server.url, signedCall(server.url, unknown, { path: scripts })),
          401,
          'APIGW.0301',
        );
      }
      const throttled = await send(server.url, signedCall(server.url, KEY_B, { path: scripts }));
      assertError(throttled, 429, 'APIGW.0308');
      assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
      const fromOther = await send(server.url, {
        ...signedCall(server.url, KEY_B, { path: scripts }),
        localAddress: other,
      });
      assert.equal(fromOther.status, 200, fromOther.text);
    } finally {
      await server.close();
    }
  });
});

describe('multi-user server: UNSIGNED-PAYLOAD, /metrics, /readyz and the Huawei Go SDK', () => {
  let server: RunningServer;
  let metricsLocked: RunningServer;
  before(async () => {
    const credentials = [
      {
        accessKey: KEY_A.ak,
        secretKey: KEY_A.sk,
        projects: [PROJECT],
        grants: [{ workspace: '*', role: 'admin' }],
      },
      { token: TOKEN, projects: [PROJECT], grants: [{ workspace: '*', role: 'viewer' }] },
    ] satisfies ConfigOverrides['credentials'];
    server = await start(tempDirOnce(), { credentials });
    metricsLocked = await start(tempDirOnce(), { credentials, metricsRequireAuth: true });
  });
  after(async () => {
    await Promise.all([server.close(), metricsLocked.close()]);
  });

  it('UNSIGNED-PAYLOAD is refused on a JSON request (its body could be swapped) and accepted on the zip import', async () => {
    const script = JSON.stringify({
      name: 'swapped',
      type: 'DWSSQL',
      content: 'SELECT 1',
      connectionName: 'duckdb',
    });
    // Signed as a non-JSON upload (the SDK then leaves the body unsigned), sent to a JSON route.
    const asUpload = goV3Call(server.url, KEY_A, {
      method: 'POST',
      path: scripts,
      body: script,
      contentType: 'text/plain',
    });
    assert.equal(asUpload.headers?.['X-Sdk-Content-Sha256'], 'UNSIGNED-PAYLOAD');
    assertError(await send(server.url, asUpload), 401, 'APIGW.0301');
    // Content-Type is not signed by the Go SDK: relabelling the body as JSON does not help either.
    const relabelled = { ...asUpload, headers: { ...asUpload.headers, 'Content-Type': 'application/json' } };
    assertError(await send(server.url, relabelled), 401, 'APIGW.0301');
    const noType = {
      ...asUpload,
      headers: Object.fromEntries(
        Object.entries(asUpload.headers ?? {}).filter(([n]) => n !== 'Content-Type'),
      ),
    };
    assertError(await send(server.url, noType), 401, 'APIGW.0301');
    const get = await send(server.url, signedCall(server.url, KEY_A, { path: `${scripts}/swapped` }));
    assertError(get, 400, 'DLF.6201');

    const zip = await exportZip(server.url);
    const upload = goV3Call(server.url, KEY_A, {
      method: 'POST',
      path: `/v1/${PROJECT}/connections/import`,
      body: zip,
      contentType: 'application/zip',
    });
    assert.equal(upload.headers?.['X-Sdk-Content-Sha256'], 'UNSIGNED-PAYLOAD');
    const imported = await send(server.url, upload);
    assert.equal(imported.status, 200, imported.text);
    assert.match(JSON.stringify(imported.json), /taskId/);
  });

  it('/metrics answers anyone by default and only valid credentials with metricsRequireAuth', async () => {
    assert.equal((await send(server.url, { path: '/metrics' })).status, 200);
    assertError(await send(metricsLocked.url, { path: '/metrics' }), 401, 'APIGW.0301');
    assertError(
      await send(metricsLocked.url, { path: '/metrics', headers: { 'x-auth-token': `${TOKEN}x` } }),
      401,
      'APIGW.0301',
    );
    const scraped = await send(metricsLocked.url, { path: '/metrics', headers: { 'x-auth-token': TOKEN } });
    assert.equal(scraped.status, 200);
    assert.match(scraped.text, /# TYPE/);
  });

  it('/readyz without credentials in multi-user mode says only whether the server is ready', async () => {
    const anonymous = await send(server.url, { path: '/readyz' });
    assert.deepEqual(Object.keys(anonymous.json as object), ['ready']);
    const known = await send(server.url, { path: '/readyz', headers: { 'x-auth-token': TOKEN } });
    assert.ok(Array.isArray((known.json as { checks?: unknown }).checks), known.text);
  });

  it('the Huawei Go SDK header set (host not signed) can create, get, execute and stop', async () => {
    const call = (c: Call & { contentType?: string }) => send(server.url, goV3Call(server.url, KEY_A, c));
    const created = await call({
      method: 'POST',
      path: scripts,
      body: JSON.stringify({
        name: 'go_sdk_long',
        type: 'DWSSQL',
        content: 'SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3;',
        connectionName: 'duckdb',
      }),
    });
    assert.equal(created.status, 204, created.text);
    const got = await call({ path: `${scripts}/go_sdk_long`, contentType: 'application/json' });
    assert.equal(got.status, 200, got.text);
    assert.equal((got.json as { name: string }).name, 'go_sdk_long');
    const executed = await call({ method: 'POST', path: `${scripts}/go_sdk_long/execute`, body: '{}' });
    assert.equal(executed.status, 200, executed.text);
    const instanceId = (executed.json as { instanceId: string }).instanceId;
    const stopped = await call({
      method: 'POST',
      path: `${scripts}/go_sdk_long/instances/${instanceId}/stop`,
    });
    assert.equal(stopped.status, 204, stopped.text);
    const settled = await call({
      path: `${scripts}/go_sdk_long/instances/${instanceId}?waitSeconds=30`,
      contentType: 'application/json',
    });
    assert.equal(settled.status, 200, settled.text);
    assert.notEqual((settled.json as { status: string }).status, 'RUNNING', settled.text);
    // The same header set with a tampered body is still refused: the signature binds it.
    const tampered = goV3Call(server.url, KEY_A, {
      method: 'POST',
      path: `${scripts}/go_sdk_long/execute`,
      body: '{}',
    });
    assertError(await send(server.url, { ...tampered, body: '{"params":{"x":"1"}}' }), 401, 'APIGW.0301');
  });
});

/** The connection export of the test project, as the import takes it back. */
async function exportZip(baseUrl: string): Promise<Buffer> {
  const headers = signPython({
    method: 'POST',
    url: `${baseUrl}/v1/${PROJECT}/connections/export`,
    ak: KEY_A.ak,
    sk: KEY_A.sk,
    date: new Date(),
  });
  const response = await fetch(`${baseUrl}/v1/${PROJECT}/connections/export`, { method: 'POST', headers });
  assert.equal(response.status, 200);
  return Buffer.from(await response.arrayBuffer());
}
