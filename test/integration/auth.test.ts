/**
 * Authentication and authorization end to end: credentials added with the real CLI on a data
 * directory, a server on that directory, requests signed by independent implementations of both
 * official client styles (test/helpers/signers.ts), tokens, roles per workspace, projects, the audit
 * trail and secrets hygiene (no secret appears in any response body or log line).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { defaultLocalWorkDirectory, startServer, type RunningServer } from '../../src/main.js';
import { assertError, assertNoContent } from '../helpers/assertions.js';
import { credentialsAddArgs, type CliCredential } from '../helpers/credentials-cli.js';
import {
  ensureRunnerUser,
  processesOfInstance,
  RUNNER_USER,
  waitForInstanceProcesses,
} from '../helpers/processes.js';
import { spawnServer, tempDir, type ApiResponse } from '../helpers/server.js';
import { signGo, signPython } from '../helpers/signers.js';

const run = promisify(execFile);
const P1 = 'proj00000000000000000000000000001';
const P2 = 'proj00000000000000000000000000002';
const ADMIN = { ak: 'AKADMIN000000001', sk: 'admin-secret-key-S3cr3t-0001' };
const DEV_A = { ak: 'AKDEVA0000000001', sk: 'dev-a-secret-key-S3cr3t-0002' };
const VIEWER = { ak: 'AKVIEW0000000001', sk: 'viewer-secret-key-S3cr3t-003' };
const OPERATOR = { ak: 'AKOPER0000000001', sk: 'operator-secret-key-S3cr3t-4' };
const EXPIRED = { ak: 'AKEXPIRED0000001', sk: 'expired-secret-key-S3cr3t-05' };
const TOKEN = 'tok-value-P1-only-S3cr3t-000000006';
const CONNECTION_PASSWORD = 'conn-password-S3cr3t-000007';
const SECRETS = [ADMIN.sk, DEV_A.sk, VIEWER.sk, OPERATOR.sk, EXPIRED.sk, TOKEN, CONNECTION_PASSWORD];

const cli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { timeout: 60_000 });

type Key = { ak: string; sk: string };
type Style = 'python' | 'go';

describe('authentication and authorization', () => {
  const dataDir = tempDir();
  const logLines: string[] = [];
  const bodies: string[] = [];
  let server: RunningServer;

  before(async () => {
    const cannotSwitchUsers = ensureRunnerUser();
    if (cannotSwitchUsers) throw new Error(cannotSwitchUsers);
    const add = (credential: CliCredential, ...grant: string[]) =>
      cli(...credentialsAddArgs(dataDir, credential, ...grant));
    await add(ADMIN, '--project', P1, '--project', P2, '--role', 'admin');
    await add(DEV_A, '--project', P1, '--workspace', 'wsa', '--role', 'developer');
    await add(VIEWER, '--project', P1, '--role', 'viewer');
    await add(OPERATOR, '--project', P1, '--role', 'operator');
    await add(EXPIRED, '--project', P1, '--role', 'admin', '--expires', '2020-01-01T00:00:00Z');
    await add({ token: TOKEN }, '--project', P1, '--role', 'developer');
    // Many deliberate failures below: the failure throttle is tested in auth-mode.test.ts.
    const config = loadConfig({
      overrides: {
        port: 0,
        dataDir,
        stopGraceMs: 300,
        // Multi-user mode offers `local` only with an unprivileged user to run scripts as.
        localEngine: { enabled: true, runAs: RUNNER_USER },
        authFailuresPerAddress: 10_000,
        authFailuresPerAccessKey: 10_000,
      },
    });
    const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) });
    server = await startServer(config, logger);
  });
  after(async () => {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(defaultLocalWorkDirectory(dataDir), { recursive: true, force: true });
  });

  async function send(
    method: string,
    path: string,
    options: {
      key?: Key;
      style?: Style;
      token?: string;
      body?: unknown;
      workspace?: string;
      projectId?: string;
      date?: Date;
      tamper?: (h: Record<string, string>) => { url?: string; body?: string };
    } = {},
  ): Promise<ApiResponse> {
    const url = `${server.url}${path}`;
    let body = options.body === undefined ? undefined : JSON.stringify(options.body);
    if (options.style === 'go' && body !== undefined) body += '\n'; // Go's json.Encoder
    let headers: Record<string, string> = {};
    if (options.workspace) headers.workspace = options.workspace;
    if (options.key) {
      const args = {
        method,
        url,
        headers,
        ...(body !== undefined ? { body } : {}),
        ak: options.key.ak,
        sk: options.key.sk,
        date: options.date ?? new Date(),
        ...(options.projectId ? { projectId: options.projectId } : {}),
      };
      headers = options.style === 'go' ? signGo(args) : signPython(args);
      delete headers.Host; // fetch sends the same Host itself
    } else if (options.token) {
      headers['X-Auth-Token'] = options.token;
      if (body !== undefined) headers['content-type'] = 'application/json';
    }
    let sendUrl = url;
    if (options.tamper) {
      const changed = options.tamper(headers);
      if (changed.url) sendUrl = changed.url;
      if (changed.body !== undefined) body = changed.body;
    }
    const response = await fetch(sendUrl, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    bodies.push(text);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  const scripts = (project = P1) => `/v1/${project}/scripts`;

  it('reports the enforced auth mode', () => {
    assert.equal(server.authMode, 'enforced');
  });

  it('refuses a request without credentials (401 APIGW.0301)', async () => {
    assertError(await send('GET', scripts()), 401, 'APIGW.0301');
  });

  for (const style of ['python', 'go'] as const) {
    it(`accepts requests signed in the ${style} client style: create, get, list with a query, execute, result, stop, delete`, async () => {
      const name = `signed-${style}`;
      const key = ADMIN;
      assertNoContent(
        await send('POST', scripts(), {
          key,
          style,
          body: { name, type: 'Shell', content: 'sleep 300', connectionName: 'local' },
          projectId: P1,
        }),
      );
      const got = await send('GET', `${scripts()}/${name}`, { key, style });
      assert.equal(got.status, 200, got.text);
      assert.equal(got.json.owner, ADMIN.ak);
      const listed = await send(
        'GET',
        `${scripts()}?limit=5&scriptName=${encodeURIComponent(`ed-${style}`)}&offset=0`,
        { key, style },
      );
      assert.equal(listed.status, 200, listed.text);
      assert.equal(listed.json.total, 1);
      const executed = await send('POST', `${scripts()}/${name}/execute`, {
        key,
        style,
        ...(style === 'go' ? { body: {} } : {}),
      });
      assert.equal(executed.status, 200, executed.text);
      const id = executed.json.instanceId as string;
      await waitForInstanceProcesses(id, 1);
      assertNoContent(await send('POST', `${scripts()}/${name}/instances/${id}/stop`, { key, style }));
      assert.deepEqual(processesOfInstance(id), []);
      const result = await send('GET', `${scripts()}/${name}/instances/${id}`, { key, style });
      assert.equal(result.json.detailedStatus, 'STOPPED');
      assert.equal(result.json.stoppedBy, ADMIN.ak, 'the instance records who stopped it');
      assertNoContent(
        await send('DELETE', `${scripts()}/${name}`, { key, style, ...(style === 'go' ? { body: {} } : {}) }),
      );
    });
  }

  it('rejects a wrong secret key, an altered body, path or query, and a stale date (401)', async () => {
    const create = { name: 'tamper', type: 'Shell', content: 'echo hi', connectionName: 'local' };
    assertError(
      await send('POST', scripts(), { key: { ak: ADMIN.ak, sk: 'not-the-right-secret-key' }, body: create }),
      401,
      'APIGW.0301',
    );
    assertError(
      await send('POST', scripts(), {
        key: ADMIN,
        body: create,
        tamper: () => ({ body: JSON.stringify({ ...create, content: 'rm -rf /' }) }),
      }),
      401,
      'APIGW.0301',
    );
    assertError(
      await send('GET', `${scripts()}/a`, {
        key: ADMIN,
        tamper: () => ({ url: `${server.url}${scripts()}/b` }),
      }),
      401,
      'APIGW.0301',
    );
    assertError(
      await send('GET', `${scripts()}?limit=1`, {
        key: ADMIN,
        style: 'go',
        tamper: () => ({ url: `${server.url}${scripts()}?limit=2` }),
      }),
      401,
      'APIGW.0301',
    );
    const stale = new Date(Date.now() - 16 * 60_000);
    assertError(await send('GET', scripts(), { key: ADMIN, date: stale }), 401, 'APIGW.0301');
    assertError(await send('GET', scripts(), { key: ADMIN, style: 'go', date: stale }), 401, 'APIGW.0301');
    assertError(await send('GET', scripts(), { key: EXPIRED }), 401, 'APIGW.0301');
    assertError(
      await send('GET', scripts(), { key: { ak: 'AKUNKNOWN0000001', sk: 'whatever-secret-key' } }),
      401,
      'APIGW.0301',
    );
    // Nothing was created by the tampered request.
    assertError(await send('GET', `${scripts()}/tamper`, { key: ADMIN }), 400, 'DLF.6201');
  });

  it('rejects a request signed for another project (X-Project-Id) and a key used outside its projects (403)', async () => {
    assertError(await send('GET', scripts(P1), { key: ADMIN, projectId: P2 }), 403, 'DLF.6888');
    assertError(await send('GET', scripts(P1), { key: ADMIN, style: 'go', projectId: P2 }), 403, 'DLF.6888');
    assertError(await send('GET', scripts(P2), { key: DEV_A }), 403, 'DLF.6888');
  });

  it('tokens: accepted for their project, refused for another, wrong token 401', async () => {
    const ok = await send('GET', scripts(P1), { token: TOKEN });
    assert.equal(ok.status, 200, ok.text);
    assertError(await send('GET', scripts(P2), { token: TOKEN }), 403, 'DLF.6888');
    assertError(await send('GET', scripts(P1), { token: `${TOKEN}x` }), 401, 'APIGW.0301');
  });

  it('roles: viewer reads only; operator executes and stops but cannot write; developer only in its workspace', async () => {
    const script = { name: 'roles', type: 'Shell', content: 'sleep 300', connectionName: 'local' };
    assertNoContent(await send('POST', scripts(), { key: ADMIN, body: script }));
    // viewer
    assert.equal((await send('GET', `${scripts()}/roles`, { key: VIEWER })).status, 200);
    assertError(await send('POST', `${scripts()}/roles/execute`, { key: VIEWER }), 403, 'DLF.6888');
    assertError(
      await send('POST', scripts(), { key: VIEWER, body: { ...script, name: 'v' } }),
      403,
      'DLF.6888',
    );
    assertError(await send('DELETE', `${scripts()}/roles`, { key: VIEWER }), 403, 'DLF.6888');
    // operator
    assertError(await send('PUT', `${scripts()}/roles`, { key: OPERATOR, body: script }), 403, 'DLF.6888');
    const executed = await send('POST', `${scripts()}/roles/execute`, { key: OPERATOR });
    assert.equal(executed.status, 200, executed.text);
    const id = executed.json.instanceId as string;
    assertError(
      await send('POST', `${scripts()}/roles/instances/${id}/stop`, { key: VIEWER }),
      403,
      'DLF.6888',
    );
    assertNoContent(await send('POST', `${scripts()}/roles/instances/${id}/stop`, { key: OPERATOR }));
    assert.deepEqual(processesOfInstance(id), []);
    // developer of workspace wsa
    assertNoContent(
      await send('POST', scripts(), { key: DEV_A, workspace: 'wsa', body: { ...script, name: 'dev' } }),
    );
    assertError(
      await send('POST', scripts(), { key: DEV_A, workspace: 'wsb', body: { ...script, name: 'dev' } }),
      403,
      'DLF.6888',
    );
    assertError(await send('GET', `${scripts()}/dev`, { key: DEV_A, workspace: 'wsb' }), 403, 'DLF.6888');
    assertError(await send('GET', `${scripts()}/roles`, { key: DEV_A }), 403, 'DLF.6888');
    // connections follow the same roles
    const connection = {
      name: 'db',
      type: 'RDS',
      config: { ip: '127.0.0.1', port: '3306', userName: 'root', password: CONNECTION_PASSWORD },
    };
    assertError(
      await send('POST', `/v1/${P1}/connections`, { key: VIEWER, body: connection }),
      403,
      'DLF.6888',
    );
    assertNoContent(await send('POST', `/v1/${P1}/connections`, { key: ADMIN, body: connection }));
    const read = await send('GET', `/v1/${P1}/connections/db`, { key: VIEWER });
    assert.equal(read.status, 200);
    assert.equal(read.json.config.password, '*********');
  });

  it('an instance id of another workspace or project cannot be read or stopped', async () => {
    const executed = await send('POST', `${scripts()}/dev/execute`, { key: DEV_A, workspace: 'wsa' });
    const id = executed.json.instanceId as string;
    // Same script name in another workspace/project the admin can see: the id does not resolve there.
    assertNoContent(
      await send('POST', scripts(P2), {
        key: ADMIN,
        body: { name: 'dev', type: 'Shell', content: 'echo', connectionName: 'local' },
      }),
    );
    assertError(await send('GET', `${scripts(P2)}/dev/instances/${id}`, { key: ADMIN }), 400, 'DLF.6205');
    assertError(
      await send('POST', `${scripts(P2)}/dev/instances/${id}/stop`, { key: ADMIN }),
      400,
      'DLF.6205',
    );
    assertError(
      await send('POST', `${scripts()}/dev/instances/${id}/stop`, { key: DEV_A, workspace: 'wsb' }),
      403,
      'DLF.6888',
    );
    assertNoContent(
      await send('POST', `${scripts()}/dev/instances/${id}/stop`, { key: DEV_A, workspace: 'wsa' }),
    );
  });

  it('writes an audit line for every change, with who, from where and the outcome', () => {
    const audits = logLines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.audit === true);
    const stops = audits.filter(
      (a) => a.route === '/v1/:projectId/scripts/:scriptName/instances/:instanceId/stop',
    );
    assert.ok(stops.some((a) => a.actor === OPERATOR.ak && a.statusCode === 204 && a.ip === '127.0.0.1'));
    assert.ok(
      stops.some((a) => a.actor === VIEWER.ak && a.statusCode === 403),
      'refused attempts are audited too',
    );
    assert.ok(
      audits.some((a) => a.route === '/v1/:projectId/scripts' && a.method === 'POST' && a.actor === ADMIN.ak),
    );
    assert.ok(audits.some((a) => a.method === 'DELETE' && a.actor === ADMIN.ak && a.statusCode === 204));
    const executes = audits.filter(
      (a) => a.route === '/v1/:projectId/scripts/:scriptName/execute' && a.statusCode === 200,
    );
    assert.ok(
      executes.length > 0 && executes.every((a) => typeof a.instanceId === 'string'),
      'execute audits name the instance',
    );
  });

  it('no secret (secret keys, tokens, connection passwords) appears in any response body or log line', async () => {
    bodies.push((await cli('credentials', 'list', '--data-dir', dataDir)).stdout);
    const everything = [...bodies, ...logLines].join('\n');
    assert.ok(bodies.length > 30 && logLines.length > 30, 'the scan must cover a full run');
    for (const secret of SECRETS)
      assert.equal(everything.includes(secret), false, `a secret leaked: ${secret.slice(0, 6)}…`);
  });
});

describe('credentials CLI and binding', () => {
  it('adds, lists (without secrets), rotates and removes credentials', async () => {
    const dataDir = tempDir();
    try {
      const key = { ak: 'AKCLI00000000001', sk: 'cli-secret-key-000000001' };
      await cli(
        ...credentialsAddArgs(dataDir, key, '--project', P1, '--workspace', 'w1', '--role', 'operator'),
      );
      const listed = (await cli('credentials', 'list', '--data-dir', dataDir)).stdout;
      assert.match(listed, /"id":"AKCLI00000000001"/);
      assert.match(listed, /"role":"operator"/);
      assert.doesNotMatch(listed, /cli-secret-key/);
      await cli(
        'credentials',
        'rotate',
        '--data-dir',
        dataDir,
        '--access-key',
        'AKCLI00000000001',
        '--secret-key',
        'cli-secret-key-000000002',
      );
      assert.match((await cli('credentials', 'list', '--data-dir', dataDir)).stdout, /"role":"operator"/);
      await cli('credentials', 'remove', '--data-dir', dataDir, '--access-key', 'AKCLI00000000001');
      assert.equal((await cli('credentials', 'list', '--data-dir', dataDir)).stdout, '');
      await assert.rejects(
        cli(...credentialsAddArgs(dataDir, { ak: key.ak, sk: 'x' }, '--project', P1, '--role', 'admin')),
      );
      await assert.rejects(cli(...credentialsAddArgs(dataDir, key, '--project', P1, '--role', 'boss')));
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('with credentials configured, a non-loopback bind is allowed and the startup line names the auth mode', async () => {
    const dataDir = tempDir();
    try {
      await cli(...credentialsAddArgs(dataDir, { token: TOKEN }, '--project', P1, '--role', 'viewer'));
      const server = await spawnServer(dataDir, ['--host', '0.0.0.0']);
      try {
        assert.match(
          server.line,
          /\(auth: AK\/SK signatures and tokens; store: SQLite in the data directory; node \S+\)$/,
        );
        const port = new URL(server.url).port;
        const response = await fetch(`http://127.0.0.1:${port}/v1/${P1}/scripts`, {
          headers: { 'X-Auth-Token': TOKEN },
        });
        assert.equal(response.status, 200);
        assert.equal((await fetch(`http://127.0.0.1:${port}/v1/${P1}/scripts`)).status, 401);
      } finally {
        server.process.kill('SIGTERM');
        await server.exited;
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
